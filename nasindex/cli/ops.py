"""``nasindex status``, ``plugins``, ``deployments`` and ``demo``: what an operator
checks and sets up. Each imports its heavy parts (SQLAlchemy, YAML, pydicom) when it
runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasindex.cli import output
from nasindex.cli.options import JsonOpt, config_path, settings
from nasindex.errors import NasIndexError


def status(as_json: JsonOpt = False) -> None:
    """Per NAS: counts of patients, studies, images, missing files, errors; last run."""
    from nasindex.health import nas_status
    from nasindex.index.db import require_current

    rows = nas_status(require_current(settings().index.url), scope=None)
    if as_json:
        output.print_json(rows)
        return
    output.table(("NAS", "Type", "Patients", "Studies", "Images", "Missing", "Errors",
                  "Last run"),
                 ([r["nas"], r["type"], r["patients"], r["studies"], r["instances"],
                   r["missing"], r["errors"], _last_run(r["last_run"])] for r in rows))


def _last_run(run: dict | None) -> str:
    return f"{run['kind']} {run['status']} {run['ended_at'] or ''}" if run else "never"


def plugins(ctx: typer.Context) -> None:
    """Installed NAS types, and those that failed to load (with their error)."""
    from nasindex.registry import registry

    ctx.find_root().command.load_all(ctx)  # plugin commands: lists their failures too
    reg = registry()
    for name, cls in sorted(reg.types.items()):
        output.say(("ok", "green"), f"     {name}: {cls.description}")
    for name, error in sorted(reg.failures.items()):
        output.say(("failed", "red"), f" {name}: {error}")


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
    from nasindex.ops import deployments as deployments_mod  # YAML and Prefect names

    code = deployments_mod.command(settings(), file, check, apply)
    if code:
        raise typer.Exit(code)


def demo(
    dir_: Annotated[Path, typer.Option("--dir", help="Where the demo NAS data goes.")] = Path(
        "demo-data"),
    patients: Annotated[int, typer.Option("--patients", min=1)] = 10,
    slices: Annotated[int, typer.Option("--slices", min=2, help="Slices per series.")] = 24,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Write a demo config and demo NAS devices (one of every NAS type that has a demo)."""
    config = config_path() or Path("nasindex.toml")
    if config.exists() and not force:
        raise NasIndexError(f"{config} exists; pass --force to overwrite it, "
                            "or --config to write elsewhere.")
    from nasindex.ops.demo import write_demo  # numpy and pydicom

    made = write_demo(config, dir_, patients, slices)
    for nas_id, count in made.items():
        output.say(f"demo NAS {nas_id}: {count} patient(s)")
    output.say(f"Config written to {config}. Next: nasindex init && nasindex index --all")
