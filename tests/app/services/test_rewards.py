"""Reward-model use cases on a small CartPole project: training, the registry, teachers, new pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import _cartpole as cp
import numpy as np
import pytest

from app.services import clip_data, model_registry, rewards
from app.services.clips import clip_relpath
from app.services.model_registry import TrainingError
from app.services.queries import add_queries
from app.services.rewards import train_reward_model
from app.services.synthetic import label_synthetic
from db import repo
from db.engine import session_scope
from db.errors import NotFoundError
from db.models import Choice, Query
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.rewards.ensemble import EnsembleBT
from rlhf_core.rewards.queries import disagreement_scores

pytestmark = pytest.mark.slow

SMALL = {"members": 3, "epochs": 5}
METRIC_KEYS = {
    "val_accuracy",
    "log_loss",
    "spearman_teacher",
    "n_labels",
    "fit_seconds",
    "calibration",
    "learning_curve",
}


@pytest.fixture(scope="module")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(unlabeled, labeled with 100 oracle answers) copies of one 40-segment, 120-pair project."""
    root = tmp_path_factory.mktemp("cartpole")
    unlabeled = cp.build(root / "unlabeled")
    labeled = cp.copy(unlabeled, root / "labeled")
    studio = cp.studio_for(labeled)
    assert label_synthetic(studio, cp.PROJECT, "oracle", 100).labeled == 100
    studio.engine.dispose()
    return unlabeled, labeled


@pytest.fixture(scope="module")
def templates(
    sqlite_templates: tuple[Path, Path], template_store: str | None, request: pytest.FixtureRequest
) -> tuple[Path, Path]:
    """The two projects on SQLite, then on PostgreSQL (the registry's version numbers and active flags)."""
    if template_store is None:
        return sqlite_templates
    root = request.getfixturevalue("tmp_path_factory").mktemp("cartpole-pg")
    second = request.getfixturevalue("postgres_cluster").new_database()
    return (
        cp.on_postgres(sqlite_templates[0], root / "unlabeled", template_store),
        cp.on_postgres(sqlite_templates[1], root / "labeled", second),
    )


@pytest.fixture
def labeled(templates: tuple[Path, Path], tmp_path: Path) -> Path:
    return cp.copy(templates[1], tmp_path / "data")


@pytest.fixture
def unlabeled(templates: tuple[Path, Path], tmp_path: Path) -> Path:
    return cp.copy(templates[0], tmp_path / "data")


def _models(data: Path) -> list[tuple]:
    """(version, kind, active, label_count, label_hash, path) of every reward_model row."""
    return cp.rows(
        data, "SELECT version, kind, active, label_count, label_hash, path FROM reward_model ORDER BY version"
    )


def _comparisons(studio) -> list[repo.Comparison]:
    with session_scope(studio.engine) as session:
        return repo.comparisons(session, repo.get_project(session, cp.PROJECT).id)


def _project(studio):
    with session_scope(studio.engine) as session:
        return repo.get_project(session, cp.PROJECT)


def _queries(studio) -> list[Query]:
    with session_scope(studio.engine) as session:
        return list(session.query(Query).order_by(Query.id))


def _record(studio, query_id: int, choice: Choice, annotator: str = "person") -> None:
    with session_scope(studio.engine, write=True) as session:
        who = repo.get_or_create_annotator(session, annotator)
        repo.record_label(session, query_id, who.id, choice, swapped=False)


def _unlabeled_ids(data: Path) -> list[int]:
    sql = "SELECT id FROM query WHERE id NOT IN (SELECT query_id FROM label) ORDER BY id"
    return [r[0] for r in cp.rows(data, sql)]


# --- training and the registry ---------------------------------------------------------------


