"""Who is using the app: the logged-in account, or the one person of a studio without accounts.

With accounts (``rlhf users add``), every page asks for a login first; the session token
lives in the session state and in a browser cookie (:func:`keep_login_cookie`; ``SameSite=Strict``,
never in the URL, so an address can be shared without the login), so a reload or a new tab
keeps the login until it expires or the person logs out. Pages an account's role may not
use are not in its navigation at all, so their addresses lead nowhere.
"""

from __future__ import annotations

import hashlib
import json
import re

import streamlit as st

from app.config import Studio
from app.services import accounts
from app.services.accounts import User
from app.services.labeling import LabelingSession
from app.ui import state


def current_user(studio: Studio) -> User | None:
    """The user of this browser session; None when accounts exist and nobody is logged in."""
    if not accounts.accounts_enabled(studio):
        if accounts.open_to_others():
            st.error(
                "This studio serves other machines and has no account, so it serves no page. "
                "Add one (`rlhf users add NAME --role admin`) and reload.",
                icon=":material/lock:",
            )
            st.stop()
        user = accounts.local_user(state.get(state.ANNOTATOR) or "")
        st.session_state[state.USER] = user
        return user
    if not st.session_state.get(state.COOKIE_READ):  # once: the cookie is what the browser sent at connection
        st.session_state[state.COOKIE_READ] = True
        if not state.get(state.TOKEN) and (sent := _sent_cookie(studio)):
            st.session_state[state.TOKEN] = sent
    user = accounts.user_for_token(studio, state.get(state.TOKEN))
    if user is None:
        if state.get(state.TOKEN):
            state.forget_login()  # expired or logged out elsewhere
        st.session_state.pop(state.USER, None)
        return None
    if state.get(state.ANNOTATOR) != user.name:  # labels are recorded under the account, nothing else
        st.session_state[state.ANNOTATOR] = user.name
        st.query_params.pop(state.ANNOTATOR, None)
        st.session_state.pop(state.LABELING, None)
        st.session_state.pop(state.PAIR, None)
    st.session_state[state.USER] = user
    return user


def user(studio: Studio) -> User:
    """The user of this run (the entry point resolves it; a page run on its own resolves it
    here). Without one, the page stops and points to the login."""
    found = current_user(studio)
    if found is None or found.must_change_password:
        st.info("Log in first.")
        st.stop()
    return found


#: What the login page says after a labeling panel found its login gone.
SESSION_ENDED = (
    "Your login has ended (it expired, you logged out elsewhere, your password was reset or your "
    "account removed): your last press stored nothing. Log in again to go on labeling."
)


#: What the login page says after an admin's press found its login gone.
ACTION_REFUSED = (
    "Your login has ended (it expired, you logged out elsewhere, your password was reset or your "
    "account removed): your last press did nothing. Log in again."
)


def may_still_label(studio: Studio, ls: LabelingSession) -> bool:
    """Whether this browser's login still lets it label as ``ls`` says (its project, its
    annotator), checked again from the store. An answer reruns only the labeling panel (a
    fragment), not the page that checked the login, so each answer asks again: a login that
    expired or ended, or whose account lost its password, its membership or its existence,
    or that is now another person's, stores nothing more (and a login that is gone leaves
    the login page a note saying why). Using it keeps the login alive, as a page load does.
    Without accounts: the one person may label. Raises what the store raises (USER_ERRORS)."""
    if not accounts.accounts_enabled(studio):
        return True
    found = _login_from_store(studio, SESSION_ENDED)
    if found is None:
        return False
    return (
        not found.must_change_password
        and found.name == ls.annotator_name
        and found.name == state.get(state.ANNOTATOR)
        and found.can_label(ls.project_name)
    )


def still_admin(studio: Studio) -> bool:
    """Whether this browser's login may still take an admin's action, checked again from the
    store. A button's callback runs before its page runs again, so the page's own check
    (:func:`require_admin`) speaks for the login as it was when the page was drawn: a tab left
    open after its admin logged out, was removed, lost the role or had the password reset
    must not import, train, change settings or rule with one more press. When it may not, the
    callback does nothing and the page that runs next says why (the login page, or the
    page's refusal). Without accounts: the one person may. Raises what the store raises
    (USER_ERRORS)."""
    if not accounts.accounts_enabled(studio):
        return True
    found = _login_from_store(studio, ACTION_REFUSED)
    return found is not None and found.is_admin and not found.must_change_password


