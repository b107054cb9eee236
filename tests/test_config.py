"""A bad config is refused with a message naming the NAS, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasindex.config import load_settings
from nasindex.errors import ConfigError
from nasindex.registry import open_nas


def _load(tmp_path: Path, text: str):
    path = tmp_path / "nasindex.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


@pytest.mark.parametrize(("text", "expected"), [
    ('[nas.ct]\nroot = "/x"\n', ["[nas.ct]", "'type'"]),
    ('[nas.ct]\ntype = "dicom-folder"\n', ["[nas.ct]", "'root'"]),
    ('[nas.ct]\ntype = "dicom-folder"\nroot = "/x"\nsync_minutes = "often"\n',
     ["[nas.ct]", "'sync_minutes'", "number"]),
    ('[nas.ct]\ntype = "dicom-folder"\nroot = "/x"\nmax_missing_fraction = 3\n',
     ["[nas.ct]", "'max_missing_fraction'", "less than or equal to 1"]),
    ('[index]\nurl = 5\n', ["'url'", "string"]),
    ('[nas.ct\ntype = 1', ["not valid TOML"]),
    ('[indx]\nurl = "sqlite:///x.db"\n', ["unknown top-level", "indx"]),
])
def test_bad_config_names_the_key_and_the_fix(tmp_path: Path, text: str, expected: list[str]):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    for part in expected:
        assert part in str(info.value)


def test_plugin_keys_are_validated_by_the_plugin(tmp_path: Path) -> None:
    s = _load(tmp_path, '[nas.ct]\ntype = "dicom-folder"\nroot = "/x"\nfollow_symlink = true\n')
    with pytest.raises(ConfigError, match=r"\[nas.ct\].*'follow_symlink'.*not permitted"):
        open_nas(s.nas["ct"])


def test_unknown_type_lists_the_installed_ones(tmp_path: Path) -> None:
    s = _load(tmp_path, '[nas.x]\ntype = "floppy"\nroot = "/x"\n')
    with pytest.raises(ConfigError, match="Unknown NAS type 'floppy'.*dicom-folder"):
        open_nas(s.nas["x"])


def test_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nasindex demo"):
        load_settings(tmp_path / "absent.toml")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    s = _load(tmp_path, '[index]\nurl = "sqlite:///data/i.db"\n'
                        '[nas.ct]\ntype = "dicom-folder"\nroot = "share"\n')
    assert s.index.url == f"sqlite:///{tmp_path / 'data' / 'i.db'}"
    assert s.nas["ct"].root == tmp_path / "share"
    assert s.nas["ct"].sync_minutes == 15 and s.nas["ct"].settle_seconds == 5
    assert s.nas["ct"].freshness_seconds == 60 and s.nas["ct"].sweep_minutes == 60
