"""The command group: the built-in commands plus those NAS types bring (entry points
``nasindex.commands``).

A plugin's command module is imported only when that command runs (or by ``nasindex
plugins``): importing one pulls in its NAS type, database drivers and image codecs
(~1 s), which ``--help`` and every other command must not pay. The help lists a plugin
command with its distribution's summary, read from its metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from typer._click.exceptions import UsageError  # typer's vendored click
from typer.core import TyperGroup

from nasindex.errors import NasIndexError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from typer.core import TyperCommand

PLUGIN_COMMANDS = "nasindex.commands"


def _plugin_entry_points(name: str | None = None) -> list[EntryPoint]:
    from importlib.metadata import entry_points

    eps = entry_points(group=PLUGIN_COMMANDS)
    return [ep for ep in eps if name is None or ep.name == name]


class CommandGroup(TyperGroup):
    """``nasindex``'s commands; plugin commands stay unloaded until one is invoked."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        for ep in _plugin_entry_points():
            self.commands.setdefault(ep.name, _placeholder(ep))
        return super().list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | None:
        if cmd_name not in self.commands:
            for ep in _plugin_entry_points(cmd_name):
                self.commands[cmd_name] = _placeholder(ep)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        # Only a command about to run is resolved (help only lists them): load it now.
        command = self.get_command(ctx, args[0]) if args else None
        if isinstance(command, _Placeholder):
            self._load(command.entry_point, strict=True)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            # click's parser raises some mistakes (an option without its value) without a
            # context: name the command they were made in, for the hint.
            if exc.ctx is None and ctx.invoked_subcommand:
                exc.command_path = f"{ctx.command_path} {ctx.invoked_subcommand}"
            raise

    def load_all(self, ctx: typer.Context) -> None:
        """Import every plugin command (``nasindex plugins`` lists those that fail)."""
        for ep in _plugin_entry_points():
            self._load(ep, strict=False)

    def _load(self, ep: EntryPoint, strict: bool) -> None:
        current = self.commands.get(ep.name)
        if current is not None and not isinstance(current, _Placeholder):
            return  # loaded before, or a built-in command of that name (it wins)
        try:
            self.commands[ep.name] = typer.main.get_group(ep.load())
        except Exception as exc:  # a broken plugin must not break the other commands
            from nasindex.registry import registry

            error = f"{type(exc).__name__}: {exc}"
            registry().failures.setdefault(f"{ep.name} (commands)", error)
            if strict:
                raise NasIndexError(f"The command {ep.name!r} ({ep.value}) failed to load: "
                                    f"{error}. Reinstall its plugin; `nasindex plugins` lists "
                                    "what loads.") from None


class _Placeholder(TyperGroup):
    """Stands in for a plugin command in the help until the command runs."""

    entry_point: EntryPoint


def _placeholder(ep: EntryPoint) -> _Placeholder:
    summary = (ep.dist.metadata["Summary"] if ep.dist is not None else None) or (
        f"Commands of the plugin {ep.value.split(':')[0]}.")
    group = _Placeholder(name=ep.name, help=summary, short_help=summary)
    group.entry_point = ep
    return group
