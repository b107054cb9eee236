"""``nasindex init``, ``index``, ``sync``, ``retry``: create the index and run the sync
engine on NAS devices. The engine (SQLAlchemy, the NAS types) is imported when a
command runs, not when the CLI starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from nasindex.cli import output
from nasindex.cli.options import AllOpt, JsonOpt, NasArg, NoHashOpt, settings
from nasindex.errors import IndexStorageError, NasIndexError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from nasindex.config import NasSettings, Settings
    from nasindex.contract import NasType
    from nasindex.sync import RunSummary

ERRORS_SHOWN = 5  # per run; `nasindex status` and the dashboard list them all


RebuildOpt = Annotated[bool, typer.Option(
    "--rebuild", help="Set a damaged SQLite index aside (kept beside it), create a new one "
    "and index every NAS again. The images are never touched.")]


def init(rebuild: RebuildOpt = False) -> None:
    """Create the index, or migrate it to the current schema."""
    from sqlalchemy.engine import make_url

    from nasindex.index.db import migrate

    s = settings()
    if rebuild:
        from nasindex.index.db import get_engine
        from nasindex.index.faults import set_aside
        from nasindex.runlock import lock_held

        busy = [nas for nas in s.nas if lock_held(get_engine(s.index.url), nas)]
        if busy:
            raise IndexStorageError(f"A run of {', '.join(busy)} is using the index; stop "
                                    "it, then run `nasindex init --rebuild` again.")
        kept = set_aside(s.index.url)
        if kept is not None:
            output.say(f"The old index was kept as {kept}")
    migrate(s.index.url)
    output.say(f"Index ready at {make_url(s.index.url).render_as_string(hide_password=True)}")
    if rebuild:
        _run_many("full", None, True, False, True)  # everything the old index knew, again


def index(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False,
          no_hash: NoHashOpt = False) -> None:
    """Full index: list the NAS and (re-)read every file."""
    _run_many("full", nas, all_, as_json, not no_hash)


def sync(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False,
         no_hash: NoHashOpt = False) -> None:
    """Incremental sync: read only new and changed files; tombstone vanished ones."""
    _run_many("incremental", nas, all_, as_json, not no_hash)


def retry(nas: NasArg = None, all_: AllOpt = False, as_json: JsonOpt = False,
          no_hash: NoHashOpt = False) -> None:
    """Re-read the files that failed before, now, without waiting for their retry time."""
    _run_many("retry", nas, all_, as_json, not no_hash)


def targets(s: Settings, nas: str | None, all_: bool) -> list[NasSettings]:
    if all_:
        return list(s.nas.values())
    if not nas:
        raise typer.BadParameter("name a NAS or pass --all")
    return [s.get_nas(nas)]


def _run_many(kind: str, nas: str | None, all_: bool, as_json: bool, hash_files: bool
              ) -> None:
    from nasindex.index.db import require_current
    from nasindex.registry import open_nas

    s = settings()
    chosen = targets(s, nas, all_)  # a mistyped NAS is named before the index is opened
    engine = require_current(s.index.url)
    summaries: list[RunSummary] = []
    failed = False
    for nas_settings in chosen:
        try:
            target = open_nas(nas_settings)
            summaries.append(_run_one(target, nas_settings, engine, kind, as_json, hash_files))
        except NasIndexError as exc:
            failed = True
            output.say((f"{nas_settings.id}: ", "bold red"), (str(exc), "red"), err=True)
    if as_json:
        output.print_json([x.as_dict() for x in summaries])
    if failed:
        raise typer.Exit(1)


def _run_one(nas: NasType, nas_settings: NasSettings, engine: Engine, kind: str,
             quiet: bool, hash_files: bool) -> RunSummary:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from nasindex.sync import run_sync

    label = TextColumn(output.clean(f"{nas.nas_id} {kind}"), markup=False)
    stderr = output.console(stderr=True)
    with Progress(label, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True,
                  disable=quiet or not stderr.is_terminal) as bar:  # no bar in logs
        task = bar.add_task("read", total=None)
        summary = run_sync(nas, nas_settings, engine, kind,
                           on_progress=lambda done, total: bar.update(task, completed=done,
                                                                      total=total),
                           hash_files=hash_files)
    if not quiet:
        output.say(_summary_line(summary))
        for path, reason in summary.first_errors[:ERRORS_SHOWN]:
            output.say("  ", ("error", "yellow"), f" {path}: {reason}")
    return summary


def _summary_line(x: RunSummary) -> str:
    return (f"{x.nas}: {x.kind} {x.status} in {x.seconds:.1f}s - seen {x.seen}, "
            f"new {x.new}, changed {x.changed}, missing {x.missing}, revived {x.revived}, "
            f"failed {x.failed}, skipped {x.skipped}, waiting {x.deferred} "
            f"({x.files_per_second:.0f} files/s); hashed {x.hashed} after it")
