"""Text reward training data-parallel under Hugging Face Accelerate, two CPU processes over gloo:
the processes end with identical parameters and the held-out accuracy of one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _cartpole as cp
import _text_project as tp
import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "_ddp_train.py"
BIN = Path(sys.executable).parent
LAUNCH = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
LAUNCH += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path (gloo) even on a machine with GPUs
    return env


def test_two_processes_end_identical_with_the_accuracy_of_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    single = subprocess.run([sys.executable, str(SCRIPT), str(one)], env=_env(), capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    launched = subprocess.run([*LAUNCH, str(SCRIPT), str(two)], env=_env(), capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr[-3000:]

    alone = torch.load(one / "rank-0.pt")
    r0, r1 = torch.load(two / "rank-0.pt"), torch.load(two / "rank-1.pt")
    assert r0["metrics"]["processes"] == r1["metrics"]["processes"] == 2 and alone["metrics"]["processes"] == 1
    assert r0["metrics"]["steps"] == alone["metrics"]["steps"]  # the same global batches, shared out
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name  # DDP kept the copies identical
        torch.testing.assert_close(value, alone["params"][name], atol=5e-3, rtol=0)  # sums in another order
    assert r0["accuracy"] == r1["accuracy"] == alone["accuracy"] >= 0.8


def test_rlhf_train_reward_under_accelerate_registers_one_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tp.build(data)
    rlhf = shutil.which("rlhf", path=str(BIN))
    assert rlhf is not None
    args = [
        "--data-dir",
        str(data),
        "train-reward",
        "--project",
        tp.PROJECT,
        "--epochs",
        "2",
        "--max-length",
        "32",
        "--json",
    ]
    done = subprocess.run([*LAUNCH, rlhf, *args], env=_env(), capture_output=True, text=True)

    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout[done.stdout.index("{") :])  # printed once, by the main process
    assert metrics["version"] == 1 and metrics["kind"] == "text-lora"
    assert cp.rows(data, "SELECT version, active FROM reward_model") == [(1, 1)]
