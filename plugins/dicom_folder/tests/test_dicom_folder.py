"""The dicom-folder NAS type on pydicom's real test files: character sets, files without
preamble, and everything on a share that is not an image."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from dicom_testfiles import CHARSET_FILES, copy_testfile
from nasindex.health import error_list
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import Instance, Patient
from nasindex.registry import open_nas
from support import age, run_nas, write_config


def _index_tree(tmp_path: Path, root: Path):
    age(root)
    settings = write_config(tmp_path / "nasindex.toml",
                            {"mixed": {"type": "dicom-folder", "root": str(root)}})
    migrate(settings.index.url)
    summary = run_nas(settings, "mixed", "full")
    return settings, get_engine(settings.index.url), summary


def test_character_sets_decode_to_the_real_names(tmp_path: Path) -> None:
    root = tmp_path / "share"
    for name in ("chrFren.dcm", "chrGerm.dcm", "chrH31.dcm", "chrRuss.dcm", "chrX1.dcm",
                 "chrGreek.dcm"):
        copy_testfile(name, root / name, CHARSET_FILES)
    _, engine, summary = _index_tree(tmp_path, root)
    assert summary.failed == 0
    with engine.connect() as conn:
        names = set(conn.scalars(select(Patient.patient_name)))
    assert {"Buc^Jérôme", "Äneas^Rüdiger", "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "Люкceмбypг", "Wang^XiaoDong=王^小東", "Διονυσιος"} <= names


def test_files_without_preamble_are_indexed_with_their_encoding(tmp_path: Path) -> None:
    root = tmp_path / "share"
    copy_testfile("ExplVR_LitEndNoMeta.dcm", root / "a" / "little")
    copy_testfile("ExplVR_BigEndNoMeta.dcm", root / "b" / "big")
    _, engine, summary = _index_tree(tmp_path, root)
    assert summary.new == 2 and summary.failed == 0
    with engine.connect() as conn:
        syntaxes = dict(conn.execute(select(Instance.item_key, Instance.transfer_syntax)).all())
    assert syntaxes == {"a/little": "1.2.840.10008.1.2.1", "b/big": "1.2.840.10008.1.2.2"}


def test_non_images_are_skipped_and_broken_files_recorded(tmp_path: Path) -> None:
    root = tmp_path / "share"
    copy_testfile("CT_small.dcm", root / "ok" / "CT_small.dcm")
    copy_testfile("dicomdirtests/DICOMDIR", root / "DICOMDIR")
    (root / "Thumbs.db").write_bytes(b"\x00" * 512)
    (root / "ok" / ".DS_Store").write_bytes(b"Bud1" + b"\x00" * 100)
    (root / "notes.txt").write_text("call radiology re: contrast\n" * 20)
    (root / "empty.dcm").write_bytes(b"")
    copy_testfile("MR_truncated.dcm", root / "cut" / "MR_truncated.dcm")
    settings, engine, summary = _index_tree(tmp_path, root)
    assert summary.indexed == 1
    assert summary.skipped == 5  # DICOMDIR, Thumbs.db, .DS_Store, notes.txt, empty.dcm
    assert summary.failed == 1
    errors = error_list(engine, scope=None)
    assert [(e["path"], e["attempts"]) for e in errors] == [("cut/MR_truncated.dcm", 1)]
    assert "truncated" in errors[0]["reason"]
    # Skipped files are remembered: a sync does not reopen them, nor retry the broken one
    # before its retry time.
    again = run_nas(settings, "mixed", "incremental")
    assert (again.new, again.changed, again.failed, again.indexed) == (0, 0, 0, 0)
    assert again.skipped == 5


def test_open_image_gives_hounsfield_units(settings, ct_root: Path) -> None:
    nas = open_nas(settings.get_nas("ct"))
    first = sorted(p.relative_to(ct_root).as_posix() for p in ct_root.rglob("*.dcm"))[0]
    pixels = nas.open_image(first)
    assert pixels.shape == (32, 32)
    assert pixels.min() <= -900  # air around the body
    assert (pixels > -200).mean() > 0.2  # body tissue and bone
    try:
        nas.open_image("../../etc/passwd")
    except ValueError as exc:
        assert "outside the root" in str(exc)
    else:
        raise AssertionError("a path outside the NAS root was opened")
