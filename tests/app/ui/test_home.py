"""AppTest tests of the projects page (app/ui/views/home.py) and of the navigation entry."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

UI = Path(__file__).resolve().parents[3] / "app" / "ui"
HOME = UI / "views" / "home.py"
MAIN = UI / "main.py"
TIMEOUT = 30
NAME_INPUT = "annotator_name_input"


def _run(script: Path, **query_params: str) -> AppTest:
    at = AppTest.from_file(str(script), default_timeout=TIMEOUT)
    for key, value in query_params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_home_without_projects_says_to_run_rlhf_demo(tmp_path: Path, studio_env) -> None:
    data_dir = studio_env(tmp_path / "empty")
    at = _run(HOME)

    assert at.title[0].value == "rlhf-studio"
    assert len(at.info) == 1
    info = at.info[0].value
    assert "`rlhf demo`" in info
    assert "data folder" in info and str(tmp_path) not in info  # the browser is told no server path
    # st.stop() after the hint: no project table, no project choice
    assert len(at.dataframe) == 0
    assert len(at.radio) == 0
    assert (data_dir / "rlhf.db").is_file()  # the store was created and migrated


def test_home_lists_demo_project_with_counts(demo_data_dir: Path, studio_env) -> None:
    studio_env(demo_data_dir)
    at = _run(HOME)

    assert len(at.info) == 0
    table = at.dataframe[0].value
    assert list(table.columns) == [
        "name", "kind", "environment", "items", "queries", "labeled pairs", "labels", "labels per pair"
    ]  # fmt: skip
    assert len(table) == 1
    row = table.iloc[0]
    assert row["name"] == "demo"
    assert row["kind"] == "trajectory"
    assert row["environment"] == "MiniGrid-Empty-Random-6x6-v0"
    assert int(row["items"]) == 12
    assert int(row["queries"]) == 10
    assert int(row["labeled pairs"]) == 0
    assert int(row["labels"]) == 0
    assert at.radio(key="project_radio").value == "demo"
    assert at.session_state["project"] == "demo"
    assert at.query_params["project"] == "demo"
    # nobody has said who they are yet
    assert "annotator" not in at.session_state
    assert any("Enter your name" in w.value for w in at.warning)


def test_typing_a_name_sets_annotator_and_query_params(tmp_path: Path, studio_env) -> None:
    # No project here: the page stops before its link to the label page, which exists only
    # under the navigation of main.py (see test_main_entry_*).
    studio_env(tmp_path / "empty")
    at = _run(HOME)
    assert "annotator" not in at.session_state

    at.text_input(key=NAME_INPUT).input("   ").run()  # blank: ignored
    assert not at.exception
    assert "annotator" not in at.session_state
    assert "annotator" not in at.query_params

    at.text_input(key=NAME_INPUT).input("  alice ").run()
    assert not at.exception
    assert at.session_state["annotator"] == "alice"
    assert at.query_params["annotator"] == "alice"
    assert at.text_input(key=NAME_INPUT).value == "  alice "


def test_name_comes_back_from_query_params(demo_data_dir: Path, studio_env) -> None:
    studio_env(demo_data_dir)
    at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT)
    at.query_params["annotator"] = "carol"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["annotator"] == "carol"
    assert at.text_input(key=NAME_INPUT).value == "carol"
    assert not any("Enter your name" in w.value for w in at.warning)


def test_main_entry_runs_home_then_label(demo_data_dir: Path, studio_env) -> None:
    studio_env(demo_data_dir)
    at = _run(MAIN)

    # the default page is the projects page
    assert at.title[0].value == "rlhf-studio"
    assert at.dataframe[0].value.iloc[0]["name"] == "demo"
    assert len(at.page_link) == 0

    at.text_input(key=NAME_INPUT).input("bob").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["annotator"] == "bob"
    assert at.query_params["annotator"] == "bob"
    link = at.page_link[0].proto
    assert link.label == "Start labeling **demo** as **bob**"
    assert link.page == "label"
    assert sorted(link.query_string.split("&")) == ["annotator=bob", "project=demo"]

    at.switch_page("views/label.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.subheader[0].value == "demo · labeling as bob"
    assert len(at.image) == 1
