"""AppTest of the Train page on a text project: text-lora is the model, metrics, ranking responses."""

from __future__ import annotations

from pathlib import Path

import _text_project as tp
import pytest
from streamlit.testing.v1 import AppTest

from app.services.rewards import train_reward_model

pytestmark = pytest.mark.slow

TRAIN = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "train.py"


@pytest.fixture
def studio(tmp_path: Path, studio_env):
    return tp.build(studio_env(tmp_path / "data"))


def _page() -> AppTest:
    at = AppTest.from_file(str(TRAIN), default_timeout=120)
    at.session_state["project"] = tp.PROJECT
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_text_project_offers_text_lora_and_ranks_responses_with_the_trained_model(studio) -> None:
    at = _page()
    assert at.radio(key="train_kind").value == "text-lora" and len(at.radio(key="train_kind").options) == 2
    assert [t.key for t in at.text_input] == ["rm-lora-t"]  # LoRA's targets; nothing to rank with before a model

    train_reward_model(studio, tp.PROJECT, config={"epochs": 4, "lr": 3e-3, "max_length": 32, "rank": 4})
    at = _page()

    assert any(s.value == "Version 1 (text-lora)" for s in at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trainable"].endswith("% of minilm") and metrics["Labels"] == "30"
    good, bad = "Friendly staff and delicious food, we loved it.", "Dirty room and a rude receptionist."
    at.text_input(key="rank_prompt").input(tp.PROMPT)
    at.text_area(key="rank_responses").input(f"{bad}\n\n{good}\n")
    at.button(key="rank_score").click().run()
    assert not at.exception, [e.value for e in at.exception]

    [table] = at.dataframe[1:]  # after the versions table
    frame = table.value
    assert list(frame["response"]) == [good, bad] and list(frame["rank"]) == [1, 2]
    assert frame["reward"].iloc[0] > frame["reward"].iloc[1]
    assert any("Scored by version 1" in c.value for c in at.caption)


def test_scoring_without_responses_warns(studio) -> None:
    train_reward_model(studio, tp.PROJECT, config={"epochs": 1, "max_length": 32, "rank": 2})
    at = _page()
    at.text_input(key="rank_prompt").input("p")
    at.button(key="rank_score").click().run()
    assert any("Enter at least one response" in w.value for w in at.warning)


def test_lora_options_go_with_the_training_job(studio, monkeypatch) -> None:
    from app.services import jobs

    submitted: list[dict] = []
    monkeypatch.setattr(jobs, "submit", lambda s, p, kind, params, spawn=True: submitted.append(params) or 1)
    at = _page()
    at.number_input(key="rm-lora-rank").set_value(16).run()
    at.number_input(key="rm-lora-alpha").set_value(32.0).run()
    at.text_input(key="rm-lora-t").set_value("query,key,value").run()
    at.button(key="retrain").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert submitted == [
        {
            "project": tp.PROJECT,
            "kind": "text-lora",
            "config": {"rank": 16, "alpha": 32.0, "dropout": 0.0, "target_modules": ["query", "key", "value"]},
        }
    ]
