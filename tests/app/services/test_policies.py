"""Policies end to end on a small CartPole project: train, register, cancel, job, CLI, queries, page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import _cartpole as cp
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from app.cli import cli
from app.services import jobs, labeling, policies
from app.services.model_registry import TrainingError
from app.services.rewards import train_reward_model
from db import repo
from db.engine import session_scope
from db.errors import NotFoundError
from db.models import JobStatus
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.policy.dqn import DQNResult

pytestmark = pytest.mark.slow

POLICY_PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "policy.py"
STEPS = 1_500  # learning starts after 1,000 steps; rounds every 256 steps


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CartPole project, 40 segments, 60 pairs of which 50 oracle-labeled, a linear BT model, one policy."""
    data = cp.build(tmp_path_factory.mktemp("cartpole") / "data", n_queries=60, oracle_labels=50)
    studio = cp.studio_for(data)
    train_reward_model(studio, cp.PROJECT, "bt")
    policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS)
    studio.engine.dispose()
    return data


@pytest.fixture
def data(template: Path, tmp_path: Path, studio_env) -> Path:
    return studio_env(cp.copy(template, tmp_path / "data"))


def test_policy_on_the_learned_reward_is_registered_with_its_metrics(data: Path) -> None:
    studio = cp.studio_for(data)
    result = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, seed=1)
    assert result.version == 2
    m = result.metrics
    assert m["labels_used"] == 50 and m["reward"] == "model v1"
    assert m["env_steps"] == STEPS and m["env_steps_per_second"] > 0
    assert m["gradient_steps"] == 2 * 128  # rounds at steps 1,024 and 1,280
    assert m["success_rate"] is None  # CartPole defines no success
    assert m["learned_return_mean"] is not None and m["true_return_mean"] > 0
    assert [point["step"] for point in result.curve] == [STEPS]
    rows = cp.rows(data, "SELECT version, reward, label_count, path FROM policy ORDER BY version")
    assert [r[:3] for r in rows] == [(1, "model", 50), (2, "model", 50)]
    assert (data / rows[1][3] / "q.safetensors").is_file()
    _, agent = policies.load_agent(studio, cp.PROJECT, 2)
    assert agent.config.seed == 1