def test_bt_on_oracle_labels_registers_version_1_active_with_metrics(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    comparisons = _comparisons(studio)
    assert len(comparisons) == 100  # oracle answers carry a preference (some are equal)

    result = train_reward_model(studio, cp.PROJECT, "bt")

    assert result.version == 1 and result.kind == "bt"
    assert METRIC_KEYS <= set(result.metrics)
    m = result.metrics
    assert m["n_labels"] == 100
    assert m["val_accuracy"] >= 0.85, m
    assert m["spearman_teacher"] >= 0.8, m
    assert 0 <= m["log_loss"] < 0.6931  # better than a coin
    assert m["fit_seconds"] > 0
    assert m["calibration"] and all({"mean_predicted", "observed", "count"} <= set(b) for b in m["calibration"])
    assert [p["n_labels"] for p in m["learning_curve"]] == sorted(p["n_labels"] for p in m["learning_curve"])

    [(version, kind, active, label_count, label_hash, path)] = _models(labeled)
    assert (version, kind, active, label_count) == (1, "bt", 1, 100)
    assert label_hash == model_registry.label_hash(comparisons)
    assert (labeled / path).is_dir()
    assert cp.model_folders(labeled) == [path]

    [row] = model_registry.registry(studio, cp.PROJECT)
    assert row["version"] == 1 and row["active"] is True and row["kind"] == "bt" and row["labels"] == 100
    assert row["val_accuracy"] == m["val_accuracy"] and row["metrics"]["spearman_teacher"] == m["spearman_teacher"]


def test_label_hash_is_stable_and_changes_with_one_more_label(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL, seed=1)
    first, second = _models(labeled)
    assert first[4] == second[4]  # same labels, same fingerprint
    assert first[3] == second[3] == 100

    _record(studio, _unlabeled_ids(labeled)[0], Choice.left)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    third = _models(labeled)[2]
    assert third[3] == 101
    assert third[4] != first[4]
    assert third[4] == model_registry.label_hash(_comparisons(studio))


def test_held_out_labels_stay_held_out_as_labels_are_added() -> None:
    ids = list(range(1, 1001))
    train, val = model_registry.stable_split(ids[:200], 0.2)
    later_train, later_val = model_registry.stable_split(ids, 0.2)
    assert set(train) | set(val) == set(range(200)) and not set(train) & set(val)
    assert set(val) <= set(later_val) and not set(train) & set(later_val)  # no version is scored on
    assert 0.15 <= len(later_val) / 1000 <= 0.25  # labels an earlier one trained on
    assert 0.1 <= len(val) / 200 <= 0.3
    shuffled = ids[::-1]  # the split follows the labels' ids, not their order
    assert {shuffled[i] for i in model_registry.stable_split(shuffled, 0.2)[1]} == {ids[i] for i in later_val}
    assert len(model_registry.stable_split([1, 2, 3, 4], 0.2)[1]) == 0  # too few to hold any out
    for few in ([11, 12, 13, 14, 15], [7, 8, 9, 10, 11, 12]):  # from 5 on, at least one
        assert len(model_registry.stable_split(few, 0.2)[1]) >= 1
    assert len(model_registry.stable_split(ids, 0.0)[1]) == 0


def test_every_label_of_a_pair_falls_on_one_side_of_the_split() -> None:
    # a team project: each pair answered by two annotators (some shown the other way round),
    # and a ruling on every tenth pair; no pair may be trained on and scored on both
    labels, label_id = [], 0
    for q in range(1, 301):
        a, b = 2 * q + 1000, 2 * q + 1001
        for annotator in (1, 2):
            label_id += 1
            shown = (a, b) if (q + annotator) % 3 else (b, a)
            labels.append(repo.Comparison(label_id, *shown, 1.0, annotator))
        if q % 10 == 0:
            labels.append(repo.Comparison(-q, a, b, 0.0))
    keys = [model_registry.pair_key(c) for c in labels]
    assert len(set(keys)) == 300
    train, val = model_registry.stable_split(keys, 0.2)
    train_pairs, val_pairs = {keys[i] for i in train}, {keys[i] for i in val}
    assert not train_pairs & val_pairs
    assert 0.14 <= len(val_pairs) / 300 <= 0.26 and len(train) + len(val) == len(labels)
    # the label ids do not decide it: the same pairs under other ids split the same way
    renumbered = [repo.Comparison(c.label_id + 5000, c.item_b_id, c.item_a_id, c.pref) for c in labels]
    again = model_registry.stable_split([model_registry.pair_key(c) for c in renumbered], 0.2)[1]
    assert np.array_equal(again, val)
    # splitting by label instead would have put both labels of some pairs on both sides
    by_label = model_registry.stable_split([c.label_id for c in labels], 0.2)[1]
    assert {keys[i] for i in by_label} & {keys[i] for i in set(range(len(labels))) - set(by_label)}


def test_the_seeded_split_of_text_models_draws_pairs_not_labels() -> None:
    # text models keep a seeded random split; with keys, a pair's labels stay together
    keys = [k for pair in range(100) for k in [pair] * (1 + pair % 3)]  # 1-3 labels per pair
    train, val = model_registry.split_train_val(len(keys), 0.2, np.random.default_rng(0), keys)
    assert not {keys[i] for i in train} & {keys[i] for i in val}
    assert len({keys[i] for i in val}) == 20 and len(train) + len(val) == len(keys)
    # one label per pair: the same split as drawing the labels themselves
    for seed in range(5):
        plain = model_registry.split_train_val(50, 0.2, np.random.default_rng(seed))
        keyed = model_registry.split_train_val(50, 0.2, np.random.default_rng(seed), [7 * i for i in range(50)])
        assert all(np.array_equal(x, y) for x, y in zip(plain, keyed, strict=True))
    assert len(model_registry.split_train_val(4, 0.2, np.random.default_rng(0), [1, 1, 2, 3])[1]) == 0


def test_a_retrained_ensemble_continues_the_active_one_unless_told_not_to(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    first = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    assert first.metrics["continued_from"] is None  # nothing to continue
    second = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    assert second.metrics["continued_from"] == first.version
    assert (
        train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL, continue_active=False).metrics[
            "continued_from"
        ]
        is None
    )
    bt = train_reward_model(studio, cp.PROJECT, "bt")
    assert bt.metrics["continued_from"] is None  # the linear model is fitted anew (cross-validated)
    after_bt = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    assert after_bt.metrics["continued_from"] is None  # the active model is not an ensemble
    assert second.metrics["n_val"] == first.metrics["n_val"]  # the same labels held out each time


def test_an_unreadable_active_model_is_named_and_the_store_stays_as_it_was(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    [(*_, path)] = _models(labeled)
    shutil.rmtree(labeled / path)
    model_registry._models.clear()  # a fresh process: nothing cached
    before = _models(labeled)
    with pytest.raises(TrainingError, match="cannot be read.*--fresh"):
        train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    assert _models(labeled) == before
    assert train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL, continue_active=False).version == 2


def test_second_version_becomes_active_and_activate_switches_back(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "bt")
    second = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)

    assert second.version == 2
    assert [(r["version"], r["kind"], r["active"]) for r in model_registry.registry(studio, cp.PROJECT)] == [
        (2, "ensemble", True),
        (1, "bt", False),
    ]
    found = model_registry.active_model(studio, _project(studio).id)
    assert found is not None and found[0].version == 2 and isinstance(found[1], EnsembleBT)

    model_registry.activate(studio, cp.PROJECT, 1)

    assert cp.rows(labeled, "SELECT version FROM reward_model WHERE active") == [(1,)]
    assert [(r["version"], r["active"]) for r in model_registry.registry(studio, cp.PROJECT)] == [(2, False), (1, True)]
    assert model_registry.active_model(studio, _project(studio).id)[0].version == 1
    with pytest.raises(NotFoundError, match="version 7"):
        model_registry.activate(studio, cp.PROJECT, 7)
    assert cp.rows(labeled, "SELECT version FROM reward_model WHERE active") == [(1,)]


