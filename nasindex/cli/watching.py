"""``nasindex watch``: keep NAS devices fresh from the shell (what the ``watch/<nas>``
Prefect deployment runs): poll each every few seconds, index what changed, hash in
between. The engine is imported when the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from nasindex.cli import output
from nasindex.cli.options import AllOpt, JsonOpt, settings
from nasindex.cli.runs import targets

if TYPE_CHECKING:
    from nasindex.freshness import Poll, Watcher

NasArgs = Annotated[list[str] | None, typer.Argument(help="NAS ids from the config.",
                                                     show_default=False)]
OnceOpt = Annotated[bool, typer.Option("--once", help="One poll of each NAS, then exit.")]


def watch(nas: NasArgs = None, all_: AllOpt = False, once: OnceOpt = False,
          as_json: JsonOpt = False) -> None:
    """Poll NAS devices every few seconds (freshness_seconds) and index what changed,
    until Ctrl-C. Polls that change nothing print nothing and record no run."""
    from nasindex.freshness import Watcher
    from nasindex.freshness import watch as watch_all
    from nasindex.index.db import require_current
    from nasindex.registry import open_nas

    if as_json and not once:
        raise typer.BadParameter("--json goes with --once (a watch prints as it goes)")
    s = settings()
    chosen = [n for name in (nas or [None]) for n in targets(s, name, all_)]
    engine = require_current(s.index.url)
    watchers = [Watcher(open_nas(n), n, engine, on_poll=_printer(n.id, quiet=as_json))
                for n in chosen]
    if once:
        polls = [w.poll_once() for w in watchers]
        if as_json:
            output.print_json([_poll_dict(w, p) for w, p in zip(watchers, polls, strict=True)])
        if any(p.message for p in polls):
            raise typer.Exit(1)
        return
    output.say(f"watching {', '.join(w.settings.id for w in watchers)}: a poll every "
               + ", ".join(f"{w.interval:.0f} s" for w in watchers) + " (Ctrl-C stops)")
    try:
        reason = watch_all(watchers)
    except KeyboardInterrupt:
        reason = "stopped"
    output.say(f"the watch ended: {reason}")


def _printer(nas_id: str, quiet: bool):
    """What a poll prints: its changes, or why it could not poll (once per reason)."""
    last: list[str | None] = [None]

    def show(p: Poll) -> None:
        if quiet:
            return
        if p.run is not None:
            r = p.run
            lag = (f"; the newest file searchable {r.newest_lag:.0f} s after it was written"
                   if r.newest_lag is not None else "")
            output.say(f"{nas_id}: poll indexed new {r.new}, changed {r.changed}, missing "
                       f"{r.missing}, revived {r.revived}, failed {r.failed}{lag}")
        if p.message != last[0] and p.message:
            output.say((f"{nas_id}: ", "bold red"), (p.message, "red"), err=True)
        last[0] = p.message

    return show


def _poll_dict(w: Watcher, p: Poll) -> dict:
    return {"nas": w.settings.id, "poll_seconds": round(p.seconds, 3),
            "run": p.run.as_dict() if p.run is not None else None, "message": p.message,
            "deferred": p.deferred}
