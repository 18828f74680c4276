"""AppTest tests of the Train page (app/ui/views/train.py) and the labeling page's reward chart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import _cartpole as cp
import pytest
from streamlit.testing.v1 import AppTest

from app.services import jobs
from app.services.model_registry import pair_key, stable_split
from app.services.rewards import train_reward_model
from db import repo
from db.engine import session_scope
from db.models import JobStatus

pytestmark = pytest.mark.slow

VIEWS = Path(__file__).resolve().parents[3] / "app" / "ui" / "views"
TRAIN, LABEL = VIEWS / "train.py", VIEWS / "label.py"
TIMEOUT = 60
SMALL = {"members": 3, "epochs": 5}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-segment CartPole project, 60 pairs, 50 of them oracle-labeled, no model yet."""
    return cp.build(tmp_path_factory.mktemp("cartpole") / "data", n_queries=60, oracle_labels=50)


@pytest.fixture
def data(template: Path, tmp_path: Path, studio_env) -> Path:
    return studio_env(cp.copy(template, tmp_path / "data"))


def _project_id(studio) -> int:
    with session_scope(studio.engine) as session:
        return repo.get_project(session, cp.PROJECT).id


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _train_page() -> AppTest:
    at = AppTest.from_file(str(TRAIN), default_timeout=TIMEOUT)
    at.session_state["project"] = cp.PROJECT
    at.run()
    _no_exception(at)
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _wait(studio, project_id: int, timeout: float = 120) -> jobs.JobView:
    deadline = time.monotonic() + timeout
    job = jobs.latest(studio, project_id, "train-reward")
    while job is not None and job.active and time.monotonic() < deadline:
        time.sleep(0.5)
        job = jobs.latest(studio, project_id, "train-reward")
    assert job is not None and not job.active, job
    return job


def test_without_a_model_the_page_offers_retrain_and_no_versions(data: Path) -> None:
    at = _train_page()

    assert at.title[0].value == "Reward model · cp"
    assert any("50 labels with a preference" in c.value for c in at.caption)
    retrain = at.button(key="retrain")
    assert retrain.label == "Retrain" and not retrain.disabled
    assert any(c.value == "No training yet. Click Retrain." for c in at.caption)
    assert len(at.dataframe) == 0
    assert len(at.metric) == 0
    assert not any(s.value == "Versions" for s in at.subheader)


