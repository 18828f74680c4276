"""Every ``st.session_state`` key of the UI, declared in one place.

The annotator's name and the project also live in the URL's query parameters, so a page
reload (or a bookmark) keeps them; a login's token lives in a cookie instead (app.ui.auth).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

ANNOTATOR = "annotator"
"""Name of the person labeling (str)."""
TOKEN = "session"
"""Login session token (str) of a studio with accounts; also in the browser's cookie
:data:`LOGIN_COOKIE` (never in the URL), so a reload keeps the login."""
LOGIN_COOKIE = "rlhf_session"
"""Start of the name of the browser cookie that holds the login token (app.ui.auth writes,
reads and deletes it; the name ends with the label store's digest, one cookie per store)."""
COOKIE_WRITTEN = "login_cookie_written"
"""The token this session last wrote to the login cookie (so that a logout deletes it, if it is still that)."""
COOKIE_READ = "login_cookie_read"
"""Whether this session has read the login cookie its browser sent (it is read once)."""
USER = "user"
"""The logged-in app.services.accounts.User (or the local user of a studio without accounts)."""
LOGIN_NAME = "login_name"
"""Widget key: the name field of the login page."""
LOGIN_PASSWORD = "login_password"
"""Widget key: the password field of the login page."""
PW_OLD, PW_NEW, PW_AGAIN = "pw_old", "pw_new", "pw_again"
"""Widget keys: the one-time password and the new one, twice (first login)."""
LOGIN_ERROR = "login_error"
"""Why the last login or password change was refused, shown once (str)."""
TEAM_PROJECT = "team_project"
"""Widget key: the project whose agreement the Team page shows."""
SETTINGS_K = "settings_labels_per_pair"
"""Widget key: labels per pair (Projects page, admins)."""
SETTINGS_GOLD = "settings_gold_rate"
"""Widget key: gold rate (Projects page, admins)."""
SETTINGS_MSG = "settings_msg"
"""Projects page: outcome of the last settings change, (ok, message), shown once."""
TEAM_MSG = "team_msg"
"""Team page: outcome of the last ruling, (ok, message), shown once."""
PROJECT = "project"
"""Name of the chosen project (str)."""
LABELING = "labeling_session"
"""app.services.labeling.LabelingSession for (project, annotator), or absent."""
PAIR = "pair"
"""The pair on screen (app.services.labeling.Pair), or absent to fetch the next one."""
ACK = "ack"
"""Acknowledgement of the last action, shown above the next pair (str)."""
REFUSED = "refused"
"""Why the last answer was not stored (too soon, or answered already elsewhere), shown once (str)."""
SERVED_AT = "served_at"
"""time.monotonic() when the pair on screen (or the "nothing left" screen) was served (float)."""
UNDONE = "undone"
"""The label the last Undo removed (app.services.labeling.Undone): its pair comes back as first seen."""
RNG = "rng"
"""numpy Generator that randomises the side order for this browser session."""
SHOW_REWARD = "show_reward"
"""Whether the labeling page plots the active reward model's per-step prediction (bool)."""
NAME_INPUT = "annotator_name_input"
"""Widget key of the name field."""
NAME_PROBLEM = "name_problem"
"""Why the name typed on the projects page was not taken, shown once (str)."""
PROJECT_RADIO = "project_radio"
"""Widget key of the project choice on the projects page."""
IMPORT_FILE = "import_file"
"""Widget key of the file uploader of text pairs (CSV or JSON Lines) on the projects page."""
IMPORT_NAME = "import_project_name"
"""Widget key of the name of the text project an import goes into."""
IMPORT_REPORT = "import_report"
"""Outcome of the last import: (succeeded, message, problems), shown once on the projects page."""

CLASSIFIER_ERROR = "classifier_error"
"""Classifiers page: why the last Train click could not start a job, shown once (str)."""
CLASSIFIER_DATASET = "classifier_dataset"
"""Widget key: the dataset chosen on the Classifiers page."""
CLASSIFIER_PATH = "classifier_path"
"""Widget key: the server path of the user's own dataset (Classifiers page)."""
CLASSIFIER_MODE = "classifier_mode"
"""Widget key: frozen, LoRA or full fine-tuning (Classifiers page)."""
CLASSIFIER_EPOCHS = "classifier_epochs"
"""Widget key: training epochs (Classifiers page)."""
CLASSIFIER_TRAIN = "classifier_train"
"""Widget key: the Train button of the Classifiers page."""
IMPORT_BUTTON = "import"
"""Widget key: the Import button of the projects page."""
POLICY_REWARD = "policy_reward"
"""Widget key: which reward the next policy trains on (Policy page)."""
POLICY_STEPS = "policy_steps"
"""Widget key: environment steps of the next policy (Policy page)."""
POLICY_ALGO = "policy_algo"
"""Widget key: the algorithm of the next policy (Policy page)."""
POLICY_ENCODER = "policy_encoder"
"""Widget key: the frozen encoder of the next policy (Policy page)."""
POLICY_WARM = "policy_warm"
"""Widget key: does the next DQN continue from the last one trained on a reward model (Policy page)?"""
POLICY_TRAIN = "train_policy"
"""Widget key: the Train policy button."""
POLICY_ERROR = "policy_error"
"""Policy page: why the last click could not start a job or change the autopilot, shown once (str)."""
AUTOPILOT_ON = "autopilot_on"
"""Widget key: the autopilot switch (Policy page)."""
AUTOPILOT_EVERY = "autopilot_every"
"""Widget key: new labels between autopilot rounds (Policy page)."""
ROUND_NOW = "round_now"
"""Widget key: the Run a round now button (Policy page)."""
POLICY_VERSION = "policy_version"
"""Widget key: the checkpoint shown on the Policy page."""
POLICY_SEED = "policy_seed"
"""Widget key: the start seed of the shown rollout (Policy page)."""
POLICY_QUERIES_MSG = "policy_queries_msg"
"""Policy page: outcome of the last 'label its clips' click, (level, message), shown once."""
POLICY_TO_QUERIES = "policy_to_queries"
"""Widget key: the button that queues the checkpoint's clips for labeling."""
TRAIN_ERROR = "train_error"
"""Train page: why the last Retrain click could not start a job, shown once (str)."""
TRAIN_KIND = "train_kind"
"""Widget key: the reward model kind (Train page)."""
TRAIN_ACTIONS = "train_actions"
TRAIN_FRESH = "train_fresh"
"""Widget key: whether the reward also sees the action (Train page)."""
TRAIN_FORM = "train_form"
"""Widget key: the clip reward form, potential or transition (Train page)."""
TRAIN_ENCODER = "train_encoder"
"""Widget key: the frozen encoder of the frames (Train page)."""
TRAIN_MIN_AGREEMENT = "train_min_agreement"
"""Widget key: leave out annotators whose agreement with the majority is below this (0: nobody; Train page)."""
TRAIN_WEIGHTED = "train_weighted"
"""Widget key: weight each annotator's labels by their agreement (Train page)."""
RETRAIN = "retrain"
"""Widget key: the Retrain button (Train page)."""
ACTIVATE_VERSION = "activate_version"
"""Widget key: the version to make active (Train page)."""
ACTIVATE = "activate"
"""Widget key: the Make active button (Train page)."""
PROMPT_BOX = "prompt-box"
"""Container key: the prompt of a text pair on the labeling page."""


def answer_key(choice: str, query_id: int) -> str:
    """Widget key of an answer button (left, right, equal, cant_tell, skip) on the labeling
    page: it names the pair the button answers, so a press meant for a pair that has left the
    screen cannot count for the next one."""
    return f"answer-{choice}-{query_id}"


def watching_key(kind: str) -> str:
    """Key of the job of ``kind`` a page's job panel is watching (so it reruns the page once when the job ends)."""
    return f"watching-{kind}"


_URL_KEYS = (ANNOTATOR, PROJECT)


def init() -> None:
    """Restore the annotator and project from the URL on a fresh session (the login comes from
    its cookie: app.ui.auth). A login token in the URL (an address from before the cookie) is
    dropped unused: an address can be shared, and a shared one must not log anyone in."""
    for key in _URL_KEYS:
        if key not in st.session_state and st.query_params.get(key):
            st.session_state[key] = st.query_params[key]
    if TOKEN in st.query_params:
        st.query_params.pop(TOKEN, None)


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def _identity_changed() -> None:
    """Who labels which project changed: the labeling session and its pair are stale."""
    st.session_state.pop(LABELING, None)
    st.session_state.pop(PAIR, None)


def set_persistent(key: str, value: str) -> None:
    """Set a value that survives reloads (session state and URL)."""
    st.session_state[key] = value
    st.query_params[key] = value
    _identity_changed()


def forget(key: str) -> None:
    """Drop a value from the session state and the URL (e.g. an invalid name from a link)."""
    st.session_state.pop(key, None)
    st.query_params.pop(key, None)
    _identity_changed()


def remember_login(token: str) -> None:
    """Keep a login's token for this session (app.ui.auth writes it to the browser's cookie)."""
    st.session_state[TOKEN] = token
    _identity_changed()


def forget_login() -> None:
    """Drop this session's login token (app.ui.auth then deletes the browser's cookie)."""
    st.session_state.pop(TOKEN, None)
    _identity_changed()


def url_params() -> dict[str, str]:
    """Query parameters that carry the identity to another page."""
    return {k: st.session_state[k] for k in _URL_KEYS if st.session_state.get(k)}
