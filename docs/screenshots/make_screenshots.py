"""Screenshots of the three dashboard pages with demo data, for the README.

Run: ``uv run python docs/screenshots/make_screenshots.py``. Builds a demo (``nasindex
demo``, ``init``, ``index --all``, one unreadable file and a later ``sync --all`` so the
health page has an error and several runs), starts the app, drives headless Chromium
and writes search.png, patient.png and health.png next to this file (palette PNGs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import Chromium, count_images, streamlit_app, table_text, text_present  # noqa: E402

CLI = str(Path(sys.executable).with_name("nasindex"))


def cli(config: Path, *args: str) -> None:
    subprocess.run([CLI, "--config", str(config), *args], check=True, capture_output=True)


def build_demo(work: Path) -> Path:
    config = work / "nasindex.toml"
    cli(config, "demo", "--dir", str(work / "data"), "--patients", "30", "--slices", "24")
    cli(config, "init")
    cli(config, "index", "--all")
    # A file cut short while being copied: the health page lists it with its reason.
    sample = next((work / "data" / "ct").rglob("*.dcm"))
    (sample.parent / "IM_99999.dcm").write_bytes(sample.read_bytes()[:3000])
    subprocess.run(["touch", "-d", "2 hours ago", str(sample.parent / "IM_99999.dcm")],
                   check=True)
    cli(config, "sync", "--all")
    return config


def save(browser: Chromium, name: str) -> None:
    raw = HERE / f"{name}.raw.png"
    browser.screenshot(raw)
    with Image.open(raw) as img:
        img.convert("RGB").quantize(192).save(HERE / f"{name}.png", optimize=True)
    raw.unlink()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="nasindex-shots-"))
    try:
        config = build_demo(work)
        with streamlit_app(config) as base, Chromium(1400, 1000) as browser:
            browser.goto(base + "/")
            browser.wait_for(text_present("Find a patient"), 60)
            browser.type_into('input[aria-label="Name, Patient ID or accession number"]',
                              "maria")
            browser.press("Enter")
            browser.wait_for(text_present("showing 1"), 30)
            time.sleep(1.5)  # the table's canvas paints after the text
            save(browser, "search")
            browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=1250,
                         deviceScaleFactor=1, mobile=False)
            browser.goto(base + "/patient?nas=ct&id=PAT00002")
            browser.wait_for(count_images(13), 60)
            time.sleep(1)
            save(browser, "patient")
            browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=1500,
                         deviceScaleFactor=1, mobile=False)
            browser.goto(base + "/health")
            browser.wait_for(text_present("Runs over time"), 60)
            browser.wait_for(table_text() + ".includes(\"IM_99999.dcm\")", 30)
            time.sleep(2)  # the chart renders after the page text
            save(browser, "health")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("search", "patient", "health"):
        print(HERE / f"{name}.png", (HERE / f"{name}.png").stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