def test_retrain_runs_a_worker_and_the_page_shows_the_new_version(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    at = _train_page()
    assert at.radio(key="train_kind").value == "ensemble"

    at.button(key="retrain").click().run()
    _no_exception(at)

    submitted = jobs.latest(studio, pid, "train-reward")
    assert submitted is not None and submitted.id == 1
    assert json.loads(cp.rows(data, "SELECT params FROM job")[0][0]) == {
        "project": "cp",
        "kind": "ensemble",
        "form": "potential",
    }
    job = _wait(studio, pid)
    assert job.status is JobStatus.succeeded, (job.message, job.error)

    at.run()
    _no_exception(at)

    assert any("Job #1: version 1 (ensemble) is active" in s.value for s in at.success)
    assert not at.button(key="retrain").disabled
    [table] = at.dataframe
    frame = table.value
    assert len(frame) == 1
    assert frame.iloc[0]["version"] == 1 and bool(frame.iloc[0]["active"]) is True
    assert frame.iloc[0]["kind"] == "ensemble" and frame.iloc[0]["labels"] == 50
    metrics = _metrics(at)
    # 50 labels hold out about 10 pairs: too few for a number, so the page says so and shows the interval
    pairs = job.result["val_pairs"]
    with session_scope(studio.engine) as session:
        keys = [pair_key(c) for c in repo.comparisons(session, pid)]
    n_val = len(stable_split(keys, 0.2)[1])
    assert job.result["n_val"] == n_val and 5 <= n_val <= 15 and 1 <= pairs <= n_val  # pairs: those preferring a side
    assert metrics["Held-out accuracy"] == "too few pairs"
    low, high = job.result["val_accuracy_ci95"]
    assert high - low > 0.3  # ten pairs say little, and the interval shows it
    [info] = [i.value for i in at.info if "Held-out accuracy" in i.value]
    assert f"{job.result['val_accuracy']:.3f} on {pairs} held-out pairs (95% interval {low:.2f}-{high:.2f})" in info
    assert "label more" in info
    assert metrics["Labels"] == "50"
    assert any(s.value == "Version 1 (ensemble)" for s in at.subheader)
    titles = [json.loads(c.proto.spec).get("title", {}) for c in at.get("vega_lite_chart")]
    titles = [t.get("text") if isinstance(t, dict) else t for t in titles]
    assert titles == [
        "Calibration (held-out pairs)",
        "Accuracy against the number of labels",
        "Predicted against teacher (true) return, every segment",
    ]
    # a second retrain continues version 1; "Start from scratch" asks for a fresh network
    at.checkbox(key="train_fresh").check().run()
    at.button(key="retrain").click().run()
    fresh = _wait(studio, pid)
    assert fresh.id == 2 and fresh.status is JobStatus.succeeded, (fresh.message, fresh.error)
    assert json.loads(cp.rows(data, "SELECT params FROM job WHERE id = 2")[0][0])["fresh"] is True
    assert fresh.result["continued_from"] is None
    at.checkbox(key="train_fresh").uncheck().run()
    at.button(key="retrain").click().run()
    continued = _wait(studio, pid)
    assert continued.id == 3 and continued.result["continued_from"] == 2
    at.run()
    assert any(
        "version 3 (ensemble) is active" in s.value and "continued from version 2" in s.value for s in at.success
    )


def test_the_annotators_options_leave_out_or_weight_people_and_the_version_records_it(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    at = _train_page()
    at.number_input(key="train_min_agreement").set_value(0.6)
    at.checkbox(key="train_weighted").check()
    at.button(key="retrain").click().run()
    _no_exception(at)
    params = json.loads(cp.rows(data, "SELECT params FROM job")[0][0])
    assert (params["min_agreement"], params["weight_by_agreement"]) == (0.6, True)
    job = _wait(studio, pid)
    assert job.status is JobStatus.succeeded, (job.message, job.error)
    metrics = json.loads(cp.rows(data, "SELECT metrics FROM reward_model WHERE version = 1")[0][0])
    # one scripted teacher shares no pair with anyone: nobody is left out, and the version says so
    assert (metrics["min_agreement"], metrics["excluded_annotators"], metrics["weighted_by_agreement"]) == (
        0.6, [], True
    )  # fmt: skip


def test_queued_job_shows_progress_and_cancel(data: Path) -> None:
    studio = cp.studio_for(data)
    pid = _project_id(studio)
    job_id = jobs.submit(studio, pid, "train-reward", {"project": "cp", "kind": "bt"}, spawn=False)

    at = _train_page()

    assert at.button(key="retrain").disabled  # one training at a time
    assert f"Job #{job_id}" in at.get("progress")[0].proto.text
    cancel = at.button(key=f"cancel-train-reward-{job_id}")
    assert not cancel.disabled

    cancel.click().run()
    _no_exception(at)

    assert jobs.get(studio, job_id).status is JobStatus.cancelled
    at.run()
    _no_exception(at)
    assert any(f"Job #{job_id} was cancelled" in w.value for w in at.warning)
    assert not at.button(key="retrain").disabled
    assert cp.rows(data, "SELECT count(*) FROM reward_model") == [(0,)]


def test_make_active_switches_the_version(data: Path) -> None:
    studio = cp.studio_for(data)
    train_reward_model(studio, cp.PROJECT, "bt")
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    at = _train_page()
    assert any(s.value == "Version 2 (ensemble)" for s in at.subheader)
    assert list(at.dataframe[0].value["active"]) == [True, False]

    at.selectbox(key="activate_version").select(1).run()
    at.button(key="activate").click().run()
    _no_exception(at)

    assert cp.rows(data, "SELECT version FROM reward_model WHERE active") == [(1,)]
    at.run()
    assert any(s.value == "Version 1 (bt)" for s in at.subheader)
    assert list(at.dataframe[0].value["active"]) == [False, True]


# --- the labeling page's reward chart ---------------------------------------------------------


def _label_page() -> AppTest:
    at = AppTest.from_file(str(LABEL), default_timeout=TIMEOUT)
    at.session_state["project"] = cp.PROJECT
    at.session_state["annotator"] = "tester"
    at.session_state["show_reward"] = True
    at.run()
    _no_exception(at)
    return at


def test_label_page_draws_the_active_models_predicted_rewards(data: Path) -> None:
    train_reward_model(cp.studio_for(data), cp.PROJECT, "ensemble", config=SMALL)

    at = _label_page()

    assert at.toggle(key="show_reward").value is True
    assert len(at.image) == 1
    [chart] = at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert "predicted reward (model v1)" in json.dumps(spec)
    assert not any("No reward model yet" in c.value for c in at.caption)

    at.toggle(key="show_reward").set_value(False).run()
    _no_exception(at)
    assert len(at.get("vega_lite_chart")) == 0


def test_label_page_without_a_model_says_to_train_one(data: Path) -> None:
    at = _label_page()

    assert len(at.image) == 1
    assert len(at.get("vega_lite_chart")) == 0
    assert any("No reward model yet: train one on the Train page" in c.value for c in at.caption)


def test_a_continuous_project_trains_the_form_the_cli_would(tmp_path: Path, studio_env, monkeypatch) -> None:
    """The page's preselected reward form is the CLI's default: transition for Pendulum (its
    potential form reached 0.55 held-out accuracy in the browser walkthrough, and SAC on it failed)."""
    from app.config import Settings, Studio
    from app.services.demo import create_demo_project
    from app.services.rewards import default_form

    data = studio_env(tmp_path / "data")
    create_demo_project(Studio(Settings.from_env(data)), "pend", "Pendulum-v1", n_segments=8, n_queries=10, workers=1)
    submitted: list[dict] = []
    monkeypatch.setattr(jobs, "submit", lambda s, p, kind, params, spawn=True: submitted.append(params) or 1)
    at = AppTest.from_file(str(TRAIN), default_timeout=TIMEOUT)
    at.session_state["project"] = "pend"
    at.run()
    _no_exception(at)

    assert at.selectbox(key="train_form").value == "transition" == default_form("Pendulum-v1", "ensemble")
    at.button(key="retrain").click().run()
    assert submitted == [{"project": "pend", "kind": "ensemble", "form": "transition"}]
    assert default_form(cp.ENV_ID, "ensemble") == "potential" and default_form(cp.ENV_ID, "cnn-lora") == "transition"
