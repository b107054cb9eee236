"""Login for real: a real OpenID Connect provider, `streamlit run dashboard/app.py` with
`[auth]`, headless Chromium typing into the provider's own login form. One Streamlit and
one browser for the whole sequence: a clinician, a user limited to one NAS, a user with no
role and an admin, then the idle timeout; the audit trail (and its ATNA copy in a real
rsyslog) shows each of them, and the logs hold no patient names and no secrets."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from identity import email, log_in, log_out

from access_support import ONLY_CT, PHI_NAMES, SHARED, two_nas_index
from browser import (
    NO_SPINNER,
    Chromium,
    count_images,
    streamlit_app,
    table_text,
    text_present,
)

ROOT = Path(__file__).resolve().parents[1]
SEARCH_BOX = 'input[aria-label="Name, Patient ID or accession number"]'
GARCIA = ONLY_CT[1]  # GARCÍA^María, on ct only
SECRET_ENV, COOKIE_ENV = "NASINDEX_TEST_OIDC_SECRET", "NASINDEX_TEST_COOKIE_SECRET"


@pytest.fixture(scope="module")
def site(tmp_path_factory, oidc_provider, dashboard_port, rsyslog):
    base = tmp_path_factory.mktemp("login")
    callback = f"http://127.0.0.1:{dashboard_port}/oauth2callback"
    settings = two_nas_index(base, oidc_provider.auth_toml(callback, SECRET_ENV, COOKIE_ENV)
                             + f'\n[audit]\nsyslog = "tcp://127.0.0.1:{rsyslog.tcp}"\n')
    cookie = secrets.token_hex(32)
    log = base / "streamlit.log"
    env = {SECRET_ENV: oidc_provider.client_secret, COOKIE_ENV: cookie}
    with streamlit_app(settings.path, dashboard_port, env, log) as url, Chromium() as browser:
        yield {"url": url, "browser": browser, "settings": settings, "log": log,
               "secrets": [oidc_provider.client_secret, cookie]}


def body(browser) -> str:
    return browser.eval("document.body.innerText")


def search(browser, url: str, typed: str, expect: str) -> None:
    """A search typed in a freshly opened search page (the page's own handling of
    several searches in a row is tests/test_dashboard_browser.py's business)."""
    browser.goto(url + "/")
    box = json.dumps(SEARCH_BOX)
    # Type once the page has finished drawing (a redraw would drop what was typed).
    browser.wait_for(f"!!document.querySelector({box}) && {NO_SPINNER}", 60, "the search box")
    browser.type_into(SEARCH_BOX, typed)
    browser.wait_for(f"document.querySelector({box}).value === {json.dumps(typed)}", 10,
                     "the typed text in the box")
    browser.press("Enter")
    try:
        browser.wait_for(text_present(expect), 60, f"{expect!r} after searching {typed!r}")
    except TimeoutError as exc:  # say what the page showed instead (demo data only)
        raise AssertionError(f"{exc}; the page shows: {body(browser)[:600]}") from None


def switch_user(browser) -> None:
    """The next person at this browser (the logout itself is tested with alice): forget
    the session cookies, as a closed browser does."""
    browser.call("Network.clearBrowserCookies")


def trail(site, *args: str) -> list[dict]:
    """`nasindex audit --json`, as an administrator runs it."""
    proc = subprocess.run([sys.executable, "-m", "nasindex.cli", "--config",
                           str(site["settings"].path), "audit", "--json", *args],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout)


def test_a_visitor_sees_only_the_login_page(site):
    browser = site["browser"]
    browser.goto(site["url"] + f"/patient?nas=ct&id={GARCIA.patient_id}")
    browser.wait_for(text_present("Log in with your clinic account"), 60, "the login page")
    page = body(browser)
    assert not any(name in page for name in PHI_NAMES) and GARCIA.patient_id not in page
    assert "Search" not in page and "Health" not in page  # no pages before login


def test_a_clinician_searches_opens_previews_and_has_no_admin_actions(site):
    browser, url = site["browser"], site["url"]
    log_in(browser, url, "alice")
    assert "alice@example.test · clinician · every NAS" in body(browser)
    search(browser, url, "maria garcia", "showing 1–1")
    browser.wait_for(table_text() + f".includes('{GARCIA.patient_id}')", 60, "the result row")
    browser.goto(url + f"/patient?nas=ct&id={GARCIA.patient_id}")
    browser.wait_for(count_images(3), 60, "the slice and its thumbnails")
    browser.goto(url + "/health")
    browser.wait_for(text_present("Indexing health"), 60, "the health page")
    browser.wait_for(table_text() + ".includes('ct2')", 60, "the NAS table")
    everything = browser.eval("document.body.textContent")
    assert "Sync now" not in everything and "Full index" not in everything
    links = browser.eval("[...document.querySelectorAll('a')].map(a => a.innerText).join('|')")
    assert "Audit" not in links
    _a_search_in_another_tab_after_logout_shows_the_login_page(browser, url)


def _a_search_in_another_tab_after_logout_shows_the_login_page(browser, url: str) -> None:
    # A search reruns only its part of the page (a fragment), past main.py's gate: the
    # search page left open in another tab must find the login over all the same.
    other = browser.new_tab(url + "/")
    try:
        box = json.dumps(SEARCH_BOX)
        other.wait_for(f"!!document.querySelector({box}) && {NO_SPINNER}", 60, "the search box")
        log_out(browser)
        other.type_into(SEARCH_BOX, "maria garcia")
        other.press("Enter")
        other.wait_for(text_present("You have logged out."), 60, "the login page there too")
        assert GARCIA.patient_id not in other.eval("document.body.innerText")
    finally:
        other.call("Page.close")  # and the first tab to the front: a background tab draws
        # no canvas (no animation frames), and the next tests read the grid
        other.close_tab()
        browser.call("Page.bringToFront")


def test_a_user_limited_to_one_nas_never_sees_the_other(site):
    browser, url = site["browser"], site["url"]
    log_in(browser, url, "dave")
    assert "dave@example.test · clinician · ct2" in body(browser)
    search(browser, url, GARCIA.patient_id, "No patient matches")
    shared = SHARED[0]
    search(browser, url, shared.patient_id, "showing 1–1")
    cells = browser.wait_for(table_text() + f".includes('{shared.patient_id}') && "
                             + table_text(), 60, "the result row")
    assert "ct2" in cells and "|ct|" not in cells and "Same Patient ID" not in cells
    browser.goto(url + f"/patient?nas=ct&id={GARCIA.patient_id}")  # typed by hand
    browser.wait_for(text_present("NAS ct is not among the NAS devices you may see"), 60,
                     "the refusal")
    assert not any(part in body(browser) for part in GARCIA.name.split("^"))
    assert not browser.eval(count_images(1))  # no preview either
    switch_user(browser)


def test_a_user_without_a_role_is_sent_to_the_administrator(site):
    browser = site["browser"]
    log_in(browser, site["url"], "carol", "Ask your administrator for access")
    assert "Find a patient" not in body(browser)
    switch_user(browser)


def test_an_admin_runs_actions_reads_the_trail_and_goes_idle(site):
    browser, url = site["browser"], site["url"]
    log_in(browser, url, "bob")
    browser.goto(url + "/health")
    browser.wait_for("document.body.textContent.includes('Sync now')", 60, "admin actions")
    browser.goto(url + "/audit")
    browser.wait_for(text_present("Audit trail"), 60, "the audit page")
    browser.wait_for(table_text() + ".includes('alice@example.test')", 60, "alice's rows")
    assert "dave@example.test" in browser.eval(table_text())
    # The administrator shortens the idle timeout. Logged in again, bob does nothing: the
    # open page goes back to the login page by itself (its timer; nothing was clicked).
    config = site["settings"].path
    text = config.read_text(encoding="utf-8").replace("idle_minutes = 15", "idle_minutes = 0.1")
    config.write_text(text, encoding="utf-8")
    switch_user(browser)
    idle = "logged out after a while without activity"
    log_in(browser, url, "bob", "Find a patient", idle)
    browser.wait_for(text_present(idle), 60, "the idle logout")
    assert "Find a patient" not in body(browser)


def test_the_trail_and_its_atna_copy_show_each_user(site, rsyslog):
    rows = trail(site)
    def done(user: str) -> set[tuple[str, str]]:
        return {(r["action"], r["outcome"]) for r in rows if r["user"] == email(user)}
    assert {("login", "success"), ("search", "success"), ("patient", "success"),
            ("preview", "success"), ("logout", "success")} <= done("alice")
    assert ("logout", "success") not in done("dave")  # cookies gone: no logout recorded
    alice_search = next(r for r in rows if r["user"] == email("alice") and
                        r["action"] == "search")
    assert json.loads(alice_search["query"]) == {"text": "maria garcia"}
    assert alice_search["results"] == 1 and alice_search["door"] == "dashboard"
    assert alice_search["client"] == "127.0.0.1"
    refused = [r for r in rows if r["user"] == email("dave") and r["outcome"] == "denied"]
    assert [(r["nas"], r["patient_id"]) for r in refused] == [("ct", GARCIA.patient_id)]
    assert ("login", "denied") in done("carol")
    assert ("audit", "success") in done("bob")
    assert any(r["action"] == "logout" and "idle" in (r["detail"] or "")
               for r in rows if r["user"] == email("bob"))
    # the same looks reached the clinic's audit repository as DICOM audit messages
    login = rsyslog.wait_for(lambda m: _event(m) == "110114" and _user(m) == email("alice"),
                             "User Authentication of alice")
    assert login.find("EventIdentification/EventTypeCode").get("csd-code") == "110122"
    seen = rsyslog.wait_for(lambda m: _event(m) == "110103" and _user(m) == email("alice")
                            and GARCIA.patient_id in _patients(m),
                            "DICOM Instances Accessed by alice")
    assert seen.find("EventIdentification").get("EventOutcomeIndicator") == "0"
    started = rsyslog.wait_for(lambda m: _event(m) == "110100" and _user(m) == "nasindex",
                               "Application Activity (the dashboard's start)")
    assert started.find("EventIdentification/EventTypeCode").get("csd-code") == "110120"


def test_no_patient_names_or_secrets_in_the_logs(site, oidc_provider):
    logs = {"streamlit": site["log"].read_text(errors="replace"),
            "provider": oidc_provider.log.read_text(errors="replace")}
    for name, text in logs.items():
        assert not [p for p in PHI_NAMES if p in text], name
        assert not [s for s in site["secrets"] if s in text], name
    tracked = subprocess.run(["git", "grep", "-I", "-l", "-e", site["secrets"][0], "-e",
                              site["secrets"][1]], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout == ""
    leftovers = [p for p in ROOT.rglob("secrets.toml") if ".venv" not in p.parts]
    assert leftovers == []  # the login settings live in the dashboard's memory only


def _event(message) -> str:
    return message.find("EventIdentification/EventID").get("csd-code")


def _user(message) -> str | None:
    requestor = [a for a in message.findall("ActiveParticipant")
                 if a.get("UserIsRequestor") == "true"]
    return requestor[0].get("UserID") if requestor else None


def _patients(message) -> list[str]:
    return [o.get("ParticipantObjectID") for o in
            message.findall("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCode") == "1"]
