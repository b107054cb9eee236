"""The README's promises about the command line, as a user meets them in a real process:
every usage mistake is one line on stderr naming the cause and the fix, exit 2, no
traceback; and the commands a clinician types often start without importing what they
do not need (the import lists decide the 0.25 s start-up, and do not flake with load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_cli, start_cli

# (arguments, what the line must name)
MISTAKES = [
    # click suggests every close command: 'search' and, since the API, 'serve'
    (["serch", "x"], "No such command 'serch'. Did you mean 'search'"),
    (["images", "--nas", "ct"], "Missing option '--patient-id'"),
    (["images", "--patient-id", "PAT00001"], "Missing option '--nas'"),
    (["search", "--limit", "many"], "'--limit'"),
    (["search", "--limit", "0"], "'--limit'"),
    (["search", "--offset", "-5"], "'--offset'"),
    (["search", "--frobnicate"], "No such option: --frobnicate"),
    (["search", "--modality"], "'--modality' requires an argument"),
    (["search", "--from", "2024-13-40"], "'--from': The date is not a valid date"),
    (["search", "jane", "doe"], 'put a value with spaces in quotes ("jane doe")'),
    (["--colour", "status"], "No such option: --colour"),
    (["sync"], "name a NAS or pass --all"),
    (["sync", "nope"], "No NAS 'nope'"),
    (["demo", "--patients", "none"], "'--patients'"),
    (["--config", "missing.toml", "status"], "No config file at missing.toml"),
    (["firebird", "inspect"], "Missing argument"),
]


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory) -> dict[str, tuple[int, str, str]]:
    """Every mistake run at once, as separate processes, in a folder with a config."""
    cwd = tmp_path_factory.mktemp("usage")
    (cwd / "nasindex.toml").write_text(
        '[index]\nurl = "sqlite:///index.db"\n[nas.ct]\ntype = "dicom-folder"\nroot = "."\n')
    procs = {" ".join(args): start_cli(*args, cwd=cwd) for args, _ in MISTAKES}
    return {key: (p.wait(120), *p.communicate()) for key, p in procs.items()}


@pytest.mark.parametrize(("args", "cause"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_usage_mistake_is_one_line_and_exit_2(mistakes, args, cause) -> None:
    code, out, err = mistakes[" ".join(args)]
    assert "Traceback" not in out + err
    assert code == 2, err
    assert out == "" and len(err.splitlines()) == 1, err
    line = err.strip()
    assert line.startswith("error: ") and cause in line, line
    assert "2024-13-40" not in line and "doe" not in line.replace('"jane doe"', "")
    # and the fix: a command's help, or what to do instead
    assert "--help" in line or any(w in line for w in ("pass", "Create", "configured")), line


def test_bare_command_and_help_print_help_and_exit_0(tmp_path: Path) -> None:
    for args in ([], ["--help"], ["search", "--help"]):
        proc = run_cli(*args, cwd=tmp_path)
        assert "Usage: nasindex" in proc.stdout and proc.stderr == ""
    assert "firebird" in run_cli("--help", cwd=tmp_path).stdout  # a plugin's command too


# What start-up must not import, per command. Everything: the demo writer and the image
# stack (pydicom, numpy, pillow), the NAS types and their drivers, the engine, migrations,
# Prefect, the dashboard's libraries. Help and usage mistakes: not the config or the
# index either; help not even rich. (typer itself validates parameters with pydantic.)
NEVER = {"pydicom", "numpy", "PIL", "nasindex.demo", "nasindex_dicom_folder",
         "nasindex_firebird_jp2", "fdb", "glymur", "nasindex.sync", "nasindex.store",
         "nasindex.registry", "alembic", "prefect", "pandas", "streamlit", "yaml"}
NO_INDEX = NEVER | {"sqlalchemy", "sqlmodel", "nasindex.config", "nasindex.search",
                    "nasindex.health", "nasindex.index"}


def _imported(args: list[str], cwd: Path) -> set[str]:
    """Every module a real ``nasindex ARGS`` imports (``python -X importtime``)."""
    proc = run_cli(*args, cwd=cwd, python_flags=("-X", "importtime"), check=False)
    assert proc.returncode in (0, 2), proc.stderr
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _offenders(modules: set[str], banned: set[str]) -> set[str]:
    return {m for m in modules if m in banned or m.split(".")[0] in banned
            or any(m.startswith(b + ".") for b in banned)}


@pytest.mark.parametrize(("args", "banned"), [(["--help"], NO_INDEX | {"rich"}),
                                              (["search", "--help"], NO_INDEX | {"rich"}),
                                              (["serch", "x"], NO_INDEX),
                                              (["search", "--limit", "x"], NO_INDEX)])
def test_help_and_mistakes_import_only_the_command_line(cli_demo, args, banned) -> None:
    modules = _imported(args, cli_demo)
    assert "nasindex.cli" in modules  # the check sees the imports
    assert not _offenders(modules, banned)


@pytest.mark.parametrize("args", [["status"], ["search", "muller"], ["search", "--json", "doe"],
                                  ["images", "--nas", "ct", "--patient-id", "PAT00001"]])
def test_everyday_commands_import_no_image_stack_engine_or_plugin(cli_demo, args) -> None:
    modules = _imported(args, cli_demo)
    assert "sqlalchemy" in modules  # the check sees the imports (the command did run)
    assert not _offenders(modules, NEVER)
