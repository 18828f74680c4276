"""Entry point of the Streamlit app: who is here, then the pages their role may use (``rlhf app`` runs this file)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.ui import auth, display, state
from app.ui.resources import get_studio

# The tab icon is a file of ours: a ":material/...:" icon would make the browser fetch it
# from a font server, and the studio makes no request outside the machine.
st.set_page_config(page_title="rlhf-studio", page_icon=str(Path(__file__).with_name("icon.png")), layout="wide")
state.init()
studio = get_studio()
user = auth.current_user(studio)

_VIEWS = Path(__file__).parent / "views"
PROJECTS = st.Page(_VIEWS / "home.py", title="Projects", icon=":material/home:", default=True)
LABEL = st.Page(_VIEWS / "label.py", title="Label", icon=":material/compare:", url_path="label")
TEAM = st.Page(_VIEWS / "team.py", title="Team", icon=":material/groups:", url_path="team")
ADMIN = [
    st.Page(_VIEWS / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(_VIEWS / "policy.py", title="Policy", icon=":material/smart_toy:", url_path="policy"),
    st.Page(_VIEWS / "classifiers.py", title="Classifiers", icon=":material/category:", url_path="classifiers"),
]
LOGIN = st.Page(_VIEWS / "login.py", title="Log in", icon=":material/login:", default=True)

if user is None or user.must_change_password:
    pages = [LOGIN]
elif user.is_admin:
    pages = [PROJECTS, LABEL, *ADMIN, TEAM]
elif user.role == "annotator":
    pages = [PROJECTS, LABEL, TEAM]
else:  # viewer
    pages = [PROJECTS, TEAM]

if user is not None and user.id:  # an account (not the one person of a studio without accounts)
    with st.sidebar:
        st.caption(f"Logged in as **{display.md(user.name)}** ({user.role})")
        if st.button("Log out", icon=":material/logout:"):
            auth.log_out(studio)
            st.rerun()
        auth.keep_login_cookie(studio, user)
else:
    auth.keep_login_cookie(studio, None)  # a cookie of a login that has ended is deleted
st.navigation(pages).run()
