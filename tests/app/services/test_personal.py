"""Personal reward models in the studio (app/services/personal.py): a scripted team that
disagrees, per-annotator scores, a newcomer fitted without retraining, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services import accounts, agreement, personal, synthetic
from app.services.model_registry import TrainingError, split_train_val
from app.services.projects import update_settings
from app.services.rewards import train_reward_model
from app.services.text_data import create_team_demo
from db import repo
from db.engine import session_scope
from rlhf_core.errors import InvalidInputError

# MiniLM features of 480 responses first: about 10 s, so `make test` runs these, not test-fast
pytestmark = pytest.mark.slow

PROMPT = "Write a short review."
SHORT, LONG = "Good.", "It is good. The staff were kind and the room was quiet. I would return."


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A 240-pair team demo: ann and bo like short reviews, cy and di long ones."""
    data = tmp_path_factory.mktemp("team") / "data"
    studio = Studio(Settings.from_env(data))
    create_team_demo(studio, "team", pairs=240)
    for name, persona in (("ann", "concise"), ("bo", "concise"), ("cy", "detailed"), ("di", "detailed")):
        synthetic.label_synthetic(studio, "team", persona, 60, annotator=name)
    return studio, data


def test_the_personal_model_learns_each_side_where_the_pooled_one_cannot(team):
    studio, _ = team
    result = train_reward_model(studio, "team", "personal", seed=0)
    per = result.metrics["per_annotator"]
    assert set(per) == {"ann", "bo", "cy", "di"}
    assert all(v["personal"] >= 0.85 for v in per.values()), per
    assert result.metrics["pooled_val_accuracy"] <= 0.7  # the two sides cancel out when pooled
    assert result.metrics["val_accuracy"] >= 0.85
    _, ranked_ann = personal.score_texts(studio, "team", PROMPT, [LONG, SHORT], "ann")
    _, ranked_cy = personal.score_texts(studio, "team", PROMPT, [LONG, SHORT], "cy")
    assert ranked_ann[0][0] == SHORT and ranked_cy[0][0] == LONG

    update_settings(studio, "team", labels_per_pair=2)
    synthetic.label_synthetic(studio, "team", "detailed", 10, annotator="newbie", seed=1)
    again = personal.personalize(studio, "team", "newbie")
    assert again.version == result.version + 1 and "newbie" in again.metrics["annotators"]
    assert personal.score_texts(studio, "team", PROMPT, [SHORT, LONG], "newbie")[1][0][0] == LONG
    with pytest.raises(InvalidInputError, match="no taste for 'nobody'"):
        personal.score_texts(studio, "team", PROMPT, [SHORT], "nobody")


def test_the_held_out_split_keeps_each_annotators_share_and_every_pair_on_one_side():
    # k = 2: every pair answered by two of four annotators (a third of them by one only), so
    # a per-annotator split of the labels would train on a pair through one person's label
    # and score it through the other's
    rng = np.random.default_rng(3)
    names = np.array(["ann", "bo", "cy", "di"])
    who, keys = [], []
    for pair in range(600):
        k = 1 if pair % 3 == 0 else 2
        for name in rng.choice(names, size=k, replace=False):
            who.append(name)
            keys.append(1000 + pair)
    who = np.array(who)
    train, val = personal._split_by_annotator(who, keys, 0.2, np.random.default_rng(0))
    assert len(train) + len(val) == len(keys) and not set(train) & set(val)
    assert not {keys[i] for i in train} & {keys[i] for i in val}
    for name in names:
        mine = np.flatnonzero(who == name)
        share = np.isin(mine, val).mean()
        assert 0.17 <= share <= 0.25, (name, share)
    # labels drawn per annotator without the pairs would have put pairs on both sides
    plain_val = []
    for name in names:
        mine = np.flatnonzero(who == name)
        plain_val += list(mine[split_train_val(len(mine), 0.2, np.random.default_rng(0))[1]])
    plain_train = set(range(len(keys))) - set(plain_val)
    assert {keys[i] for i in plain_val} & {keys[i] for i in plain_train}
    # one label per pair: the per-annotator random split of the labels, index for index
    single = np.array([names[i % 4] for i in range(80)])
    keyed = personal._split_by_annotator(single, list(range(80)), 0.2, np.random.default_rng(5))
    rng_plain, expected = np.random.default_rng(5), []
    for name in sorted(names):
        mine = np.flatnonzero(single == name)
        expected += list(mine[split_train_val(len(mine), 0.2, rng_plain)[1]])
    assert np.array_equal(keyed[1], np.sort(expected))


def test_a_ruling_leaves_each_persons_own_answers_to_the_personal_model(team):
    # a ruling settles what the pooled kinds train on; a person's taste is still what they said
    studio, _ = team
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, "team")
        labels = repo.comparisons(session, project.id)
        by_pair = repo.query_ids_by_pair(session, project.id)
    ruled = by_pair[(labels[0].item_a_id, labels[0].item_b_id)]  # a pair someone answered
    n = len(labels)
    agreement.adjudicate(studio, "team", ruled, "a")
    try:
        result = train_reward_model(studio, "team", "personal", seed=0)
        assert result.metrics["n_labels"] == n  # none dropped for the ruling
    finally:
        agreement.adjudicate(studio, "team", ruled, None)


def test_cli_trains_scores_per_annotator_and_refuses_a_lone_annotator(team, tmp_path):
    _, data = team
    runner = CliRunner()
    base = ["--data-dir", str(data)]
    out = runner.invoke(cli, [*base, "train-reward", "--project", "team", "--kind", "personal"])
    assert out.exit_code == 0, out.output
    assert "ann: held-out accuracy" in out.output and "pooled" in out.output
    out = runner.invoke(
        cli,
        [*base, "score", "--project", "team", "--prompt", PROMPT, "--response", SHORT, "--response", LONG,
         "--annotator", "di", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ranked"][0]["response"] == LONG

    lone = Studio(Settings.from_env(tmp_path / "lone"))
    create_team_demo(lone, "solo", pairs=40)
    synthetic.label_synthetic(lone, "solo", "concise", 40, annotator="ann")
    with pytest.raises(TrainingError, match="two or more people"):
        train_reward_model(lone, "solo", "personal")
    with pytest.raises(InvalidInputError, match="text personas"):
        synthetic.label_synthetic(lone, "solo", "oracle", 5)
    accounts.add_user(lone, "carol", "annotator", ["solo"])
    with pytest.raises(InvalidInputError, match="a person's account"):
        synthetic.label_synthetic(lone, "solo", "concise", 5, annotator="carol")


def test_the_cli_lists_every_scripted_annotator():
    from app.cli import SCRIPTED

    assert SCRIPTED == synthetic.scripted_names()
