"""The index the dashboard's search tests share (AppTest and Chromium): enough patients
for more than one page of results, on two NAS devices, a few of them with names and
descriptions that are Markdown and HTML (text from files is data, never markup).
Registered as a fixture by conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config as st_config

from nasindex.demo import demo_patients
from nasindex.index.db import migrate
from support import age, run_nas, write_config, write_tree

PATIENTS = 32  # more than one page (25)
# What a hostile or merely odd file could hold (within the DICOM lengths: 64 characters
# a name part, 64 a description). Rendered as Markdown or HTML, each would fetch a URL,
# make a link, an emoji, a formula, or style the text.
HOSTILE_NAME = ("![x](http://beacon.invalid/b.png) *B* :smile:^"
                "<img src=http://img.invalid/i.png> $x^2$ :material/home:")
HOSTILE_DESCRIPTION = "[doc](http://evil.invalid/) see http://bare.invalid a@b.invalid"


def loopback_server() -> None:
    """AppTest has no server: say it listens on loopback, as `make run` does (else the
    pages refuse to show data without login, as on every interface)."""
    st_config.set_option("server.address", "127.0.0.1")


@pytest.fixture(scope="session")
def clinic(tmp_path_factory) -> Path:
    """A config whose index holds ``PATIENTS`` people on NAS ct (and every third on ct2
    too), the last with a hostile name and descriptions; returns the config's path."""
    base = tmp_path_factory.mktemp("clinic")
    people = demo_patients(PATIENTS, slices=2)
    people[-1].name = HOSTILE_NAME
    for study in people[-1].studies:
        study.description = HOSTILE_DESCRIPTION
    write_tree(base / "ct", people, size=16)
    write_tree(base / "ct2", people[::3], size=16)
    for root in (base / "ct", base / "ct2"):
        age(root)
    config = base / "nasindex.toml"
    settings = write_config(config, {
        "ct": {"type": "dicom-folder", "root": str(base / "ct"), "display_root": "\\\\nas1\\ct"},
        "ct2": {"type": "dicom-folder", "root": str(base / "ct2")}})
    migrate(settings.index.url)
    for nas in ("ct", "ct2"):
        run_nas(settings, nas, "full")
    return config
