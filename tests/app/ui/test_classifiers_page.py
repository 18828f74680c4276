"""The Classifiers page as it first opens: its widgets, and nothing of its source shown as text."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.ui import state

PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "classifiers.py"


def test_the_page_opens_with_its_choices_and_shows_no_stray_docstring(tmp_path: Path, studio_env) -> None:
    studio_env(tmp_path / "data")
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Classifiers"
    assert at.radio(key=state.CLASSIFIER_DATASET).value == "sentiment"
    assert at.radio(key=state.CLASSIFIER_MODE).value == "frozen"
    # a bare string under a module constant is rendered by Streamlit's magic: none may reach the page
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any("session_state" in text for text in shown), shown


def test_lora_options_reach_the_job_and_a_registered_classifier_can_be_tried(
    tmp_path: Path, studio_env, monkeypatch
) -> None:
    from app.config import Settings, Studio
    from app.services import jobs
    from app.services.classifiers import train_classifier

    studio_env(tmp_path / "data")
    studio = Studio(Settings.from_env(tmp_path / "data"))
    result = train_classifier(studio, "text", "frozen", epochs=1)
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    at.radio(key=state.CLASSIFIER_MODE).set_value("lora").run()
    at.number_input(key="clf-lora-rank").set_value(4).run()
    at.text_input(key="clf-lora-t").set_value("query, key").run()
    spawned: list = []
    original = jobs.submit
    monkeypatch.setattr(
        jobs,
        "submit",
        lambda s, p, k, params, spawn=True: spawned.append(params) or original(s, p, k, params, spawn=False),
    )
    at.button(key=state.CLASSIFIER_TRAIN).click().run()
    assert spawned and spawned[0]["lora"] == {
        "rank": 4,
        "alpha": 16.0,
        "dropout": 0.0,
        "target_modules": ["query", "key"],
    }

    assert at.selectbox(key="clf-try-id").value == result.id
    at.text_area(key="clf-try-text").set_value("What a wonderful, friendly place!\nCold food and rude staff.").run()
    next(b for b in at.button if b.label == "Classify").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [table] = at.dataframe
    rows = table.value
    assert list(rows["input"]) == ["What a wonderful, friendly place!", "Cold food and rude staff."]
    assert set(rows["class"]) <= {"positive", "negative"}
    assert ((rows["positive"] + rows["negative"]) - 1.0).abs().max() < 1e-5