def test_too_few_labels_raise_and_register_nothing(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)
    items = {i: r for i, r in cp.rows(unlabeled, "SELECT id, true_return FROM item")}
    strict = [q for q in _queries(studio) if items[q.item_a_id] != items[q.item_b_id]]
    for query in strict[:9]:
        _record(studio, query.id, Choice.left)
    for query in strict[9:12]:  # equal answers are trained on but do not count towards the minimum
        _record(studio, query.id, Choice.equal)
    assert len(_comparisons(studio)) == 12

    with pytest.raises(TrainingError) as err:
        train_reward_model(studio, cp.PROJECT, "bt")

    message = str(err.value)
    assert "has 9 labels" in message and "at least 10" in message
    assert "Label more" in message
    assert _models(unlabeled) == []
    assert cp.model_folders(unlabeled) == []


def test_cant_tell_and_skip_labels_are_never_trained_on(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    free = _unlabeled_ids(labeled)
    _record(studio, free[0], Choice.cant_tell)
    _record(studio, free[1], Choice.skip)
    _record(studio, free[2], Choice.cant_tell, annotator="someone else")
    assert cp.rows(labeled, "SELECT count(*) FROM label")[0][0] == 103

    result = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)

    assert result.metrics["n_labels"] == 100
    assert _models(labeled)[0][3] == 100
    assert {c.label_id for c in _comparisons(studio)}.isdisjoint(
        {r[0] for r in cp.rows(labeled, "SELECT id FROM label WHERE choice IN ('cant_tell', 'skip')")}
    )


