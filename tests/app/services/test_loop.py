"""The default demo's path, on MiniGrid pixels: reward and policy training with the defaults,
the teacher baseline, the policy's clips, rounds of the loop (all or nothing), the autopilot,
and the pages that start them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _labeling import answer_button
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from app.cli import cli
from app.config import Settings, Studio
from app.services import autopilot, jobs, labeling, loop, policies
from app.services.model_registry import pair_key, stable_split
from app.services.rewards import train_reward_model
from app.services.synthetic import label_synthetic
from db import repo
from db.engine import session_scope
from db.models import JobStatus
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.rewards.models import load_reward_model

pytestmark = pytest.mark.slow

ENV_ID = "MiniGrid-Empty-Random-6x6-v0"
PROJECT = "mg"
STEPS = 1_200  # learning starts after 1,000 steps
VIEWS = Path(__file__).resolve().parents[3] / "app" / "ui" / "views"


def _studio(data: Path) -> Studio:
    return Studio(Settings.from_env(data))


def _rows(data: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(data / "rlhf.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _store(data: Path) -> dict[str, object]:
    """Everything a round may change: registries, pairs, items, and the files under the data folder."""
    return {
        "reward_models": _rows(data, "SELECT version, active, label_count FROM reward_model ORDER BY version"),
        "policies": _rows(data, "SELECT version, reward FROM policy ORDER BY version"),
        "queries": _rows(data, "SELECT count(*), max(priority) FROM query"),
        "items": _rows(data, "SELECT count(*) FROM item"),
        "trajectories": _rows(data, "SELECT count(*) FROM trajectory"),
        "files": sorted(
            p.relative_to(data).as_posix()
            for sub in ("models", "policies", "rollouts")
            for p in (data / sub).rglob("*")
            if p.is_file()
        ),
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo project on the default MiniGrid room: 24 clips, 60 pairs, 40 oracle labels, the default
    reward model (v1) and a policy on it (v1)."""
    from app.services.demo import create_demo_project

    data = tmp_path_factory.mktemp("minigrid") / "data"
    studio = _studio(data)
    create_demo_project(studio, PROJECT, ENV_ID, n_segments=24, n_queries=60, workers=1)
    assert label_synthetic(studio, PROJECT, "oracle", 40).labeled == 40
    train_reward_model(studio, PROJECT)
    policies.train_policy(studio, PROJECT, "active", steps=STEPS)
    studio.engine.dispose()
    return data


@pytest.fixture
def data(template: Path, tmp_path: Path, studio_env) -> Path:
    return studio_env(Path(shutil.copytree(template, tmp_path / "data")))


def test_reward_defaults_on_pixels_are_a_potential_ensemble_on_efficientnet(data: Path) -> None:
    out = CliRunner().invoke(cli, ["--data-dir", str(data), "train-reward", "--project", PROJECT, "--json"])
    assert out.exit_code == 0, out.output
    m = json.loads(out.stdout)
    assert (m["kind"], m["reward_form"], m["encoder"], m["version"]) == (
        "ensemble",
        "potential",
        "efficientnet-lite0",
        2,
    )
    studio = Studio(Settings.from_env(data))
    with session_scope(studio.engine) as session:
        keys = [pair_key(c) for c in repo.comparisons(session, repo.get_project(session, PROJECT).id)]
    studio.engine.dispose()
    assert m["n_labels"] == len(keys) == 40 and m["n_val"] == len(stable_split(keys, 0.2)[1]) >= 1
    assert 1 <= m["val_pairs"] <= m["n_val"]  # ties held out count in n_val, not in the accuracy's pairs
    assert m["teacher_reward"] == "oracle:progress"
    assert m["continued_from"] == 1  # the default: version 1 (the same inputs) trained on
    path = _rows(data, "SELECT path FROM reward_model WHERE version = 2")[0][0]
    config = json.loads((data / path / "config.json").read_text())
    assert config["features"]["form"] == "potential" and config["features"]["pixels"] is True
    std = load_reward_model(data / path).net.std  # the CNN's features share one scale: no rare
    assert torch.all(std == std[0]) and float(std[0]) > 1e-3  # feature is magnified into a spike of Phi
    transition = CliRunner().invoke(
        cli, ["--data-dir", str(data), "train-reward", "--project", PROJECT, "--form", "transition", "--json"]
    )
    assert transition.exit_code == 0 and json.loads(transition.stdout)["reward_form"] == "transition"
    assert json.loads(transition.stdout)["continued_from"] is None  # other inputs than the active model's
    fresh = CliRunner().invoke(cli, ["--data-dir", str(data), "train-reward", "--project", PROJECT, "--fresh"])
    assert fresh.exit_code == 0 and "continued from" not in fresh.output
    again = CliRunner().invoke(cli, ["--data-dir", str(data), "train-reward", "--project", PROJECT])
    assert again.exit_code == 0 and "continued from version 4 (--fresh starts anew)" in again.output
    lora = CliRunner().invoke(
        cli,
        ["--data-dir", str(data), "train-reward", "--project", PROJECT, "--kind", "cnn-lora", "--form", "potential"],
    )
    assert lora.exit_code == 1 and "cnn-lora learns transition rewards only" in lora.output


