"""The login gate every page passes: who is this (a :class:`Principal`), or the login
page and nothing else.

With ``[auth]`` the clinic's OpenID Connect provider logs people in (Streamlit's
``st.login``; the ID token's claims are in ``st.user``). A login lasts while it is used:
after ``idle_minutes`` without a click (or ``max_session_hours`` in all) the page goes
back to the login page by itself. Without ``[auth]`` (the demo, on 127.0.0.1 only) every
page carries a banner saying that anyone who reaches it sees every patient.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import streamlit as st
from startup import deployment_problem

from nasindex.access.guard import Access
from nasindex.access.principal import Principal, demo_principal, from_claims
from nasindex.config import AuthSettings, Settings
from nasindex.errors import AuditUnavailable

DEMO_BANNER = ("**Demo mode, no login:** anyone who can open this page sees every patient. "
               "It listens on this computer only. Configure `[auth]` before serving it on a "
               "network (README, *Running it as a service*).")


@dataclass
class _Login:
    """What the server remembers of one login (one ID token)."""

    last_active: float
    recorded: bool = False
    ended: str | None = None  # why it ended: "logout", "idle", "expired"


@st.cache_resource(show_spinner=False)
def _logins() -> tuple[dict[tuple[str, str], _Login], threading.Lock]:
    return {}, threading.Lock()


def client_address() -> str:
    """The user's address; behind a reverse proxy on this host, the forwarded one."""
    remote = st.context.ip_address
    if isinstance(remote, str):
        return remote
    # None: loopback, a browser on this host or a reverse proxy here (or no server: tests)
    forwarded = st.context.headers.get("X-Forwarded-For")
    if isinstance(forwarded, str) and forwarded.strip():
        return forwarded.split(",")[0].strip()
    return "127.0.0.1"


def principal(settings: Settings, access: Access) -> Principal:
    """The user of this page run; or draws the login (or no-access) page and stops."""
    problem = deployment_problem(settings, st.get_option("server.address"))
    if problem:  # main.py run directly by `streamlit run`, past app.py's check
        st.error(problem)
        st.stop()
    if settings.auth is None:
        st.warning(DEMO_BANNER, icon=":material/lock_open:")
        return demo_principal("dashboard", client_address(), session="demo")
    if "auth" not in st.secrets:
        st.error("Login is configured but Streamlit has no login settings: start the "
                 "dashboard with `streamlit run dashboard/app.py`.")
        st.stop()
    try:
        return _logged_in(settings.auth, access)
    except AuditUnavailable as exc:  # the login cannot be recorded: show nothing
        st.error(str(exc), icon=":material/lock:")
        st.stop()


def _logged_in(auth: AuthSettings, access: Access) -> Principal:
    if not st.user.is_logged_in:
        login_page()
    claims = st.user.to_dict()
    key = _login_key(claims)
    user = from_claims(claims, auth, client_address(), "dashboard", session="|".join(key))
    logins, lock = _logins()
    now = time.time()
    with lock:
        if key not in logins:
            _forget_old(logins, now - auth.max_session_hours * 3600)
        login = logins.setdefault(key, _Login(last_active=float(claims.get("iat") or now)))
        ended = login.ended or _expired(auth, login, claims, now)
    if ended:
        if not login.ended:
            login.ended = ended
            access.logout(user, f"session ended: {ended}")
        login_page(ended)
    if not login.recorded:
        access.login(user)  # before anything is shown; a refused user is recorded too
        login.recorded = True
    login.last_active = now
    if not user.roles:
        no_access_page(user, access, login)
    _sidebar(user, access, login)
    _idle_watch(auth.idle_minutes * 60, login)
    return user


def still_logged_in(settings: Settings) -> None:
    """For a fragment's own rerun (a search), which skips main.py and so the gate: the
    login must still be current, and the search counts as activity. Otherwise the
    whole page reruns, and :func:`principal` shows why (the login page)."""
    if settings.auth is None:
        return
    current = False
    if st.user.is_logged_in:
        claims = st.user.to_dict()
        logins, lock = _logins()
        now = time.time()
        with lock:
            login = logins.get(_login_key(claims))
            current = login is not None and not (
                login.ended or _expired(settings.auth, login, claims, now))
            if current:
                login.last_active = now
    if not current:
        st.rerun(scope="app")


def _login_key(claims: dict) -> tuple[str, str]:
    """One login: the user and the ID token it was given."""
    return str(claims.get("sub")), str(claims.get("nonce") or claims.get("iat"))


def _forget_old(logins: dict[tuple[str, str], _Login], before: float) -> None:
    """Logins unused since ``before`` are over anyway (their ID token is too old)."""
    for key in [k for k, v in logins.items() if v.last_active < before]:
        del logins[key]


def _expired(auth: AuthSettings, login: _Login, claims: dict, now: float) -> str | None:
    if now - login.last_active > auth.idle_minutes * 60:
        return "idle"
    if now - float(claims.get("iat") or now) > auth.max_session_hours * 3600:
        return "expired"
    return None


ENDED = {"idle": "You were logged out after a while without activity.",
         "expired": "Your login has expired.", "logout": "You have logged out."}


def login_page(ended: str | None = None) -> None:
    """The only page a visitor who is not logged in sees."""
    st.title("nasindex")
    st.subheader("Medical image index")
    if ended:
        st.info(ENDED.get(ended, "Your session has ended."), icon=":material/logout:")
    st.write("Log in with your clinic account to search patients and view their images.")
    st.button("Log in", type="primary", on_click=st.login, icon=":material/login:")
    st.stop()


def no_access_page(user: Principal, access: Access, login: _Login) -> None:
    st.title("No access yet")
    st.warning(f"You are logged in as **{user.user}**, but your account has no nasindex "
               "role. Ask your administrator for access (the clinician or admin group).",
               icon=":material/block:")
    st.button("Log out", on_click=_log_out, args=(user, access, login))
    st.stop()


def _sidebar(user: Principal, access: Access, login: _Login) -> None:
    with st.sidebar:
        scope = "every NAS" if user.scope is None else ", ".join(sorted(user.scope))
        st.caption(f"**{user.user}** · {', '.join(sorted(user.roles))} · {scope}")
        st.button("Log out", on_click=_log_out, args=(user, access, login),
                  icon=":material/logout:", key="logout")


def _log_out(user: Principal, access: Access, login: _Login) -> None:
    login.ended = "logout"
    with contextlib.suppress(AuditUnavailable):  # leaving never waits for the trail
        access.logout(user)
    st.logout()


def _idle_watch(idle_seconds: float, login: _Login) -> None:
    """While the page stays open, check now and then whether the login went idle; then
    redraw the whole page, which shows the login page (a click is activity, this is not)."""
    every = min(max(idle_seconds / 4, 1.0), 60.0)

    @st.fragment(run_every=every)
    def watch() -> None:
        if time.time() - login.last_active > idle_seconds:
            st.rerun(scope="app")

    with st.sidebar:
        watch()
