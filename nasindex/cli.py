"""The ``nasindex`` command line. Thin: every command calls the engine, search or health
functions that the flows and the dashboard use too."""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from nasindex.config import Settings, load_settings
from nasindex.errors import NasIndexError
from nasindex.registry import registry

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from nasindex.config import NasSettings
    from nasindex.contract import NasType
    from nasindex.sync import RunSummary

# The index, search and engine modules (SQLAlchemy, Alembic) are imported by the
# commands that use them: the sync engine's worker processes re-run this module as
# __main__ (multiprocessing does), and should not pay ~0.4 s for the whole CLI.

PLUGIN_COMMANDS = "nasindex.commands"


class _WithPluginCommands(TyperGroup):
    """The built-in commands plus those NAS types bring (entry points
    ``nasindex.commands``), loaded only when one is invoked or the commands are listed:
    importing every plugin's command module (database drivers, image codecs) cost each
    run of every command ~0.6 s."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        for ep in entry_points(group=PLUGIN_COMMANDS):
            self._load(ep)
        return super().list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str):
        if cmd_name not in self.commands:
            for ep in entry_points(group=PLUGIN_COMMANDS, name=cmd_name):
                self._load(ep)
        return super().get_command(ctx, cmd_name)

    def _load(self, ep: EntryPoint) -> None:
        if ep.name in self.commands:
            return
        try:
            self.add_command(typer.main.get_group(ep.load()), ep.name)
        except Exception as exc:  # a broken plugin must not break the CLI
            registry().failures.setdefault(f"{ep.name} (commands)",
                                           f"{type(exc).__name__}: {exc}")


app = typer.Typer(help="Index the medical images on several NAS devices; search them.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=_WithPluginCommands)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per message: greppable logs
_config_path: Path | None = None


@app.callback()
def _global(config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Config file (default: $NASINDEX_CONFIG or ./nasindex.toml).")
        ] = None) -> None:
    global _config_path
    _config_path = config


def settings() -> Settings:
    return load_settings(_config_path)


@app.command()
def init() -> None:
    """Create the index, or migrate it to the current schema."""
    from nasindex.index.db import migrate

    s = settings()
    migrate(s.index.url)
    out.print(f"Index ready at {_safe_url(s.index.url)}")


def _targets(s: Settings, nas: str | None, all_: bool) -> list[NasSettings]:
    if all_:
        return list(s.nas.values())
    if not nas:
        raise typer.BadParameter("name a NAS or pass --all")
    return [s.get_nas(nas)]


def _run_many(kind: str, nas: str | None, all_: bool, as_json: bool) -> None:
    from nasindex.index.db import require_current
    from nasindex.registry import open_nas

    s = settings()
    engine = require_current(s.index.url)
    summaries: list[RunSummary] = []
    failed = False
    for nas_settings in _targets(s, nas, all_):
        try:
            target = open_nas(nas_settings)
            summaries.append(_run_one(target, nas_settings, engine, kind, quiet=as_json))
        except NasIndexError as exc:
            failed = True
            err.print(f"[red]{nas_settings.id}: {exc}[/red]")
    if as_json:
        out.print_json(json.dumps([x.as_dict() for x in summaries]))
    if failed:
        raise typer.Exit(1)


def _run_one(nas: NasType, nas_settings: NasSettings, engine: Engine, kind: str,
             quiet: bool) -> RunSummary:
    from nasindex.sync import run_sync

    with Progress(TextColumn(f"{nas.nas_id} {kind}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=quiet, transient=True) as bar:
        task = bar.add_task("read", total=None)
        summary = run_sync(nas, nas_settings, engine, kind,
                           on_progress=lambda done, total: bar.update(task, completed=done,
                                                                      total=total))
    if not quiet:
        out.print(_summary_line(summary))
        for path, reason in summary.first_errors[:5]:
            out.print(f"  [yellow]error[/yellow] {path}: {reason}")
    return summary


def _summary_line(x: RunSummary) -> str:
    return (f"{x.nas}: {x.kind} {x.status} in {x.seconds:.1f}s - seen {x.seen}, "
            f"new {x.new}, changed {x.changed}, missing {x.missing}, revived {x.revived}, "
            f"failed {x.failed}, skipped {x.skipped}, waiting {x.deferred} "
            f"({x.files_per_second:.0f} files/s)")


NasArg = Annotated[str | None, typer.Argument(help="NAS id from the config.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every configured NAS.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def index(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False) -> None:
    """Full index: list the NAS and (re-)read every file."""
    _run_many("full", nas, all_, as_json)


@app.command()
def sync(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False) -> None:
    """Incremental sync: read only new and changed files; tombstone vanished ones."""
    _run_many("incremental", nas, all_, as_json)


@app.command()
def retry(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False) -> None:
    """Re-read the files that failed before, now, without waiting for their retry time."""
    _run_many("retry", nas, all_, as_json)


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(
        help="A patient name ('jane doe', 'doe*'), or an ID / accession number.")] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id",
                                                   help="Exact, else prefix.")] = None,
    accession: Annotated[str | None, typer.Option("--accession")] = None,
    modality: Annotated[list[str] | None, typer.Option("--modality", "-m",
                                                       help="Repeat for any of several.")
                        ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYYMMDD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYYMMDD")] = None,
    born: Annotated[str | None, typer.Option("--born", help="Birth date, YYYYMMDD")] = None,
    nas: Annotated[list[str] | None, typer.Option("--nas")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Find patients across every NAS."""
    from nasindex.index.db import require_current
    from nasindex.search import SearchQuery
    from nasindex.search import search as run_search

    engine = require_current(settings().index.url)
    result = run_search(engine, SearchQuery(
        text=query, patient_id=patient_id, accession=accession, modalities=modality or [],
        date_from=date_from, date_to=date_to, birth_date=born, nas=nas or [], limit=limit,
        offset=offset))
    if as_json:
        out.print_json(json.dumps([p.as_dict() for p in result.patients]))
        return
    if not result.patients:
        out.print("No patient matches. Try fewer words, a '*' wildcard, or no filters.")
        return
    table = Table("NAS", "Patient ID", "Name", "Born", "Sex", "Studies", "Match")
    for p in result.patients:
        studies = "\n".join(f"{s.date or '?'} {', '.join(s.modalities)} {s.description or ''} "
                            f"({s.series_count} series, {s.instance_count} images)"
                            for s in p.studies)
        match = p.match if not p.linked_because else f"{p.match}; {p.linked_because}"
        table.add_row(p.nas, p.patient_id, p.patient_name, p.birth_date or "", p.sex or "",
                      studies, match)
    out.print(table)
    for note in result.notes:
        out.print(f"[yellow]{note}[/yellow]")
    shown = f"{offset + 1}-{offset + len({p.person for p in result.patients})}"
    out.print(f"{result.total} patient(s); showing {shown} (--limit/--offset to page)")


