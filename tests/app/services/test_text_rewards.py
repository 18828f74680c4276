"""Text projects: `rlhf train-reward` (text-lora), `rlhf score`, the job, and a failed or cancelled
training leaving the store as it was."""

from __future__ import annotations

import json
from pathlib import Path

import _cartpole as cp
import _text_project as tp
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.services import jobs, model_registry
from app.services.rewards import train_reward_model
from db import repo
from db.engine import session_scope
from db.models import JobStatus
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.rewards.text import TextRewardModel

pytestmark = pytest.mark.slow

FAST = ["--epochs", "4", "--lr", "3e-3", "--max-length", "32", "--rank", "4"]
FAST_CONFIG = {"epochs": 2, "max_length": 32, "rank": 4}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    tp.build(tmp_path / "data")
    return tmp_path / "data"


def _rlhf(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)


def _nothing_registered(data: Path) -> None:
    assert cp.rows(data, "SELECT count(*) FROM reward_model") == [(0,)]
    assert cp.model_folders(data) == []


def test_train_reward_on_a_text_project_trains_text_lora_then_score_ranks(data: Path) -> None:
    result = _rlhf(data, "train-reward", "--project", tp.PROJECT, *FAST, "--json")

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["version"] == 1 and metrics["kind"] == "text-lora"
    assert metrics["n_labels"] == 30 and metrics["n_train"] == 24 and metrics["n_val"] == 6
    pairs = metrics["val_pairs"]  # held-out pairs that prefer a side, of the 6 held out
    assert 0 < pairs <= 6 and metrics["val_accuracy"] * pairs == pytest.approx(round(metrics["val_accuracy"] * pairs))
    assert metrics["log_loss"] > 0
    assert metrics["pairs_per_s"] > 0 and 0 < metrics["trainable_fraction"] < 0.01
    assert metrics["backbone"] == "minilm"
    [(kind, active, config, folder)] = cp.rows(data, "SELECT kind, active, config, path FROM reward_model")
    assert kind == "text-lora" and active == 1
    assert json.loads(config) == {"epochs": 4, "lr": 3e-3, "max_length": 32, "rank": 4}
    assert (data / folder / "adapter_model.safetensors").exists() and (data / folder / "reward_model.json").exists()

    model_registry._models.clear()  # score from the saved adapter, as a fresh process would
    good, bad = "The staff were lovely and the food was superb.", "Rude staff and cold, tasteless food."
    result = _rlhf(data, "score", "--project", tp.PROJECT, "--prompt", tp.PROMPT, "--response", bad, "--response", good)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "reward model version 1, best first:"
    assert lines[1].startswith("  1.") and lines[1].endswith(good)
    assert lines[2].startswith("  2.") and lines[2].endswith(bad)

    as_json = json.loads(
        _rlhf(data, "score", "--project", tp.PROJECT, "--prompt", "x", "--response", good, "--json").stdout
    )
    assert as_json["version"] == 1 and as_json["ranked"][0]["rank"] == 1


def test_trajectory_kinds_are_refused_for_a_text_project(data: Path) -> None:
    result = _rlhf(data, "train-reward", "--project", tp.PROJECT, "--kind", "ensemble")

    assert result.exit_code == 1
    assert "project 'reviews' holds text items: train it with --kind text-lora" in result.output
    _nothing_registered(data)
    refused = _rlhf(data, "train-reward", "--project", tp.PROJECT, "--members", "3")
    assert refused.exit_code == 1
    assert "--members applies to --kind ensemble only, not to --kind text-lora" in refused.output


def test_score_without_a_text_model_says_how_to_train_one(data: Path) -> None:
    result = _rlhf(data, "score", "--project", tp.PROJECT, "--prompt", "p", "--response", "r")

    assert result.exit_code == 1
    assert "project 'reviews' has no active text reward model" in result.output
    assert "rlhf train-reward --project reviews" in result.output
    assert "Traceback" not in result.output


def test_cancelled_training_leaves_the_store_as_it_was(data: Path) -> None:
    studio = cp.studio_for(data)
    polls = iter([False] * 3 + [True] * 100)

    with pytest.raises(TrainingCancelledError):
        train_reward_model(studio, tp.PROJECT, config=FAST_CONFIG, should_stop=lambda: next(polls))

    _nothing_registered(data)


def test_failed_save_leaves_the_store_as_it_was(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(self: TextRewardModel, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(TextRewardModel, "save", broken_save)

    with pytest.raises(OSError, match="disk full"):
        train_reward_model(cp.studio_for(data), tp.PROJECT, config=FAST_CONFIG)

    _nothing_registered(data)


def test_the_train_job_trains_a_text_model_with_progress(data: Path) -> None:
    studio = cp.studio_for(data)
    with session_scope(studio.engine) as session:
        project_id = repo.get_project(session, tp.PROJECT).id
    params = {"project": tp.PROJECT, "kind": "text-lora", "config": FAST_CONFIG}
    job_id = jobs.submit(studio, project_id, "train-reward", params, spawn=False)

    assert jobs.run(studio, job_id) is JobStatus.succeeded

    job = jobs.get(studio, job_id)
    assert job.progress == 1.0 and job.error is None
    assert job.result["kind"] == "text-lora" and job.result["version"] == 1
    assert job.result["trainable_fraction"] < 0.01 and "calibration" not in job.result
    assert cp.rows(data, "SELECT version, active, job_id FROM reward_model") == [(1, 1, job_id)]
