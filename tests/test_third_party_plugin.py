"""A third-party NAS type, written only against the documented public plugin API
(``nasindex.plugin``), built and installed as its own distribution into a separate
virtual environment layered on this one (nothing is installed here), then used
through the real CLI: listed by ``nasindex plugins``, indexed (then found by search),
and its own command run with the config of the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from nasindex.index.db import get_engine, migrate
from nasindex.search import SearchQuery, search
from support import write_config

UV = os.environ.get("UV") or shutil.which("uv") or "uv"  # `uv run` names itself in $UV

PLUGIN_PYPROJECT = """\
[project]
name = "nasindex-sidecar"
version = "1.0.0"
description = "A NAS of JSON sidecar files, one per image (a test of the plugin API)."
requires-python = ">=3.11"
dependencies = ["nasindex>=0.1"]

[project.entry-points."nasindex.nas_types"]
json-sidecar = "nasindex_sidecar:JsonSidecar"

[project.entry-points."nasindex.commands"]
sidecar = "nasindex_sidecar:app"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""

# All it uses of nasindex is nasindex.plugin, as the README documents.
PLUGIN_MODULE = '''\
"""json-sidecar: each image of the NAS is described by a ``<name>.json`` file."""

import json
import os

import typer

from nasindex import plugin


class SidecarOptions(plugin.NasOptions):
    suffix: str = ".json"


class JsonSidecar(plugin.NasType):
    name = "json-sidecar"
    description = "JSON sidecar files, one per image"
    Options = SidecarOptions

    def check(self):
        if not self.root.is_dir():
            raise plugin.NasUnavailable(f"NAS {self.nas_id!r}: no folder {self.root}. Mount it.")

    def scan(self, cursor=None):
        items = []
        for path in sorted(self.root.rglob("*" + self.options.suffix)):
            st = path.stat()
            rel = path.relative_to(self.root).as_posix()
            items.append(plugin.Fingerprint(rel, rel, st.st_size, st.st_mtime_ns))
        return plugin.ScanResult(items=items, complete=True)

    def read(self, batch):
        out = []
        for fp in batch:
            try:
                doc = json.loads((self.root / fp.rel_path).read_text(encoding="utf-8"))
                out.append(plugin.InstanceRecord(key=fp.key, rel_path=fp.rel_path, size=fp.size,
                                                 mtime_ns=fp.mtime_ns, **doc))
            except (ValueError, TypeError) as exc:
                out.append(plugin.ItemFailure(fp.key, fp.rel_path, f"bad sidecar: {exc}"))
        return out


app = typer.Typer(name="sidecar", help="json-sidecar NAS devices.")


@app.command()
def count(nas: str) -> None:
    """How many sidecar files a configured NAS holds."""
    target = plugin.open_nas(plugin.current_settings().get_nas(nas))
    typer.echo(f"{nas}: {len(list(target.scan().items))} sidecar(s) in {os.fspath(target.root)}")
'''


def _sidecar(root: Path, name: str, patient_id: str, patient_name: str, n: int) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "sop_instance_uid": f"1.2.826.0.1.3680043.9.7.{n}", "study_uid": "1.2.3.4",
        "series_uid": "1.2.3.4.1", "patient_id": patient_id, "patient_name": patient_name,
        "modality": "MR", "study_date": "20261102", "file_format": "dicom"}), "utf-8")


def _layered_venv(base: Path) -> Path:
    """A virtual environment that sees this one's packages (through a .pth that adds its
    site-packages as a site directory) but installs into its own: nothing leaks."""
    venv = base / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    ours = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "_nasindex_project.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n", encoding="utf-8")
    return python


@pytest.mark.slow
def test_a_third_party_nas_type_is_installed_and_indexed_through_the_cli(tmp_path: Path):
    source = tmp_path / "nasindex-sidecar"
    (source / "src" / "nasindex_sidecar").mkdir(parents=True)
    (source / "pyproject.toml").write_text(PLUGIN_PYPROJECT, encoding="utf-8")
    (source / "src" / "nasindex_sidecar" / "__init__.py").write_text(PLUGIN_MODULE, "utf-8")
    python = _layered_venv(tmp_path)
    # --offline: hatchling comes from uv's cache, which `uv sync` filled; --no-deps:
    # nasindex is this environment's (the requirement is checked below).
    subprocess.run([UV, "pip", "install", "-q", "--offline", "--no-deps", "--python",
                    str(python), str(source)], check=True, env={**os.environ,
                                                            "UV_LINK_MODE": "copy"})
    root = tmp_path / "share"
    _sidecar(root, "a/one.json", "SC001", "SIDECAR^ANNA", 1)
    _sidecar(root, "a/two.json", "SC001", "SIDECAR^ANNA", 2)
    (root / "b").mkdir()
    (root / "b" / "broken.json").write_text("{not json", "utf-8")
    config = tmp_path / "nasindex.toml"
    settings = write_config(config, {"side": {"type": "json-sidecar", "root": str(root)}})

    def cli(*args: str) -> str:
        done = subprocess.run([python, "-m", "nasindex.cli", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    check = subprocess.run([python, "-c", textwrap.dedent("""\
        from importlib.metadata import requires, version
        from packaging.requirements import Requirement
        need = [Requirement(r) for r in requires("nasindex-sidecar")]
        core = [r for r in need if r.name == "nasindex"]
        print(bool(core) and all(r.specifier.contains(version("nasindex")) for r in core))
        """)], check=True, capture_output=True, text=True)
    assert check.stdout.strip() == "True"  # it declares the nasindex it runs on
    assert "ok     json-sidecar: JSON sidecar files, one per image" in cli("plugins")
    migrate(settings.index.url)
    summary = json.loads(cli("index", "side", "--json"))[0]
    assert (summary["status"], summary["new"], summary["indexed"], summary["failed"]) == (
        "succeeded", 2, 2, 1)  # the broken sidecar is counted as failed, not new
    found = search(get_engine(settings.index.url), SearchQuery(text="anna"), scope=None)
    assert [(p.nas, p.patient_id) for p in found.patients] == [("side", "SC001")]
    assert "side: 3 sidecar(s)" in cli("sidecar", "count", "side")
    assert "json-sidecar" not in {ep.name for ep in entry_points(group="nasindex.nas_types")}
