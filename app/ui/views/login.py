"""Login page of a studio with accounts (and the first-login password change)."""

from __future__ import annotations

import streamlit as st

from app.errors import USER_ERRORS
from app.services import accounts
from app.ui import auth, display, state
from app.ui.resources import get_studio

studio = get_studio()
st.title("rlhf-studio")


def _log_in() -> None:
    """on_submit: check the name and password; a refusal says so without saying which was wrong."""
    try:
        name, password = st.session_state.get(state.LOGIN_NAME) or "", st.session_state.get(state.LOGIN_PASSWORD) or ""
        auth.log_in(studio, name, password)
    except USER_ERRORS as exc:
        st.session_state[state.LOGIN_ERROR] = str(exc)
    st.session_state.pop(state.LOGIN_PASSWORD, None)


def _change_password() -> None:
    old = st.session_state.get(state.PW_OLD) or ""
    new, again = st.session_state.get(state.PW_NEW) or "", st.session_state.get(state.PW_AGAIN) or ""
    if new != again:
        st.session_state[state.LOGIN_ERROR] = "The two new passwords differ; type the same one twice."
        return
    try:
        st.session_state[state.USER] = accounts.change_password(studio, state.get(state.TOKEN), old, new)
    except USER_ERRORS as exc:
        st.session_state[state.LOGIN_ERROR] = str(exc)


user = state.get(state.USER)
problem = st.session_state.pop(state.LOGIN_ERROR, None)
if user is not None and user.must_change_password:
    st.subheader(f"Welcome, {display.md(user.name)}: choose your own password")
    st.caption(f"At least {accounts.MIN_PASSWORD_LENGTH} characters. The one-time password stops working.")
    with st.form("change-password"):
        st.text_input("One-time password", type="password", key=state.PW_OLD)
        st.text_input("New password", type="password", key=state.PW_NEW)
        st.text_input("New password, again", type="password", key=state.PW_AGAIN)
        st.form_submit_button("Set password", on_click=_change_password, type="primary")
else:
    st.subheader("Log in")
    with st.form("login"):
        st.text_input("Name", key=state.LOGIN_NAME, max_chars=100)
        st.text_input("Password", type="password", key=state.LOGIN_PASSWORD)
        st.form_submit_button("Log in", on_click=_log_in, type="primary")
    st.caption("No account? An admin adds one with `rlhf users add NAME --project PROJECT`.")
if problem:
    display.error(studio, problem)
