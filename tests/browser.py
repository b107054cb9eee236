"""The dashboard for real: ``streamlit run`` on a free port, driven by headless Chromium
over the DevTools protocol (``websockets``; no node, no Playwright download).

Used by tests/test_dashboard_browser.py, by the screenshot script and by the benchmark.
Every process started here is stopped by its own handle.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from support import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
CHROMIUM = os.environ.get("NASINDEX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--hide-scrollbars", "--mute-audio"]


@contextmanager
def streamlit_app(config: Path, port: int | None = None, env: dict[str, str] | None = None,
                  log: Path | None = None) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` with ``config`` (and ``env`` added to the
    environment, its output in ``log``); yields its base URL."""
    port = port or free_port()
    env = {**os.environ, "NASINDEX_CONFIG": str(config),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
    with (log.open("wb") if log else tempfile.TemporaryFile()) as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.fileWatcherType", "none", "--global.developmentMode", "false",
             "--client.toolbarMode", "viewer"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, "streamlit", 60)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(proc)


class Page:
    """One browser tab, driven over the DevTools protocol."""

    def __init__(self, ws_url: str, width: int, height: int) -> None:
        self._ids = itertools.count(1)
        self.requests: list[str] = []  # every URL the tab asked for (Network domain)
        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("method") == "Network.requestWillBeSent":
                self.requests.append(reply["params"]["request"]["url"])
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.eval(expression)
            except RuntimeError:  # the page is between documents (navigation)
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"waited {timeout:.0f} s for {what or expression}")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type as a user would (input events React sees)."""
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def press(self, key: str = "Enter") -> None:
        """One key: Enter, Tab, Backspace, or a character typed as a key (digits into a
        date field's segments, which take keys, not inserted text)."""
        code = _KEY_CODES.get(key, ord(key.upper()[0]))
        text = {"Enter": "\r"}.get(key, key if len(key) == 1 else None)
        down = {"text": text} if text else {}
        for kind, extra in (("keyDown", down), ("keyUp", {})):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code, nativeVirtualKeyCode=code, **extra)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close_tab(self) -> None:
        self.ws.close()


_KEY_CODES = {"Enter": 13, "Tab": 9, "Backspace": 8, "Escape": 27, "ArrowDown": 40}


class Chromium(Page):
    """One headless Chromium; drives its first tab, and opens more with :meth:`new_tab`."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM} not found: install the 'chromium' Debian package "
                               "(scripts/install-system-deps.sh) or set NASINDEX_CHROMIUM.")
        self.port, self.size = free_port(), (width, height)
        self.profile = tempfile.mkdtemp(prefix="nasindex-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            targets = json.loads(wait_http(f"http://127.0.0.1:{self.port}/json/list",
                                           self.proc, "chromium", 30))
            page = next(t for t in targets if t["type"] == "page")
            super().__init__(page["webSocketDebuggerUrl"], width, height)
        except BaseException:
            self.close()
            raise

    def new_tab(self, url: str) -> Page:
        """A fresh tab (its own Streamlit session) opened at ``url``: as a bookmark or a
        link shared by a colleague is opened."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as resp:
            tab = Page(json.loads(resp.read())["webSocketDebuggerUrl"], *self.size)
        tab.goto(url)
        return tab

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        stop_process(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Streamlit renders asynchronously: these tell when a page has real content.
NO_SPINNER = ("!document.querySelector('[data-testid=\"stSpinner\"]') && "
              "!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def click_button(label: str) -> str:
    """JavaScript: click the first button labelled ``label`` (after its icon, if any);
    true if there was one."""
    return (f"(() => {{ const b = [...document.querySelectorAll('button')].find(b => "
            f"b.innerText.trim().endsWith({json.dumps(label)})); "
            "if (b) { b.click(); return true; } })()")


def text_present(text: str) -> str:
    return f"document.body.innerText.includes({json.dumps(text)})"


def count_images(min_count: int) -> str:
    return (f"Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
            f".filter(i => i.complete && i.naturalWidth > 0).length >= {min_count}")


def open_patient(browser: Chromium, patient_id: str) -> float:
    """As a clinician does, in an open app: search the ID, press Enter, click "Open"; the
    seconds from the click until the slice view and a page of thumbnails are drawn."""
    from nasindex.preview import THUMBS_PER_PAGE

    browser.eval("Array.from(document.querySelectorAll('a'))"
                 ".find(a => a.innerText.includes('Search')).click()")
    browser.wait_for(text_present("Find a patient"), 30)
    box = 'input[aria-label="Name, Patient ID or accession number"]'
    browser.wait_for(f"!!document.querySelector({json.dumps(box)})")
    browser.eval(f"document.querySelector({json.dumps(box)}).select()")
    browser.type_into(box, patient_id)
    browser.press("Enter")
    browser.wait_for(table_text() + f".includes({json.dumps(patient_id)})", 30)
    start = time.perf_counter()
    if not browser.eval(click_button("Open")):
        raise RuntimeError("no Open button under the results")
    browser.wait_for(text_present(f"Slices 1–{THUMBS_PER_PAGE} of"), 60)
    browser.wait_for(count_images(THUMBS_PER_PAGE + 1), 60, "thumbnails")
    return time.perf_counter() - start


def time_patient_page(config: Path, warm_id: str, patient_id: str) -> float:
    """Seconds from "Open" to the first thumbnails of ``patient_id`` in a fresh app (no
    image cached), after one other patient was opened (so the browser has the page's
    scripts, as a clinician's browser would)."""
    with streamlit_app(config) as base, Chromium() as browser:
        browser.goto(base + "/")
        browser.wait_for(text_present("Find a patient"), 60)
        open_patient(browser, warm_id)
        return open_patient(browser, patient_id)


def table_text() -> str:
    """The cell text of every st.dataframe (drawn on a canvas; this reads its a11y copy)."""
    return ("Array.from(document.querySelectorAll('[data-testid=\"stDataFrame\"] td'))"
            ".map(c => c.textContent).join('|')")
