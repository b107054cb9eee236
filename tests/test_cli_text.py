"""Text from files and databases is data, never markup, in everything the CLI prints:
names, descriptions and paths that look like rich markup are shown as they are, and no
message can crash the command (real DICOM files, a real Firebird client, real processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from browser import free_port
from nasindex.cli import output
from nasindex.demo import demo_patients
from support import age, run_cli, start_cli, write_config, write_tree

MARKUP = "MARKUP^[/bold]ZED"
LINK = "[link=http://evil.example/]EVIL[/link]^LINKED"
EMOJI = "SMILEY^:smile: [red]RED[/red]"
DESCRIPTION = "[bold]CT[/bold] see [link=http://evil.example/]here[/link]"
WIDE = {"COLUMNS": "250"}  # a table cell is not wrapped, so it can be compared whole


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A DICOM NAS whose names and descriptions are rich markup, with one broken file
    whose path is markup too, and a Firebird NAS whose server is down (its message holds
    ``host[/port]:path``); indexed by ``nasindex index --all``, which is returned."""
    base = tmp_path_factory.mktemp("hostile")
    people = demo_patients(3, slices=2)
    for person, name in zip(people, (MARKUP, LINK, EMOJI), strict=True):
        person.name = name
        for study in person.studies:
            study.description = DESCRIPTION
    write_tree(base / "ct", people, size=16)
    good = next((base / "ct").rglob("*.dcm"))
    (good.parent / "IM[").mkdir()  # the path .../IM[/y].dcm: a folder "IM[", a file "y].dcm"
    (good.parent / "IM[" / "y].dcm").write_bytes(good.read_bytes()[:600])  # truncated
    age(base / "ct")
    (base / "share").mkdir()
    (base / "share" / "IMG0001.jp2").write_bytes(b"not empty")
    write_config(base / "nasindex.toml", {
        "ct": {"type": "dicom-folder", "root": str(base / "ct")},
        "pacs": {"type": "firebird-jp2", "root": str(base / "share"),
                 "password_env": "NASINDEX_TEST_PW",
                 "database": f"127.0.0.1/{free_port()}:/srv/pacs/PACS.FDB"}})
    run_cli("init", cwd=base)
    return base, run_cli("index", "--all", cwd=base, env={**WIDE, "NASINDEX_TEST_PW": "x"},
                         check=False)


def test_sync_output_shows_a_markup_file_name_as_it_is(hostile) -> None:
    _, proc = hostile
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "/IM[/y].dcm: " in proc.stdout and "failed 1" in proc.stdout, proc.stdout


def test_an_unreachable_firebird_server_is_one_line_not_a_markup_crash(hostile) -> None:
    _, proc = hostile
    assert proc.returncode == 1  # the other NAS was indexed; this one failed
    [line] = proc.stderr.splitlines()
    assert line.startswith("pacs: ") and "cannot reach the Firebird server" in line
    assert "(host[/port]:path)" in line


def test_search_shows_markup_names_and_descriptions_literally(hostile) -> None:
    base, _ = hostile
    shown = {typed: start_cli("search", typed, cwd=base, env=WIDE)
             for typed in ("zed", "linked", "smiley")}
    for (typed, proc), name in zip(shown.items(), (MARKUP, LINK, EMOJI), strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and not err, err
        assert name in out and DESCRIPTION in out, (typed, out)
        assert "\x1b]8;" not in out  # no terminal hyperlink was made


def test_control_characters_are_shown_escaped(capsys) -> None:
    output.say("name: ", ("DOE^\x1b[2JJANE\x07", "bold"))
    output.error("path a\nb")
    out, err = capsys.readouterr()
    assert out == "name: DOE^\\x1b[2JJANE\\x07\n"
    assert err == "error: path a b\n"