def test_policy_on_pixels_shares_the_reward_models_encoder_and_reports_success(data: Path) -> None:
    result = policies.train_policy(_studio(data), PROJECT, "active", steps=STEPS, seed=1)
    m = result.metrics
    assert m["success_rate"] is not None  # MiniGrid defines success; the final evaluation's 20 episodes
    assert m["success_rate"] * 20 == round(m["success_rate"] * 20)
    assert m["chosen_step"] in {c["step"] for c in result.curve}
    assert m["learned_return_mean"] is not None and m["env_steps"] == STEPS
    assert m["encoder_cache_hit_rate"] > 0.5  # the reward model's cached features serve the policy
    assert _rows(data, "SELECT version, reward, encoder FROM policy WHERE version = 2") == [
        (2, "model", "efficientnet-lite0")
    ]


def test_the_teacher_baseline_trains_on_the_oracles_reward_without_labels(data: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "--data-dir",
            str(data),
            "train-policy",
            "--project",
            PROJECT,
            "--reward",
            "teacher",
            "--steps",
            str(STEPS),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    m = json.loads(out.stdout)
    assert m["reward"] == "teacher" and m["labels_used"] == 0 and m["learned_return_mean"] is None
    assert m["success_rate"] is not None  # evaluated on the true reward, as every policy is
    assert _rows(data, "SELECT reward, reward_model_id FROM policy WHERE version = 2") == [("teacher", None)]
    listing = runner.invoke(cli, ["--data-dir", str(data), "policies", "--project", PROJECT])
    assert "v2: teacher reward, 0 labels" in listing.output


def test_policy_queries_on_pixels_add_clips_served_first(data: Path) -> None:
    before = _rows(data, "SELECT count(*), max(priority) FROM query")[0]
    out = CliRunner().invoke(
        cli, ["--data-dir", str(data), "policy-queries", "--project", PROJECT, "--episodes", "2", "--seed", "3"]
    )
    assert out.exit_code == 0, out.output
    new = _rows(data, "SELECT item_a_id, item_b_id, priority FROM query WHERE method = 'policy'")
    assert new and all(p > before[1] for _, _, p in new)
    session = labeling.open_session(_studio(data), PROJECT, "ann")
    pair = labeling.next_pair(_studio(data), session, rng=np.random.default_rng(0))
    assert pair is not None and pair.query_id in {
        q for (q,) in _rows(data, "SELECT id FROM query WHERE method = 'policy'")
    }
    assert pair.clip is not None and pair.clip.read_bytes()[:6] in (b"GIF87a", b"GIF89a")  # the two clips, in sync


def test_a_round_retrains_both_and_queues_the_new_policys_clips(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a continued run that keeps its start also trains one from scratch (test_policies.py): not here
    monkeypatch.setattr(policies, "_continuing_fell_short", lambda result: False)
    stages: list[str] = []
    result = loop.run_round(
        _studio(data), PROJECT, seed=2, steps=STEPS, on_progress=lambda stage, done, total: stages.append(stage)
    )
    assert (result.reward_version, result.policy_version, result.labels) == (2, 2, 40)
    assert result.new_pairs > 0 and result.success_rate is not None
    metrics, curve = _rows(data, "SELECT metrics, curve FROM policy WHERE version = 2")[0]
    assert json.loads(metrics)["warm_start"] == 1  # the round continued from the last round's policy
    assert json.loads(curve)[0]["step"] == 0  # which was a candidate, scored on the new reward
    [(v1_curve,)] = _rows(data, "SELECT curve FROM policy WHERE version = 1")
    assert json.loads(curve)[0]["success_rate"] == json.loads(v1_curve)[-1]["success_rate"]  # v1's network
    assert _rows(data, "SELECT version FROM reward_model WHERE active") == [(2,)]
    assert _rows(data, "SELECT count(*) FROM query WHERE method = 'policy'") == [(result.new_pairs,)]
    assert {s.split()[0] for s in stages} == {"reward", "policy", "clips"}
    in_order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert "policy continue" in in_order and len(in_order) == len(set(in_order))
    spans = [jobs.stage_span(s) for s in in_order]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # the bar never goes back
    assert [s for s in stages if s.startswith("clips")][-1] == "clips clips"


def test_a_round_trains_as_the_user_chose_not_the_defaults(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the user's choices: an ensemble of 3 with the action as an input, in the transition form, made
    # active; the policy (v1) trained for STEPS steps. The round (autopilot's, with no settings) keeps them
    monkeypatch.setattr(policies, "_continuing_fell_short", lambda result: False)
    studio = _studio(data)
    chosen = train_reward_model(
        studio, PROJECT, "ensemble", actions=True, form="transition", config={"members": 3}, min_agreement=0.5
    )
    assert chosen.version == 2
    result = loop.run_round(studio, PROJECT, seed=2)
    assert result.reward_version == 3
    [(kind, config, metrics)] = _rows(data, "SELECT kind, config, metrics FROM reward_model WHERE version = 3")
    m = json.loads(metrics)
    assert (kind, json.loads(config), m["state_action"], m["reward_form"], m["encoder"]) == (
        "ensemble",
        {"members": 3},
        True,
        "transition",
        "efficientnet-lite0",
    )
    [(policy_config,)] = _rows(data, "SELECT config FROM policy WHERE version = 2")
    assert json.loads(policy_config)["total_steps"] == STEPS  # not the preset's 20,000
    assert m["min_agreement"] == 0.5  # the annotator filter too
    assert loop.reward_choices(None) == {} and loop.policy_choices([]) == {}  # a new project: the defaults
    # an older version's option that its kind no longer takes is dropped, not refused by every round
    old = SimpleNamespace(kind="cnn-lora", config={"epochs": 3}, metrics={})
    assert loop.reward_choices(old)["config"] is None


def test_with_people_as_the_teacher_each_round_waits_for_their_labels(data: Path, monkeypatch) -> None:
    # rounds stubbed out: what is tested is the wait between them (people label in the app meanwhile)
    rounds, seen, arrived = [], [], iter([0, 1, 2, 3, 3])
    monkeypatch.setattr(loop, "run_round", lambda studio, name, *, number, **kw: rounds.append(number) or number)
    monkeypatch.setattr(loop, "labels_since_round", lambda studio, name: (next(arrived), None))
    monkeypatch.setattr(loop.time, "sleep", lambda s: seen.append(("slept", s)))
    got = loop.run_loop(
        _studio(data), PROJECT, rounds=2, labels_per_round=3, teacher=None, poll=0.5,
        on_progress=lambda stage, done, total: seen.append((stage, done, total)),
    )  # fmt: skip
    assert got == [1, 2] and rounds == [1, 2]  # the first round at once, the second after 3 new labels
    waits = [("waiting for labels", n, 3) for n in range(4)]
    assert seen == [waits[0], ("slept", 0.5), waits[1], ("slept", 0.5), waits[2], ("slept", 0.5), waits[3]]
    stops = iter([False, True])
    arrived = iter([0, 0, 0])
    with pytest.raises(TrainingCancelledError, match="waiting for labels"):
        loop.run_loop(
            _studio(data), PROJECT, rounds=1, labels_per_round=5, first_labels=4, teacher=None, poll=0.5,
            should_stop=lambda: next(stops),
        )  # fmt: skip


@pytest.mark.parametrize("stop_in", ["policy", "clips"])
def test_a_cancelled_round_leaves_the_store_as_it_was(data: Path, stop_in: str) -> None:
    before = _store(data)
    seen: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append(stage)

    def stop() -> bool:  # asked for once the round reaches `stop_in` (the reward model is registered by then)
        return any(s.startswith(stop_in) for s in seen) or (stop_in == "clips" and "policy evaluate" in seen)

    with pytest.raises(TrainingCancelledError):
        loop.run_round(_studio(data), PROJECT, seed=2, steps=STEPS, on_progress=progress, should_stop=stop)
    assert any(s.startswith("reward") for s in seen)
    assert _store(data) == before


def test_cli_loop_labels_with_the_teacher_and_runs_rounds(data: Path) -> None:
    out = CliRunner().invoke(
        cli,
        ["--data-dir", str(data), "loop", "--project", PROJECT, "--teacher", "oracle", "--rounds", "1"]
        + ["--labels-per-round", "10", "--steps", str(STEPS), "--json"],
    )
    assert out.exit_code == 0, out.output
    [line] = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert line["round"] == 1 and line["labels"] == 50 and line["reward_version"] == 2 and line["new_pairs"] > 0
    # the accuracy with what it rests on (10 of 50 labels held out: too few to trust, and said so)
    assert 1 <= line["reward_val_pairs"] <= 10 and len(line["reward_val_ci95"]) == 2
    said = loop.describe_round_accuracy(line)
    assert f"on {line['reward_val_pairs']} held-out pairs (95% interval" in said and "label more" in said
    bad = CliRunner().invoke(cli, ["--data-dir", str(data), "loop", "--project", PROJECT, "--teacher", "nobody"])
    assert bad.exit_code == 1 and "unknown teacher 'nobody'" in bad.output
    assert _rows(data, "SELECT count(*) FROM reward_model") == [(2,)]


def test_autopilot_is_due_after_k_new_labels_and_runs_as_a_job(data: Path) -> None:
    studio = _studio(data)
    runner = CliRunner()
    on = runner.invoke(cli, ["--data-dir", str(data), "autopilot", "--project", PROJECT, "--every", "5"])
    assert on.exit_code == 0 and "a round every 5 labels (0 since the last round)" in on.output
    assert not autopilot.autopilot_due(studio, PROJECT)
    label_synthetic(studio, PROJECT, "oracle", 5, seed=1)
    assert autopilot.labels_since_round(studio, PROJECT) == (5, 5) and autopilot.autopilot_due(studio, PROJECT)
    pid = _rows(data, "SELECT id FROM project")[0][0]
    job_id = jobs.submit(studio, pid, "loop-round", {"project": PROJECT, "steps": STEPS}, spawn=False)
    assert jobs.run(studio, job_id) is JobStatus.succeeded
    view = jobs.get(studio, job_id)
    assert view.progress == pytest.approx(1.0) and view.result is not None and view.result["labels"] == 45
    assert view.result["round"] == 2  # numbered (and seeded) after the project's one policy so far
    assert not autopilot.autopilot_due(studio, PROJECT)  # the round used them
    off = runner.invoke(cli, ["--data-dir", str(data), "autopilot", "--project", PROJECT, "--off"])
    assert off.exit_code == 0 and autopilot.labels_since_round(studio, PROJECT)[1] is None
    neither = runner.invoke(cli, ["--data-dir", str(data), "autopilot", "--project", PROJECT])
    assert neither.exit_code == 2 and "--every K or --off" in neither.output


def test_a_cancelled_round_job_says_the_round_was_withdrawn(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = _studio(data)
    before = _store(data)
    pid = _rows(data, "SELECT id FROM project")[0][0]
    job_id = jobs.submit(studio, pid, "loop-round", {"project": PROJECT, "steps": STEPS}, spawn=False)
    real = loop.train_policy

    def cancel_then_train(*args, **kwargs):  # Cancel pressed once the round's reward model is registered
        jobs.cancel(studio, job_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_policy", cancel_then_train)
    assert jobs.run(studio, job_id) is JobStatus.cancelled
    assert "round was withdrawn" in jobs.get(studio, job_id).message
    assert _store(data) == before


def test_a_withdrawn_round_leaves_a_reward_model_trained_meanwhile_active(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Train page's Retrain runs while an autopilot round trains its policy; the round is
    # then cancelled: the newer model stays active, with the pair order it gave
    studio = _studio(data)
    versions: list[int] = []

    def retrain_then_cancel(*args, **kwargs):
        versions.append(train_reward_model(studio, PROJECT, "bt").version)
        raise TrainingCancelledError("cancelled")

    monkeypatch.setattr(loop, "train_policy", retrain_then_cancel)
    with pytest.raises(TrainingCancelledError):
        loop.run_round(studio, PROJECT, seed=2, steps=STEPS)
    newer = versions[0]
    assert _rows(data, "SELECT version FROM reward_model WHERE active") == [(newer,)]
    assert (newer - 1,) not in _rows(data, "SELECT version FROM reward_model")  # the round's model is gone


def _wait_for_jobs(data: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while (
        time.monotonic() < deadline
        and _rows(data, "SELECT count(*) FROM job WHERE status IN ('queued', 'running')")[0][0]
    ):
        time.sleep(1.0)


def test_train_page_offers_the_encoders_and_forms_and_passes_them_on(data: Path) -> None:
    (data / "encoders").mkdir()
    (data / "encoders" / "room.safetensors").write_bytes(b"")  # listed by name; loaded only when chosen
    at = AppTest.from_file(str(VIEWS / "train.py"), default_timeout=120)
    at.session_state["project"] = PROJECT
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    encoders = at.selectbox(key="train_encoder")
    assert encoders.options[0].startswith("EfficientNet-Lite0") and any(
        "room.safetensors" in o for o in encoders.options
    )
    assert at.selectbox(key="train_form").value == "potential"
    at.selectbox(key="train_form").set_value("transition")
    [retrain] = [b for b in at.button if b.label == "Retrain"]
    retrain.click().run()
    assert not at.exception, [e.value for e in at.exception]
    [(kind, params)] = _rows(data, "SELECT kind, params FROM job")
    assert kind == "train-reward"
    assert json.loads(params) == {
        "project": PROJECT,
        "kind": "ensemble",
        "form": "transition",
        "encoder": "efficientnet-lite0",
    }
    _wait_for_jobs(data)
    assert _rows(data, "SELECT status FROM job") == [("succeeded",)]
    path = _rows(data, "SELECT path FROM reward_model WHERE version = 2")[0][0]
    assert json.loads((data / path / "config.json").read_text())["features"]["form"] == "transition"


def test_policy_page_switches_the_autopilot_and_runs_a_round(data: Path) -> None:
    at = AppTest.from_file(str(VIEWS / "policy.py"), default_timeout=120)
    at.session_state["project"] = PROJECT
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("teacher" in o for o in at.selectbox(key="policy_reward").options)
    assert at.selectbox(key="policy_encoder").options[0].startswith("Same as the reward model")
    assert at.toggle(key="autopilot_on").value is False
    at.number_input(key="autopilot_every").set_value(7)
    at.toggle(key="autopilot_on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert json.loads(_rows(data, "SELECT config FROM project")[0][0])["autopilot"] == 7
    assert any("next round starts after 7 more" in c.value for c in at.caption)
    at.button(key="round_now").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [(kind, params)] = _rows(data, "SELECT kind, params FROM job")
    assert kind == "loop-round" and json.loads(params) == {"project": PROJECT}
    pid = _rows(data, "SELECT id FROM project")[0][0]
    job = jobs.latest(_studio(data), pid, "loop-round")
    assert job is not None
    jobs.cancel(_studio(data), job.id)  # a full round takes minutes: cancelling it is the other half to check
    _wait_for_jobs(data)
    assert _rows(data, "SELECT status FROM job") == [("cancelled",)]
    assert _rows(data, "SELECT version, active FROM reward_model") == [(1, 1)]


def test_labeling_starts_the_autopilots_round_when_k_labels_have_arrived(data: Path, instant_answers) -> None:
    autopilot.set_autopilot(_studio(data), PROJECT, 1)
    at = AppTest.from_file(str(VIEWS / "label.py"), default_timeout=60)
    at.session_state["project"] = PROJECT
    at.session_state["annotator"] = "tester"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    answer_button(at, "left").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Autopilot: round started" in c.value for c in at.caption)
    [(kind, status)] = _rows(data, "SELECT kind, status FROM job")
    assert kind == "loop-round" and status in ("queued", "running")
    answer_button(at, "left").click().run()  # a round already running: labeling goes on, no second job
    assert _rows(data, "SELECT count(*) FROM job") == [(1,)]
    job = jobs.latest(_studio(data), _rows(data, "SELECT id FROM project")[0][0], "loop-round")
    assert job is not None
    jobs.cancel(_studio(data), job.id)
    _wait_for_jobs(data)