def test_the_final_evaluation_plays_episodes_the_checkpoint_choice_never_saw(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlhf_core.policy import dqn

    played: list[range] = []
    real = dqn.evaluate_policy

    def recording(act, env, episodes, seed=10_000, **kw):
        played.append(range(seed, seed + episodes))
        return real(act, env, episodes, seed, **kw)

    monkeypatch.setattr(dqn, "evaluate_policy", recording)
    policies.train_policy(cp.studio_for(data), cp.PROJECT, "active", steps=STEPS, seed=1)
    *during, final = played
    assert during and len(final) == policies.FINAL_EVAL_EPISODES == 20
    assert not set(final) & {s for r in during for s in r}  # the kept network was chosen on the others


def test_true_reward_baseline_uses_no_labels(data: Path) -> None:
    result = policies.train_policy(cp.studio_for(data), cp.PROJECT, "true", steps=STEPS)
    assert result.metrics["labels_used"] == 0 and result.metrics["learned_return_mean"] is None
    assert cp.rows(data, "SELECT reward, reward_model_id FROM policy WHERE version = 2") == [("true", None)]


def test_bad_reward_choices_are_clear_and_change_nothing(data: Path) -> None:
    studio = cp.studio_for(data)
    with pytest.raises(TrainingError, match="'active', 'true', 'teacher' or a reward model version"):
        policies.train_policy(studio, cp.PROJECT, "best", steps=STEPS)
    with pytest.raises(LookupError, match="no reward model version 7"):
        policies.train_policy(studio, cp.PROJECT, "7", steps=STEPS)
    with pytest.raises(TrainingError, match="bad policy setting"):
        policies.train_policy(studio, cp.PROJECT, "true", steps=STEPS, config={"gamma": 2.0})
    with pytest.raises(TrainingError, match="must exceed learning_starts"):
        policies.train_policy(studio, cp.PROJECT, "true", steps=500)
    assert cp.rows(data, "SELECT count(*) FROM policy") == [(1,)]


def test_cancel_registers_nothing_and_leaves_no_files(data: Path) -> None:
    studio = cp.studio_for(data)
    before = sorted(p.name for p in (data / "policies").glob("*/*"))
    with pytest.raises(TrainingCancelledError):
        policies.train_policy(studio, cp.PROJECT, "true", steps=STEPS, should_stop=lambda: True)
    assert cp.rows(data, "SELECT count(*) FROM policy") == [(1,)]
    assert sorted(p.name for p in (data / "policies").glob("*/*")) == before


def test_failed_registration_leaves_no_checkpoint_files(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sorted(p.name for p in (data / "policies").glob("*/*"))

    def broken(*args: object, **fields: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(policies.repo, "register_policy", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        policies.train_policy(cp.studio_for(data), cp.PROJECT, "true", steps=STEPS)
    assert sorted(p.name for p in (data / "policies").glob("*/*")) == before  # the saved checkpoint was removed
    assert cp.rows(data, "SELECT count(*) FROM policy") == [(1,)]


def test_failed_rollouts_to_queries_add_no_rows_and_remove_their_clips(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    studio = cp.studio_for(data)
    gifs_before = set(data.rglob("*.gif"))
    counts = cp.rows(data, "SELECT (SELECT count(*) FROM query), (SELECT count(*) FROM item)")

    real_scope = policies.session_scope

    def failing_scope(engine: object, *, write: bool = False):  # the write transaction fails after the clips
        if write:
            raise RuntimeError("write failed")
        return real_scope(engine, write=write)

    monkeypatch.setattr(policies, "session_scope", failing_scope)
    with pytest.raises(RuntimeError, match="write failed"):
        policies.rollouts_to_queries(studio, cp.PROJECT, episodes=1, seed=0)
    assert cp.rows(data, "SELECT (SELECT count(*) FROM query), (SELECT count(*) FROM item)") == counts
    assert set(data.rglob("*.gif")) == gifs_before  # clips rendered into older items' folders are gone too
    assert not list(data.glob("rollouts/*/*"))


def test_policy_job_runs_and_reports_progress(data: Path) -> None:
    studio = cp.studio_for(data)
    with session_scope(studio.engine) as session:
        pid = repo.get_project(session, cp.PROJECT).id
    params = {"project": cp.PROJECT, "reward": "true", "steps": STEPS}
    job_id = jobs.submit(studio, pid, "train-policy", params, spawn=False)
    assert jobs.run(studio, job_id) is JobStatus.succeeded
    view = jobs.get(studio, job_id)
    assert view.progress == pytest.approx(1.0)
    assert view.result is not None and view.result["version"] == 2 and view.result["labels_used"] == 0
    assert view.result["warm_start"] is None  # a baseline starts from scratch
    job_id = jobs.submit(studio, pid, "train-policy", {**params, "reward": "active"}, spawn=False)
    assert jobs.run(studio, job_id) is JobStatus.succeeded
    result = jobs.get(studio, job_id).result
    assert result is not None and result["warm_start"] == 1  # on a reward model: from v1, the page's default


def test_cli_train_policy_json_carries_the_issue_fields(data: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--data-dir", str(data), "train-policy", "--project", cp.PROJECT, "--steps", str(STEPS), "--json"]
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    for key in ("true_return_mean", "success_rate", "env_steps_per_second", "labels_used", "curve"):
        assert key in payload
    assert payload["labels_used"] == 50
    assert payload["warm_start"] == 1 and payload["curve"][0]["step"] == 0  # continued from v1, which was a candidate
    listing = runner.invoke(cli, ["--data-dir", str(data), "policies", "--project", cp.PROJECT])
    assert listing.exit_code == 0 and "v2: model v1 reward, 50 labels" in listing.output
    bad = runner.invoke(cli, ["--data-dir", str(data), "train-policy", "--project", "nope", "--steps", "10"])
    assert bad.exit_code == 1 and "nope" in bad.output and "Traceback" not in bad.output
    args = ["--data-dir", str(data), "train-policy", "--project", cp.PROJECT, "--steps", "10", "--warm-start", "last"]
    bad = runner.invoke(cli, args)
    assert bad.exit_code == 1 and "auto, previous, none or a policy version" in bad.output, bad.output


def test_a_warm_start_continues_from_a_checkpoint_and_keeps_it_as_a_candidate(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a continued run that keeps its start also trains one from scratch (the test after this one): not here
    monkeypatch.setattr(policies, "_continuing_fell_short", lambda result: False)
    studio = cp.studio_for(data)
    _, first = policies.load_agent(studio, cp.PROJECT, 1)
    start = {k: v.clone() for k, v in first.q.state_dict().items()}
    result = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, seed=1, warm_start="previous")
    assert result.metrics["warm_start"] == 1
    assert [p["step"] for p in result.curve] == [0, STEPS]  # the start, scored on this run's reward, then the end
    [v1] = [p for p in policies.policy_registry(studio, cp.PROJECT) if p["version"] == 1]
    for key in ("true_return_mean", "discounted_learned_return_mean"):  # step 0 is v1's network, same reward
        assert result.curve[0][key] == pytest.approx(v1["curve"][-1][key])
    _, second = policies.load_agent(studio, cp.PROJECT, 2)
    kept_start = result.metrics["chosen_step"] == 0
    same = all(torch.equal(second.q.state_dict()[k], v) for k, v in start.items())
    assert same == kept_start  # the network kept is the start exactly when the start scored best
    cold = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, seed=1)
    assert cold.metrics["warm_start"] is None and [p["step"] for p in cold.curve] == [STEPS]
    # "previous" skips a checkpoint whose network cannot start this one; a version named is an error
    small = policies.train_policy(
        studio, cp.PROJECT, "active", steps=STEPS, config={"hidden": (8,)}, warm_start="previous"
    )
    assert small.metrics["warm_start"] is None
    # and a checkpoint whose files are gone: the newest one that can start this network is taken
    (data / cp.rows(data, "SELECT path FROM policy WHERE version = 3")[0][0] / "q.safetensors").unlink()
    older = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, warm_start="previous")
    assert older.metrics["warm_start"] == 2  # v4 has another shape, v3 no weights
    before = cp.rows(data, "SELECT count(*) FROM policy")
    with pytest.raises(TrainingError, match="another shape.*--warm-start none"):
        policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, config={"hidden": (8,)}, warm_start=1)
    with pytest.raises(NotFoundError, match=r"no policy version 99 in this project \(its versions are 1, 2, 3, 4"):
        policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, warm_start=99)
    with pytest.raises(TrainingError, match="studio's DQN"):
        policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, algo="ppo", warm_start=1)
    assert cp.rows(data, "SELECT count(*) FROM policy") == before  # nothing registered by a refused start
    assert policies.parse_warm_start("auto", "true") is None and policies.parse_warm_start("auto", "2") == "previous"
    assert policies.parse_warm_start("3", "active") == 3 and policies.parse_warm_start("none", "active") is None


def _run(chosen_step: int, score: float | None) -> DQNResult:
    curve = [{"step": float(s), "discounted_learned_return_mean": 0.0} for s in (0, 256, 512)]
    return DQNResult([], 512, 1.0, curve, 0, chosen_step, score)  # type: ignore[arg-type]


def test_a_continued_run_that_kept_its_start_is_weighed_against_a_fresh_one() -> None:
    assert policies._continuing_fell_short(_run(0, 1.5))  # every evaluation since the start scored lower
    assert not policies._continuing_fell_short(_run(256, 1.5))  # one scored at least as well: it was kept
    assert not policies._continuing_fell_short(_run(0, None))  # nothing was chosen (the last network kept)
    continued = _run(0, 1.5)
    assert policies._restart_choice(continued, _run(512, 2.25)) == {
        "kept": "fresh",
        "start_score": 1.5,
        "fresh_score": 2.25,
    }
    assert policies._restart_choice(continued, _run(512, 1.5))["kept"] == "start"  # a tie keeps the start
    assert policies._restart_choice(continued, _run(512, -3.0))["kept"] == "start"
    assert policies._restart_choice(continued, _run(512, None)) == {
        "kept": "start",
        "start_score": 1.5,
        "fresh_score": None,
    }
    restart = {"start": 2, "score": "true_return_mean", "kept": "start", "start_score": 1.5, "fresh_score": 1.0}
    assert "(true return 1.0 against 1.5): kept policy 2's network" in str(
        policies.describe_start({"warm_start": 2, "restart": restart})
    )
    restart = {**restart, "score": "discounted_learned_return_mean", "kept": "fresh", "fresh_score": 2.25}
    assert "(discounted learned return 2.25 against 1.5): kept the fresh one" in str(
        policies.describe_start({"warm_start": None, "restart": restart})
    )
    assert policies.describe_start({"warm_start": 3}) == "continued policy 3"
    assert policies.describe_start({"warm_start": None}) is None


def test_a_continued_run_that_falls_short_of_its_start_trains_one_from_scratch_too(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wreck = {"learning_rate": 1.0}  # continuing at this rate ruins v1's network in its first round
    stages: list[str] = []
    studio = cp.studio_for(data)
    run = {"steps": STEPS, "warm_start": 1, "config": wreck}
    result = policies.train_policy(studio, cp.PROJECT, "active", **run, on_progress=lambda s, *_: stages.append(s))
    r = result.metrics["restart"]
    assert r["start"] == 1 and r["kept"] == "start" and r["fresh_score"] < r["start_score"]
    assert r["score"] == "discounted_learned_return_mean" and r["other_train_seconds"] > 0
    assert r["start_score"] == pytest.approx(result.curve[0]["discounted_learned_return_mean"], abs=1e-4)
    assert result.metrics["warm_start"] == 1 and result.metrics["chosen_step"] == 0
    _, v1 = policies.load_agent(studio, cp.PROJECT, 1)
    _, kept = policies.load_agent(studio, cp.PROJECT, result.version)
    assert all(torch.equal(kept.q.state_dict()[k], v) for k, v in v1.q.state_dict().items())
    # the bar: the continued run's half, then the fresh run's, never back
    in_order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert in_order == ["load", "continue", "restart", "evaluate"]
    spans = [jobs.stage_span(f"policy {s}") for s in ("continue", "restart", "evaluate")]
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
    # where the fresh network wins (forced here), the checkpoint is the one a run from scratch makes
    monkeypatch.setattr(
        policies,
        "_restart_choice",
        lambda c, f: {"kept": "fresh", "start_score": c.chosen_score, "fresh_score": f.chosen_score},
    )
    forced = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, warm_start=1, config=wreck)
    assert forced.metrics["warm_start"] is None and forced.metrics["restart"]["kept"] == "fresh"
    assert [p["step"] for p in forced.curve] == [STEPS]  # the fresh run's curve, not the continued one's
    scratch = policies.train_policy(studio, cp.PROJECT, "active", steps=STEPS, config=wreck)
    assert "restart" not in scratch.metrics
    assert scratch.metrics["true_return_mean"] == forced.metrics["true_return_mean"]
    _, a = policies.load_agent(studio, cp.PROJECT, forced.version)
    _, b = policies.load_agent(studio, cp.PROJECT, scratch.version)
    assert all(torch.equal(a.q.state_dict()[k], v) for k, v in b.q.state_dict().items())


def test_rollouts_become_new_pairs_served_first(data: Path) -> None:
    studio = cp.studio_for(data)
    before = cp.rows(data, "SELECT count(*), max(priority) FROM query")[0]
    added = policies.rollouts_to_queries(studio, cp.PROJECT, episodes=2, seed=3)
    assert added.episodes == 2 and added.segments >= 2 and added.queries >= added.segments
    rows = cp.rows(data, "SELECT item_a_id, item_b_id, priority FROM query WHERE method = 'policy'")
    assert len(rows) == added.queries and all(a < b and p > before[1] for a, b, p in rows)
    assert cp.rows(data, "SELECT count(*) FROM query")[0][0] == before[0] + added.queries
    sources = cp.rows(data, "SELECT DISTINCT source_policy FROM trajectory WHERE source_policy LIKE 'policy%'")
    assert sources == [("policy v1",)]
    policy_queries = {q for (q,) in cp.rows(data, "SELECT id FROM query WHERE method = 'policy'")}
    session = labeling.open_session(studio, cp.PROJECT, "ann")
    pair = labeling.next_pair(studio, session, rng=np.random.default_rng(0))
    assert pair is not None and pair.query_id in policy_queries  # served before the older pairs
    assert pair.clip is not None and pair.clip.is_file()


def test_showcase_puts_the_policy_beside_a_random_one(data: Path) -> None:
    show = policies.showcase(cp.studio_for(data), cp.PROJECT, seed=5)
    assert show.gif[:6] in (b"GIF87a", b"GIF89a")
    assert show.reward_model_version == 1 and show.predicted_rewards is not None
    assert len(show.predicted_rewards) == len(show.true_rewards) == int(show.policy_return)


def test_policy_page_shows_checkpoints_and_sends_rollouts_to_labeling(data: Path) -> None:
    at = AppTest.from_file(str(POLICY_PAGE), default_timeout=120)
    at.session_state["project"] = cp.PROJECT
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == f"Policy · {cp.PROJECT}"
    assert at.button(key="train_policy").disabled is False
    metrics = {m.label: m.value for m in at.metric}
    assert "Policy: true return" in metrics and "Random: true return" in metrics
    n_before = cp.rows(data, "SELECT count(*) FROM query")[0][0]
    at.button(key="policy_to_queries").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Added" in s.value for s in at.success)
    assert cp.rows(data, "SELECT count(*) FROM query")[0][0] > n_before


def test_policy_page_train_button_starts_a_job_with_the_chosen_settings(data: Path) -> None:
    at = AppTest.from_file(str(POLICY_PAGE), default_timeout=120)
    at.session_state["project"] = cp.PROJECT
    at.run()
    assert at.checkbox(key="policy_warm").value is True  # continue from the last policy, by default
    at.selectbox(key="policy_reward").set_value("true")
    at.number_input(key="policy_steps").set_value(2_000)
    at.button(key="train_policy").click().run()
    assert not at.exception, [e.value for e in at.exception]
    rows = cp.rows(data, "SELECT kind, params FROM job")
    assert len(rows) == 1 and rows[0][0] == "train-policy"
    params = {"project": cp.PROJECT, "reward": "true", "steps": 2_000, "algo": "dqn", "warm_start": "auto"}
    assert json.loads(rows[0][1]) == params  # auto: a baseline starts from scratch, a reward model's run does not
    assert at.button(key="train_policy").disabled  # one policy job at a time per project
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cp.rows(data, "SELECT status FROM job")[0][0] in ("queued", "running"):
        time.sleep(1.0)
    assert cp.rows(data, "SELECT status FROM job") == [("succeeded",)]
    assert cp.rows(data, "SELECT max(version) FROM policy") == [(2,)]


def _set_curve(data: Path, curve: list[dict]) -> None:
    """Replace policy v1's evaluation curve (the page draws and judges the stored curve)."""
    studio = cp.studio_for(data)
    with session_scope(studio.engine, write=True) as session:
        record = repo.get_policy(session, repo.get_project(session, cp.PROJECT).id, 1)
        record.curve = curve
    studio.engine.dispose()


def _policy_page() -> AppTest:
    at = AppTest.from_file(str(POLICY_PAGE), default_timeout=120)
    at.session_state["project"] = cp.PROJECT
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _curve_spec(at: AppTest) -> dict:
    charts = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    return next(c for c in charts if "Greedy evaluation" in json.dumps(c.get("title")))


def _evaluations(learned: list[float], measure: str, values: list[float]) -> list[dict]:
    return [
        {"step": 5_000 * (i + 1), "true_return_mean": 20.0, "success_rate": None, "learned_return_mean": x}
        | {measure: y}
        for i, (x, y) in enumerate(zip(learned, values, strict=True))
    ]


def test_policy_page_curve_puts_the_learned_return_on_its_own_axis(data: Path) -> None:
    at = _policy_page()  # the fixture's policy: one evaluation, learned and true return, no success
    spec = _curve_spec(at)
    assert spec["resolve"]["scale"]["y"] == "independent"
    left, right = spec["layer"]
    assert left["encoding"]["y"]["field"] == "true_return_mean" and left["encoding"]["y"]["axis"]["orient"] == "left"
    assert right["encoding"]["y"]["field"] == "learned_return_mean"
    assert right["encoding"]["y"]["axis"]["orient"] == "right"
    assert "learned return" in right["encoding"]["y"]["title"] and "true return" in left["encoding"]["y"]["title"]
    assert not [w for w in at.warning if "Reward hacking" in w.value]

    _set_curve(data, _evaluations([40, 80, 150, 220, 300, 390], "success_rate", [0, 0, 0.1, 0, 0, 0]))
    at = _policy_page()
    left, right = _curve_spec(at)["layer"]
    assert left["encoding"]["y"]["field"] == "success_rate" and left["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert "success rate" in left["encoding"]["y"]["title"]
    warnings = [w.value for w in at.warning if "Reward hacking" in w.value]
    assert len(warnings) == 1
    for step in ("Add the policy's rollouts to the labeling queue", "label those pairs", "retrain the reward model"):
        assert step in warnings[0]


def test_policy_page_warns_only_when_the_true_return_does_not_follow_the_learned_one(data: Path) -> None:
    learned = [40.0, 80.0, 150.0, 220.0, 300.0, 390.0]
    _set_curve(data, _evaluations(learned, "true_return_mean", [22, 19, 25, 21, 18, 20]))
    assert [w for w in _policy_page().warning if "Reward hacking" in w.value]
    _set_curve(data, _evaluations(learned, "true_return_mean", [20, 60, 120, 250, 400, 500]))
    assert not [w for w in _policy_page().warning if "Reward hacking" in w.value]