def test_failure_during_fit_keeps_the_previous_active_model(labeled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    before = _models(labeled)

    def boom(self, *args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(EnsembleBT, "fit", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)

    assert _models(labeled) == before
    assert cp.rows(labeled, "SELECT version FROM reward_model WHERE active") == [(1,)]
    assert cp.model_folders(labeled) == [before[0][5]]


def test_failure_while_registering_removes_the_new_model_folder(labeled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    before = _models(labeled)
    priorities = cp.rows(labeled, "SELECT id, priority FROM query ORDER BY id")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    # runs inside the registering transaction, after the version row was added
    monkeypatch.setattr(model_registry.repo, "set_query_priorities", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)

    assert _models(labeled) == before  # the whole registration rolled back
    assert cp.model_folders(labeled) == [before[0][5]]
    assert cp.rows(labeled, "SELECT id, priority FROM query ORDER BY id") == priorities


def test_cancel_keeps_the_previous_active_model(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "bt")
    before = _models(labeled)
    stages: list[str] = []

    with pytest.raises(TrainingCancelledError):
        train_reward_model(
            studio,
            cp.PROJECT,
            "ensemble",
            config=SMALL,
            should_stop=lambda: True,
            on_progress=lambda stage, done, total: stages.append(stage),
        )

    assert "evaluate" not in stages
    assert _models(labeled) == before
    assert cp.model_folders(labeled) == [before[0][5]]


def test_stop_asked_for_after_the_fit_registers_nothing(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    asked: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "evaluate":
            asked.append(stage)

    with pytest.raises(TrainingCancelledError):
        train_reward_model(
            studio, cp.PROJECT, "ensemble", config=SMALL, on_progress=progress, should_stop=lambda: bool(asked)
        )

    assert asked  # the stop came after fitting, while evaluating
    assert _models(labeled) == []
    assert cp.model_folders(labeled) == []


def test_ensemble_retrain_ranks_unlabeled_pairs_by_disagreement(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    free = _unlabeled_ids(labeled)
    assert len(free) == 20
    assert {p for (p,) in cp.rows(labeled, "SELECT priority FROM query")} == {0.0}

    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)

    project = _project(studio)
    record, model = model_registry.active_model(studio, project.id)
    data = clip_data.project_data(studio, project)
    queries = {q.id: q for q in _queries(studio)}
    pairs = [
        (int(a), int(b))
        for a, b in zip(
            data.rows([queries[i].item_a_id for i in free]),
            data.rows([queries[i].item_b_id for i in free]),
            strict=True,
        )
    ]
    expected = disagreement_scores(model, data.segments, pairs)
    stored = np.array([queries[i].priority for i in free])
    assert np.allclose(stored, expected, rtol=1e-5, atol=1e-7)
    assert stored.max() > 0 and len(np.unique(stored)) > 1
    labeled_ids = set(queries) - set(free)
    assert all(queries[i].priority == 0.0 for i in labeled_ids)  # answered pairs keep their priority

    with session_scope(studio.engine, write=True) as session:
        who = repo.get_or_create_annotator(session, "fresh eyes")
        served = repo.claim_next_query(session, project.id, who.id, rng=np.random.default_rng(0))
    assert served is not None
    assert served.query_id == free[int(np.argmax(stored))]


def test_predicted_step_rewards_need_an_active_model(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    project = _project(studio)
    ids = [q.item_a_id for q in _queries(studio)[:2]]
    assert rewards.predicted_step_rewards(studio, project, ids) is None

    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    found = rewards.predicted_step_rewards(studio, project, ids)

    assert found is not None and found["version"] == 1
    length = project.config["segment_length"]
    assert found["rewards"].shape == (2, length) and found["valid"].shape == (2, length)
    assert np.isfinite(found["rewards"]).all()


# --- scripted teachers -----------------------------------------------------------------------


def _teacher_labels(data: Path, annotator: str) -> list[tuple]:
    """(query_id, choice, pref, true_return_a, true_return_b) of an annotator's labels."""
    return cp.rows(
        data,
        "SELECT q.id, l.choice, l.pref, a.true_return, b.true_return FROM label l "
        "JOIN annotator n ON n.id = l.annotator_id JOIN query q ON q.id = l.query_id "
        "JOIN item a ON a.id = q.item_a_id JOIN item b ON b.id = q.item_b_id WHERE n.name = ? ORDER BY l.id",
        annotator,
    )


def test_oracle_teacher_prefers_the_higher_true_return(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)

    result = label_synthetic(studio, cp.PROJECT, "oracle", 30)

    assert result.annotator == "teacher:oracle" and result.labeled == 30 and result.skipped == 0
    labels = _teacher_labels(unlabeled, "teacher:oracle")
    assert len(labels) == 30
    expected = [1.0 if ra > rb else 0.0 if ra < rb else 0.5 for _, _, _, ra, rb in labels]
    assert [pref for _, _, pref, _, _ in labels] == expected
    assert {0.0, 1.0} <= set(expected)  # the pool has both orders (and the test can fail)
    choices = {1.0: "left", 0.0: "right", 0.5: "equal"}
    assert [c for _, c, _, _, _ in labels] == [choices[p] for p in expected]
    assert result.equal == expected.count(0.5)
    assert cp.rows(unlabeled, "SELECT role FROM annotator WHERE name = 'teacher:oracle'") == [("teacher",)]


def test_second_teacher_call_labels_other_queries(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)
    label_synthetic(studio, cp.PROJECT, "oracle", 10)
    first = {q for q, *_ in _teacher_labels(unlabeled, "teacher:oracle")}

    again = label_synthetic(studio, cp.PROJECT, "oracle", 10)

    both = [q for q, *_ in _teacher_labels(unlabeled, "teacher:oracle")]
    assert again.labeled == 10 and len(both) == len(set(both)) == 20
    assert len(set(both) - first) == 10  # ten pairs it had not answered


def test_skip_teacher_with_a_high_threshold_records_skips(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)

    result = label_synthetic(studio, cp.PROJECT, "skip", 5, skip_threshold=1e6)

    assert (result.annotator, result.labeled, result.skipped) == ("teacher:skip", 5, 5)
    labels = _teacher_labels(unlabeled, "teacher:skip")
    assert [(c, p) for _, c, p, _, _ in labels] == [("skip", None)] * 5
    assert _comparisons(studio) == []  # skips carry no preference
    with pytest.raises(TrainingError, match="has 0 labels"):
        train_reward_model(studio, cp.PROJECT, "bt")


# --- adding pairs ----------------------------------------------------------------------------


def test_random_queries_add_new_distinct_pairs_with_both_clips(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)
    before = {(q.item_a_id, q.item_b_id) for q in _queries(studio)}
    gifs_before = len(list(unlabeled.rglob("*.gif")))

    result = add_queries(studio, cp.PROJECT, "random", 6, seed=3, workers=1)

    assert (result.added, result.method, result.top_score) == (6, "random", None)
    new = [q for q in _queries(studio) if (q.item_a_id, q.item_b_id) not in before]
    assert len(new) == 6 and len(_queries(studio)) == 126
    assert all(q.method == "random" and q.priority == 0.0 and q.item_a_id < q.item_b_id for q in new)
    assert len({(q.item_a_id, q.item_b_id) for q in new}) == 6
    with session_scope(studio.engine) as session:
        items = repo.items_by_id(session, [i for q in new for i in (q.item_a_id, q.item_b_id)])
    for q in new:
        a, b = items[q.item_a_id], items[q.item_b_id]
        for left, right in ((a, b), (b, a)):
            gif = unlabeled / clip_relpath(left.clip_file, right.clip_file)
            assert gif.is_file() and gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    assert len(list(unlabeled.rglob("*.gif"))) == gifs_before + 12


def test_disagreement_queries_need_an_active_model(unlabeled: Path) -> None:
    studio = cp.studio_for(unlabeled)
    with pytest.raises(TrainingError, match="rlhf train-reward"):
        add_queries(studio, cp.PROJECT, "disagreement", 5, workers=1)
    assert len(_queries(studio)) == 120


def test_disagreement_queries_with_an_ensemble_are_disputed_first(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL)
    before = {q.id for q in _queries(studio)}

    result = add_queries(studio, cp.PROJECT, "disagreement", 5, seed=0, workers=1)

    assert result.added == 5 and result.method == "disagreement"
    new = [q for q in _queries(studio) if q.id not in before]
    assert len(new) == 5 and all(q.method == "disagreement" for q in new)
    scores = [q.priority for q in new]  # inserted most disputed first
    assert all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert result.top_score == pytest.approx(scores[0])
    # ...and they match what the active model says about them
    project = _project(studio)
    _, model = model_registry.active_model(studio, project.id)
    data = clip_data.project_data(studio, project)
    pairs = [
        (int(a), int(b))
        for a, b in zip(data.rows([q.item_a_id for q in new]), data.rows([q.item_b_id for q in new]), strict=True)
    ]
    assert np.allclose(disagreement_scores(model, data.segments, pairs), scores, rtol=1e-5)


def test_a_state_action_reward_model_trains_on_the_projects_actions_and_scores_its_clips(labeled: Path) -> None:
    studio = cp.studio_for(labeled)
    result = train_reward_model(studio, cp.PROJECT, "ensemble", config=SMALL, actions=True)
    assert result.metrics["state_action"] is True
    assert 0 < result.metrics["calibration_scale"] <= 1  # the ensemble's out-of-bag calibration, reported
    project = _project(studio)
    record, model = model_registry.active_model(studio, project.id)
    assert model.spec.n_actions == 2  # CartPole: push left or right
    data = clip_data.project_data(studio, project)
    assert data.segments.actions is not None and data.segments.actions.shape == data.segments.valid.shape
    assert set(np.unique(data.segments.actions[data.segments.valid])) == {0, 1}
    # the labeling page's chart and the policy's reward go through the same inputs
    found = rewards.predicted_step_rewards(studio, project, [int(data.item_ids[0]), int(data.item_ids[1])])
    assert found is not None and np.isfinite(found["rewards"]).all()
    # and the same segment scores differently when its actions are flipped
    flipped = type(data.segments)(data.segments.obs, data.segments.valid, 1 - data.segments.actions)
    assert not np.allclose(model.step_rewards(flipped), model.step_rewards(data.segments))


@pytest.mark.parametrize("fixed", ["1", "2"])
def test_the_fit_runs_on_the_count_rlhf_threads_fixes_and_torchs_count_is_put_back(labeled: Path, monkeypatch, fixed):
    import torch

    studio = cp.studio_for(labeled)
    monkeypatch.setenv("RLHF_THREADS", fixed)
    seen: list[tuple[str, int]] = []
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # neither count: what the fit runs on comes from RLHF_THREADS
    try:
        train_reward_model(
            studio,
            cp.PROJECT,
            "ensemble",
            config=SMALL,
            on_progress=lambda stage, done, total: seen.append((stage, torch.get_num_threads())),
        )
        assert {n for stage, n in seen if stage == "fit"} == {int(fixed)}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
