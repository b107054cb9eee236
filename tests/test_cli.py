"""The `nasindex` command as a user runs it: a real process, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasindex.demo import demo_patients
from support import run_cli as nasindex


def test_demo_index_search_finds_a_patient_typed_given_name_first(cli_demo: Path) -> None:
    patient = demo_patients(3)[0]  # MÜLLER^<given>
    family, given = patient.name.split("^")
    typed = f"{given} {family}".lower()
    hits = json.loads(nasindex("search", typed, "--json", cwd=cli_demo).stdout)
    ct = [h for h in hits if h["nas"] == "ct"]
    assert [h["patient_id"] for h in ct] == [patient.patient_id]
    assert ct[0]["patient_name"] == patient.name
    assert set(ct[0]) >= {"nas", "patient_id", "patient_name", "birth_date", "sex", "studies"}
    study = ct[0]["studies"][0]
    assert set(study) >= {"study_uid", "date", "description", "modalities", "accession",
                          "series_count", "instance_count"}
    assert study["modalities"] == ["CT"] and study["instance_count"] >= 2


@pytest.mark.parametrize("typed", ["Müller*", "muller", "M?LLER", "MÜLLER^"])
def test_name_forms_a_clinician_types(cli_demo: Path, typed: str) -> None:
    hits = json.loads(nasindex("search", typed, "--json", cwd=cli_demo).stdout)
    assert "PAT00001" in {h["patient_id"] for h in hits}


def test_images_json_gives_exact_and_workstation_paths(cli_demo: Path) -> None:
    rows = json.loads(nasindex("images", "--nas", "ct", "--patient-id", "PAT00001", "--json",
                               cwd=cli_demo).stdout)
    assert rows and all(Path(r["path"]).is_file() for r in rows)
    first = rows[0]
    assert first["display_path"].startswith("\\\\nas1\\ct\\PAT00001\\")
    assert "/" not in first["display_path"]
    assert first["missing_since"] is None and first["format"] == "dicom"
    assert set(first) == {"sop_instance_uid", "study_uid", "series_uid", "modality", "path",
                          "display_path", "format", "transfer_syntax", "size", "missing_since"}


def test_status_json_reports_counts_and_last_run(cli_demo: Path) -> None:
    rows = {r["nas"]: r for r in json.loads(nasindex("status", "--json", cwd=cli_demo).stdout)}
    ct = rows["ct"]
    assert ct["type"] == "dicom-folder"
    assert ct["patients"] == 3 and ct["instances"] > 0 and ct["missing"] == 0
    assert ct["last_run"]["status"] == "succeeded" and ct["last_run"]["kind"] == "full"


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = nasindex("search", "x", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "No config file" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "nasindex.toml").write_text('[index]\nurl = "sqlite:///i.db"\n')
    proc = nasindex("status", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "nasindex init" in proc.stderr


def test_a_broken_plugin_is_listed_and_the_others_keep_working(tmp_path: Path,
                                                                cli_demo: Path) -> None:
    # A real installed-looking distribution whose entry point fails to import.
    site = tmp_path / "site"
    (site / "broken_nas").mkdir(parents=True)
    (site / "broken_nas" / "__init__.py").write_text("import does_not_exist\n")
    dist = site / "broken_nas-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-nas\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[nasindex.nas_types]\ntape = broken_nas:Tape\n")
    env = {"PYTHONPATH": str(site)}
    out = nasindex("plugins", cwd=cli_demo, env=env).stdout
    assert "dicom-folder" in out
    assert "tape" in out and "No module named 'does_not_exist'" in out
    hits = json.loads(nasindex("search", "muller", "--json", cwd=cli_demo, env=env).stdout)
    assert hits


def test_a_failed_run_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "nasindex.toml").write_text(
        '[index]\nurl = "sqlite:///i.db"\n[nas.ct]\ntype = "dicom-folder"\nroot = "gone"\n')
    nasindex("init", cwd=tmp_path)
    proc = nasindex("sync", "ct", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "mount" in proc.stderr


def test_search_by_birth_date_and_accession(cli_demo: Path) -> None:
    patient = demo_patients(3)[1]
    accession = patient.studies[0].accession
    by_birth = json.loads(nasindex("search", "--born", patient.birth_date, "--nas", "ct",
                                   "--json", cwd=cli_demo).stdout)
    assert [h["patient_id"] for h in by_birth] == [patient.patient_id]
    by_acc = json.loads(nasindex("search", "--accession", accession, "--json",
                                 cwd=cli_demo).stdout)
    assert {h["patient_id"] for h in by_acc} == {patient.patient_id}
    assert [s["accession"] for s in by_acc[0]["studies"]] == [accession]
