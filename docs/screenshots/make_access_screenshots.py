"""Screenshots of the login page and the Audit page, for the README.

Run: ``uv run python docs/screenshots/make_access_screenshots.py``. Builds the tests'
two-NAS demo index (generated demo patients, no real PHI), starts the tests' OpenID
Connect provider (tests/oidc, npm) and the dashboard with ``[auth]``, then drives headless
Chromium: the login page; alice (clinician) searches and opens a patient, dave (limited to
one NAS) types the URL of another NAS's patient, carol (no role) logs in; bob (admin)
opens the Audit page. Writes login.png and audit.png next to this file.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from identity import log_in, running_provider  # noqa: E402
from make_screenshots import save  # noqa: E402

from access_support import ONLY_CT, two_nas_index  # noqa: E402
from browser import Chromium, free_port, streamlit_app, table_text, text_present  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="nasindex-access-shots-"))
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth2callback"
    env = {"SHOT_OIDC_SECRET": "", "SHOT_COOKIE_SECRET": secrets.token_hex(32)}
    try:
        with running_provider(callback) as provider:
            env["SHOT_OIDC_SECRET"] = provider.client_secret
            settings = two_nas_index(work, provider.auth_toml(
                callback, "SHOT_OIDC_SECRET", "SHOT_COOKIE_SECRET"))
            with streamlit_app(settings.path, port, env) as base, \
                    Chromium(1400, 800) as browser:
                browser.goto(base + "/")
                browser.wait_for(text_present("Log in with your clinic account"), 60)
                time.sleep(1)
                save(browser, "login")
                _activity(browser, base)
                browser.call("Network.clearBrowserCookies")
                log_in(browser, base, "bob")
                browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=900,
                             deviceScaleFactor=1, mobile=False)
                browser.goto(base + "/audit")
                browser.wait_for(table_text() + ".includes('alice@example.test')", 60)
                time.sleep(1.5)  # the table's canvas paints after its text
                save(browser, "audit")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("login", "audit"):
        print(HERE / f"{name}.png", (HERE / f"{name}.png").stat().st_size // 1024, "KB")


def _activity(browser: Chromium, base: str) -> None:
    """What the Audit page then shows: a search, a patient page and its previews, a
    refusal and a user without a role."""
    log_in(browser, base, "alice")
    box = 'input[aria-label="Name, Patient ID or accession number"]'
    browser.type_into(box, "garcia")
    browser.press("Enter")
    browser.wait_for(text_present("showing 1"), 30)
    browser.goto(base + f"/patient?nas=ct&id={ONLY_CT[1].patient_id}")
    browser.wait_for(text_present("Slice 1 of"), 60)
    browser.call("Network.clearBrowserCookies")
    log_in(browser, base, "dave")
    browser.goto(base + f"/patient?nas=ct&id={ONLY_CT[0].patient_id}")
    browser.wait_for(text_present("not among the NAS devices"), 60)
    browser.call("Network.clearBrowserCookies")
    log_in(browser, base, "carol", "Ask your administrator")


if __name__ == "__main__":
    main()