@app.command()
def images(nas: Annotated[str, typer.Option("--nas")],
           patient_id: Annotated[str, typer.Option("--patient-id")],
           as_json: JsonOpt = False) -> None:
    """Every indexed file of one patient on one NAS, with its exact paths."""
    from nasindex.index.db import require_current
    from nasindex.search import images as find_images

    rows = find_images(require_current(settings().index.url), nas, patient_id)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("Modality", "Display path", "Format", "Size", "Missing since")
    for r in rows:
        table.add_row(r["modality"] or "", r["display_path"], r["format"], str(r["size"]),
                      r["missing_since"] or "")
    out.print(table)
    out.print(f"{len(rows)} file(s)")


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Per NAS: counts of patients, studies, images, missing files, errors; last run."""
    from nasindex.health import nas_status
    from nasindex.index.db import require_current

    rows = nas_status(require_current(settings().index.url))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("NAS", "Type", "Patients", "Studies", "Images", "Missing", "Errors",
                  "Last run")
    for r in rows:
        run = r["last_run"]
        last = f"{run['kind']} {run['status']} {run['ended_at'] or ''}" if run else "never"
        table.add_row(r["nas"], r["type"], *(str(r[k]) for k in
                      ("patients", "studies", "instances", "missing", "errors")), last)
    out.print(table)


@app.command()
def deployments(
    check: Annotated[bool, typer.Option("--check", help="Fail if prefect.yaml is out of date.")
                     ] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Also create them on the Prefect "
                                        "server ($PREFECT_API_URL) with `prefect deploy`.")
                     ] = False,
    file: Annotated[Path | None, typer.Option("--file", help="Default: next to the config.")
                    ] = None,
) -> None:
    """Write prefect.yaml (the Prefect deployments per NAS) from the config."""
    from nasindex import deployments as deployments_mod  # here: YAML is slow to import

    code = deployments_mod.command(settings(), file, check, apply)
    if code:
        sys.exit(code)  # typer.Exit is swallowed by standalone_mode=False in main()


@app.command()
def plugins(ctx: typer.Context) -> None:
    """Installed NAS types, and those that failed to load (with their error)."""
    ctx.find_root().command.list_commands(ctx)  # loads plugin commands: lists their failures
    reg = registry()
    for name, cls in sorted(reg.types.items()):
        out.print(f"[green]ok[/green]     {name}: {cls.description}")
    for name, error in sorted(reg.failures.items()):
        out.print(f"[red]failed[/red] {name}: {error}")


@app.command()
def demo(
    dir_: Annotated[Path, typer.Option("--dir", help="Where the demo NAS data goes.")] = Path(
        "demo-data"),
    patients: Annotated[int, typer.Option("--patients", min=1)] = 10,
    slices: Annotated[int, typer.Option("--slices", min=2, help="Slices per series.")] = 24,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Write a demo config and demo NAS devices (one of every NAS type that has a demo)."""
    config = _config_path or Path("nasindex.toml")
    if config.exists() and not force:
        raise NasIndexError(f"{config} exists; pass --force to overwrite it, "
                            "or --config to write elsewhere.")
    from nasindex import demo as demo_mod  # here: numpy and pydicom are slow to import

    made = demo_mod.write_demo(config, dir_, patients, slices)
    for nas_id, count in made.items():
        out.print(f"demo NAS {nas_id}: {count} patient(s)")
    out.print(f"Config written to {config}. Next: nasindex init && nasindex index --all")


def _safe_url(url: str) -> str:
    """The index URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    try:
        # Without standalone mode click hands back typer.Exit's code instead of exiting.
        code = app(standalone_mode=False)
    except NasIndexError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
