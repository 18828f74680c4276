"""`rlhf label-synthetic`, `rlhf train-reward` and `rlhf queries` on a small CartPole project."""

from __future__ import annotations

import json
from pathlib import Path

import _cartpole as cp
import pytest
from click.testing import CliRunner

from app.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-segment CartPole project with 60 unlabeled pairs."""
    return cp.build(tmp_path_factory.mktemp("cartpole") / "data", n_queries=60)


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    return cp.copy(template, tmp_path / "data")


def _rlhf(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)


def _label(data: Path, n: int) -> None:
    result = _rlhf(data, "label-synthetic", "--project", "cp", "--teacher", "oracle", "-n", str(n))
    assert result.exit_code == 0, result.output
    assert f"teacher:oracle labeled {n} pairs" in result.stdout


def test_label_synthetic_then_train_bt_prints_json_metrics(data: Path) -> None:
    result = _rlhf(data, "label-synthetic", "--project", "cp", "--teacher", "oracle", "-n", "50")
    assert result.exit_code == 0, result.output
    assert "teacher:oracle labeled 50 pairs" in result.stdout
    assert cp.rows(data, "SELECT count(*) FROM label") == [(50,)]

    result = _rlhf(data, "train-reward", "--project", "cp", "--kind", "bt", "--json")

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["version"] == 1 and metrics["kind"] == "bt"
    for key in ("val_accuracy", "log_loss", "spearman_teacher", "n_labels", "fit_seconds"):
        assert isinstance(metrics[key], int | float) and not isinstance(metrics[key], bool), key
    assert metrics["n_labels"] == 50
    assert 0.5 < metrics["val_accuracy"] <= 1
    assert cp.rows(data, "SELECT version, kind, active FROM reward_model") == [(1, "bt", 1)]


def test_train_ensemble_with_members_and_epochs(data: Path) -> None:
    _label(data, 40)

    result = _rlhf(data, "train-reward", "--project", "cp", "--kind", "ensemble", "--members", "3", "--epochs", "5")

    assert result.exit_code == 0, result.output
    assert "version 1 (ensemble) is active" in result.stdout
    assert "40 labels" in result.stdout
    [(kind, config)] = cp.rows(data, "SELECT kind, config FROM reward_model WHERE active")
    assert kind == "ensemble" and json.loads(config) == {"members": 3, "epochs": 5}
    [(folder,)] = cp.rows(data, "SELECT path FROM reward_model")
    saved = json.loads((data / folder / "config.json").read_text())
    assert saved["kind"] == "ensemble"
    assert saved["config"]["members"] == 3 and saved["config"]["epochs"] == 5


def test_ensemble_options_are_refused_for_bt(data: Path) -> None:
    _label(data, 20)
    result = _rlhf(data, "train-reward", "--project", "cp", "--kind", "bt", "--members", "3")
    assert result.exit_code == 1
    assert "--members applies to --kind ensemble only, not to --kind bt" in result.output
    assert cp.rows(data, "SELECT count(*) FROM reward_model") == [(0,)]


def test_disagreement_queries_after_training(data: Path) -> None:
    _label(data, 40)
    before = _rlhf(data, "queries", "--project", "cp", "--method", "disagreement", "-n", "5", "--workers", "1")
    assert before.exit_code == 1
    assert "rlhf train-reward" in before.output
    assert _rlhf(data, "train-reward", "--project", "cp", "--members", "3", "--epochs", "5").exit_code == 0

    result = _rlhf(
        data, "queries", "--project", "cp", "--method", "disagreement", "-n", "5", "--workers", "1", "--seed", "0"
    )

    assert result.exit_code == 0, result.output
    assert "added 5 disagreement pairs, most disputed score" in result.stdout
    rows = cp.rows(data, "SELECT priority FROM query WHERE method = 'disagreement' ORDER BY id")
    assert len(rows) == 5 and all(p > 0 for (p,) in rows)
    assert cp.rows(data, "SELECT count(*) FROM query") == [(65,)]


def test_train_reward_without_enough_labels_exits_1(data: Path) -> None:
    result = _rlhf(data, "train-reward", "--project", "cp", "--kind", "bt")

    assert result.exit_code == 1
    assert (
        "Error: project 'cp' has 0 labels that prefer one side (left or right); at least 10 are needed" in result.output
    )
    assert "Label more pairs" in result.output
    assert cp.rows(data, "SELECT count(*) FROM reward_model") == [(0,)]
    assert not (data / "models").exists() or not any((data / "models").rglob("*"))


@pytest.mark.parametrize(
    "command",
    [
        ["train-reward", "--project", "nope"],
        ["label-synthetic", "--project", "nope", "-n", "5"],
        ["queries", "--project", "nope", "-n", "5"],
    ],
)
def test_unknown_project_exits_1_naming_the_known_ones(data: Path, command: list[str]) -> None:
    result = _rlhf(data, *command)

    assert result.exit_code == 1
    assert "no project named 'nope' (projects: cp)" in result.output
    assert "Traceback" not in result.output
