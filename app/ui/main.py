"""Entry point of the Streamlit app: routes to the pages (``rlhf app`` runs this file)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.ui import state

# The tab icon is a file of ours: a ":material/...:" icon would make the browser fetch it
# from a font server, and the studio makes no request outside the machine.
st.set_page_config(page_title="rlhf-studio", page_icon=str(Path(__file__).with_name("icon.png")), layout="wide")
state.init()

_VIEWS = Path(__file__).parent / "views"
navigation = st.navigation(
    [
        st.Page(_VIEWS / "home.py", title="Projects", icon=":material/home:", default=True),
        st.Page(_VIEWS / "label.py", title="Label", icon=":material/compare:", url_path="label"),
        st.Page(_VIEWS / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page(_VIEWS / "policy.py", title="Policy", icon=":material/smart_toy:", url_path="policy"),
        st.Page(_VIEWS / "classifiers.py", title="Classifiers", icon=":material/category:", url_path="classifiers"),
    ]
)
navigation.run()
