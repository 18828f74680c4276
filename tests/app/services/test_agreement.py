"""Agreement numbers (app/services/agreement.py) against values computed by hand, rulings in
training data, and the `rlhf agreement` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services import agreement, autopilot
from db import repo
from db.engine import session_scope
from db.models import Choice, Item, Label, Project, ProjectKind, Query

WORDS = {"A": (Choice.left, 1.0), "B": (Choice.right, 0.0), "=": (Choice.equal, 0.5), "?": (Choice.cant_tell, None)}


@pytest.fixture(autouse=True)
def _on_both_databases(database_url, monkeypatch):
    """Every agreement test runs on SQLite and on PostgreSQL (the URL goes through the environment)."""
    monkeypatch.setenv("RLHF_DATABASE_URL", database_url)


def _table(data_dir: Path, table: dict[str, str], *, gold: dict[int, float] | None = None) -> Studio:
    """A text project with one pair per column of ``table`` (annotator -> answers, '-' none)."""
    studio = Studio(Settings.from_env(data_dir))
    n = len(next(iter(table.values())))
    with session_scope(studio.engine, write=True) as session:
        project = Project(name="team", kind=ProjectKind.text, env_id=None, config={}, labels_per_query=3)
        session.add(project)
        session.flush()
        queries = []
        for i in range(n):
            a = Item(project_id=project.id, prompt=f"q{i}", text="first")
            b = Item(project_id=project.id, prompt=f"q{i}", text="second")
            session.add_all([a, b])
            session.flush()
            q = Query(project_id=project.id, item_a_id=a.id, item_b_id=b.id, gold_pref=(gold or {}).get(i))
            session.add(q)
            session.flush()
            queries.append(q.id)
        for name, answers in table.items():
            annotator = repo.get_or_create_annotator(session, name)
            for q, word in zip(queries, answers, strict=True):
                if word != "-":
                    choice, pref = WORDS[word]
                    session.add(Label(query_id=q, annotator_id=annotator.id, choice=choice, pref=pref, swapped=False))
    return studio


def test_krippendorff_alpha_matches_the_hand_computed_value(tmp_path):
    # Coincidences: o00=3, o01=o10=1, o02=o20=1, o22=4; n=(5, 1, 5), n=11.
    # D_o = 4/11, D_e = 2(5*1 + 5*5 + 1*5)/(11*10) = 7/11, alpha = 1 - 4/7 = 3/7.
    studio = _table(tmp_path, {"u1": "AAB=", "u2": "ABBB", "u3": "AA-B"})
    report = agreement.agreement(studio, "team", with_model=False)
    assert report.alpha == pytest.approx(3 / 7, abs=1e-9)
    assert report.pairs_with_several == 4


def test_cant_tell_is_missing_data_and_one_category_gives_no_alpha(tmp_path):
    studio = _table(tmp_path, {"u1": "AA?", "u2": "AA?"})
    report = agreement.agreement(studio, "team", with_model=False)
    assert report.alpha is None  # every answer is 'A': chance agreement is certain
    u1 = next(a for a in report.annotators if a.annotator == "u1")
    assert u1.cant_tell_rate == pytest.approx(1 / 3)
    assert u1.with_majority == 1.0 and u1.majority_pairs == 2  # the can't-tell pair has no majority


def test_with_no_pair_answered_twice_the_note_says_what_to_do(tmp_path):
    # three answers per pair asked for (the table's project), one given: wait, not "set it to 2"
    studio = _table(tmp_path, {"u1": "AB", "u2": "--"})
    notes = agreement.agreement(studio, "team", with_model=False).notes
    assert any("3 per pair are asked for" in n and "once a second person" in n for n in notes), notes
    assert not any("--labels-per-pair" in n for n in notes)
    with session_scope(studio.engine, write=True) as session:
        session.get(Project, repo.get_project(session, "team").id).labels_per_query = 1
    notes = agreement.agreement(studio, "team", with_model=False).notes
    assert any("rlhf project set team --labels-per-pair 2" in n for n in notes), notes


def test_cohen_kappa_per_pair_of_annotators(tmp_path):
    # agree on 4 of 6: p_o = 2/3; each says A three times: p_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    studio = _table(tmp_path, {"u1": "AABBAB", "u2": "ABBBAA"})
    report = agreement.agreement(studio, "team", with_model=False)
    (pair,) = report.kappas
    assert (pair.a, pair.b, pair.shared) == ("u1", "u2", 6)
    assert pair.kappa == pytest.approx(1 / 3)


def test_majority_gold_ties_and_disputes_per_annotator(tmp_path):
    studio = _table(
        tmp_path,
        {"good": "AAAB=", "also": "AAAB-", "odd": "BBAA="},
        gold={0: 1.0, 1: 1.0},
    )
    report = agreement.agreement(studio, "team", with_model=False)
    stats = {a.annotator: a for a in report.annotators}
    # 'odd' against the others' majority: pair 0 (A,A) no, 1 (A,A) no, 2 (A,A) yes, 3 (B,B) no,
    # pair 4: the other answer is '=' (good): yes -> 2 of 5
    assert stats["odd"].with_majority == pytest.approx(2 / 5) and stats["odd"].majority_pairs == 5
    # 'good': pairs 0, 1 and 3 split the other two (no majority); 2 and 4 agree -> 2 of 2
    assert stats["good"].with_majority == pytest.approx(1.0) and stats["good"].majority_pairs == 2
    assert stats["good"].with_gold == 1.0 and stats["odd"].with_gold == 0.0 and stats["odd"].gold_pairs == 2
    assert stats["good"].tie_rate == pytest.approx(1 / 5)
    disputed = {d.query_id: d for d in report.disputed}
    assert len(disputed) == 1  # pair 3, two against one; gold pairs 0 and 1 are not listed (their answer is known)
    assert all(d.entropy == pytest.approx(0.9182958, abs=1e-6) for d in disputed.values())
    ids, names = agreement.annotators_below(studio, "team", 0.5)
    assert names == ["odd"] and len(ids) == 1


def test_a_ruling_replaces_a_pairs_labels_in_training(tmp_path):
    studio = _table(tmp_path, {"u1": "AB", "u2": "BB"})
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, "team")
        before = repo.comparisons(session, project.id)
        query_id = min(repo.query_ids_by_pair(session, project.id).values())
    assert len(before) == 4
    agreement.adjudicate(studio, "team", query_id, "a")
    with session_scope(studio.engine) as session:
        after = repo.comparisons(session, project.id)
        without_u2 = repo.comparisons(session, project.id, exclude_annotators=(repo.find_annotator(session, "u2").id,))
    ruled = [c for c in after if c.label_id == -query_id]
    assert len(after) == 3 and len(ruled) == 1 and ruled[0].pref == 1.0 and ruled[0].annotator_id is None
    assert len(without_u2) == 2  # u1's label on the second pair, and the ruling
    with session_scope(studio.engine) as session:  # what a personal model trains on: each person's answers
        own = repo.comparisons(session, project.id, rulings=False)
    assert sorted(c.label_id for c in own) == sorted(c.label_id for c in before)
    assert all(c.annotator_id is not None for c in own)
    report = agreement.agreement(studio, "team", with_model=False)
    assert next(d for d in report.disputed if d.query_id == query_id).ruling == "A"
    agreement.adjudicate(studio, "team", query_id, None)
    with session_scope(studio.engine) as session:
        assert len(repo.comparisons(session, project.id)) == 4


def test_labels_since_the_active_model_ignore_how_rulings_merged_its_count(tmp_path):
    # a model trained after a ruling counts 3 comparisons for 4 labels: the autopilot must
    # not read the difference as a new label, forever
    studio = _table(tmp_path, {"u1": "AB", "u2": "BB"})
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, "team")
        query_id = min(repo.query_ids_by_pair(session, project.id).values())
    agreement.adjudicate(studio, "team", query_id, "a")
    with session_scope(studio.engine, write=True) as session:
        trained_on = repo.comparisons(session, project.id)
        repo.register_reward_model(
            session, project.id, kind="bt", config={}, label_count=len(trained_on), label_hash="h", metrics={}, path="m"
        )
    assert len(trained_on) == 3
    assert autopilot.labels_since_round(studio, "team")[0] == 0
    with session_scope(studio.engine, write=True) as session:
        session.add(Label(query_id=query_id, annotator_id=repo.get_or_create_annotator(session, "u3").id,
                          choice=Choice.left, pref=1.0, swapped=False))  # fmt: skip
    assert autopilot.labels_since_round(studio, "team")[0] == 1


def test_agreement_command_prints_table_and_json(tmp_path):
    _table(tmp_path / "data", {"u1": "AABBAB", "u2": "ABBBAA"})
    runner = CliRunner()
    out = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "agreement", "--project", "team"])
    assert out.exit_code == 0, out.output
    assert "Krippendorff's alpha" in out.output and "u1" in out.output and "0.33" in out.output
    out = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "agreement", "--project", "team", "--json"])
    data = json.loads(out.output)
    assert data["kappas"][0]["kappa"] == pytest.approx(1 / 3)
    assert [a["annotator"] for a in data["annotators"]] == ["u1", "u2"]


def test_gold_pairs_set_by_cli_score_each_annotator(tmp_path):
    _table(tmp_path / "data", {"u1": "AB", "u2": "BB"})
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data")]
    studio = Studio(Settings.from_env(tmp_path / "data"))
    with session_scope(studio.engine) as session:
        first = min(repo.query_ids_by_pair(session, repo.get_project(session, "team").id).values())
    out = runner.invoke(cli, [*base, "gold", "--project", "team", "--pair", str(first), "--answer", "a"])
    assert out.exit_code == 0 and "team has 1 gold pairs" in out.output, out.output
    stats = {a.annotator: a for a in agreement.agreement(studio, "team", with_model=False).annotators}
    assert (stats["u1"].with_gold, stats["u2"].with_gold, stats["u2"].gold_pairs) == (1.0, 0.0, 1)
    out = runner.invoke(cli, [*base, "gold", "--project", "team", "--pair", "99999", "--answer", "a"])
    assert out.exit_code == 1 and "no pairs [99999]" in out.output


def test_training_can_weigh_each_label_by_its_annotators_agreement(tmp_path, monkeypatch):
    from app.services import text_rewards
    from app.services.rewards import train_reward_model

    studio = _table(tmp_path, {"good": "AAAB=" * 3, "also": "AAAB-" * 3, "odd": "BBAA=" * 3})
    weights = agreement.annotator_weights(studio, "team")
    with session_scope(studio.engine) as session:
        names = {repo.find_annotator(session, n).id: n for n in ("good", "also", "odd")}
    assert {names[i]: w for i, w in weights.items()} == pytest.approx({"good": 1.0, "also": 1.0, "odd": 0.4})
    seen: list = []

    def fake_train(studio, project, labels, *, weights=None, **common):  # the weights the loss would get
        prefs = text_rewards.text_preferences(project.name, labels, _items(studio, labels), weights)
        seen.append((labels, prefs.weight))
        raise text_rewards.TrainingError("stop here")

    monkeypatch.setattr("app.services.rewards.train_text_reward_model", fake_train)
    with pytest.raises(text_rewards.TrainingError, match="stop here"):
        train_reward_model(studio, "team", weight_by_agreement=True)
    [(labels, weight)] = seen
    expected = [0.4 if names[c.annotator_id] == "odd" else 1.0 for c in labels]
    assert weight.tolist() == pytest.approx(expected) and 0.4 in weight and 1.0 in weight
    with pytest.raises(Exception, match="for pooled models"):
        train_reward_model(studio, "team", kind="personal", weight_by_agreement=True)


def _items(studio, labels):
    ids = sorted({c.item_a_id for c in labels} | {c.item_b_id for c in labels})
    with session_scope(studio.engine) as session:
        return repo.items_by_id(session, ids)


def test_training_leaves_out_annotators_below_an_agreement_and_records_who(tmp_path, monkeypatch):
    from app.services import text_rewards
    from app.services.rewards import train_reward_model

    studio = _table(tmp_path, {"good": "AAAB=" * 3, "also": "AAAB-" * 3, "odd": "BBAA=" * 3})
    seen: list = []

    def fake_train(studio, project, labels, *, weights=None, notes=None, **common):
        seen.append((labels, notes))
        raise text_rewards.TrainingError("stop here")

    monkeypatch.setattr("app.services.rewards.train_text_reward_model", fake_train)
    with pytest.raises(text_rewards.TrainingError, match="stop here"):
        train_reward_model(studio, "team", min_agreement=0.5)
    [(labels, notes)] = seen
    with session_scope(studio.engine) as session:
        odd = repo.find_annotator(session, "odd").id
    assert labels and all(c.annotator_id != odd for c in labels)
    assert notes == {"min_agreement": 0.5, "excluded_annotators": ["odd"]}  # recorded with the model's metrics
    # a bar that leaves too few labels says so, and how to lower it
    monkeypatch.setattr("app.services.rewards.MIN_LABELS", len([c for c in labels if c.pref != 0.5]) + 1)
    said = r"of odd \(agreement .* left out; at least .* Lower --min-agreement"
    with pytest.raises(text_rewards.TrainingError, match=said):
        train_reward_model(studio, "team", min_agreement=0.5)