def _login_from_store(studio: Studio, ended: str) -> User | None:
    """This browser's login, read again from the store; None (and ``ended``, for the login page
    to say) where it has ended."""
    found = accounts.user_for_token(studio, state.get(state.TOKEN))
    if found is None:
        st.session_state[state.LOGIN_ERROR] = ended
    return found


def _forget_labeling() -> None:
    for key in (state.LABELING, state.PAIR, state.UNDONE, state.ACK, state.REFUSED):
        st.session_state.pop(key, None)


def end_labeling() -> None:
    """Leave a labeling panel whose login no longer lets it label: the whole app runs again and
    shows the login page (or, for a lost membership, the labeling page's refusal)."""
    _forget_labeling()
    st.rerun(scope="app")


def log_in(studio: Studio, name: str, password: str) -> User:
    """Check a name and password (slowed down on failure); keep the session token."""
    login = accounts.login(studio, name, password)
    _forget_labeling()  # a labeling session belongs to whoever was logged in before
    state.remember_login(login.token)
    st.session_state[state.ANNOTATOR] = login.user.name
    st.session_state[state.USER] = login.user
    return login.user


def log_out(studio: Studio) -> None:
    """End this browser's login session."""
    accounts.logout(studio, state.get(state.TOKEN))
    state.forget_login()
    _forget_labeling()
    for key in (state.USER, state.ANNOTATOR, state.PROJECT):
        st.session_state.pop(key, None)
        st.query_params.pop(key, None)


def require_admin(studio: Studio) -> User:
    """Stop a page that only admins may use (its address is not in other roles' navigation
    either; this holds when the page is run some other way)."""
    found = user(studio)
    if not found.is_admin:
        st.error("Only an admin can use this page.", icon=":material/block:")
        st.stop()
    return found


#: What a login token looks like (secrets.token_urlsafe): a cookie that is not one is ignored.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def _cookie_name(studio: Studio) -> str:
    """The login cookie of this label store. Cookies do not tell ports apart: studios of other
    stores on one host (``rlhf app --port ...``) each keep their own."""
    digest = hashlib.sha256(studio.settings.database_url.encode()).hexdigest()[:12]
    return f"{state.LOGIN_COOKIE}_{digest}"


def _sent_cookie(studio: Studio) -> str | None:
    """The login token the browser sent when this session began (Streamlit reads cookies once,
    at connection), if it looks like one."""
    value = st.context.cookies.get(_cookie_name(studio))
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None  # (a test's app: mocks)


def _js(value: str) -> str:
    """A JavaScript string literal that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def keep_login_cookie(studio: Studio, user: User | None) -> None:
    """Make the browser's login cookie say what this session knows, with a script in the page
    (Streamlit reads cookies, st.context.cookies, but has no call that writes one): a logged-in
    account's token, for at most as long as a login can last (the store ends it sooner: idle
    hours, a logout); and once the login here has ended (logged out, expired, ended elsewhere),
    no cookie, but only if it still holds that login: another tab of the browser may have
    logged in since. The cookie is ``SameSite=Strict`` (no other site's page sends it),
    ``Secure`` under https, and readable by the page's scripts, which render no HTML of
    anyone's making. Without accounts: nothing to keep."""
    name, token = _cookie_name(studio), state.get(state.TOKEN)
    if user is not None and user.id and token:
        max_age = int(accounts.MAX_SESSION_AGE.total_seconds())
        script = f"document.cookie = {_js(f'{name}={token}; Path=/; Max-Age={max_age}; SameSite=Strict')} + secure;"
        st.session_state[state.COOKIE_WRITTEN] = token
    elif ended := st.session_state.pop(state.COOKIE_WRITTEN, None) or _sent_cookie(studio):
        script = (
            f"if (document.cookie.split('; ').includes({_js(f'{name}={ended}')})) "
            f"document.cookie = {_js(f'{name}=; Path=/; Max-Age=0; SameSite=Strict')} + secure;"
        )
    else:
        return
    st.html(
        f"<script>(() => {{ const secure = location.protocol === 'https:' ? '; Secure' : ''; {script} }})();</script>",
        unsafe_allow_javascript=True,
    )
