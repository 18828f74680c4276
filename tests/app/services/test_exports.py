"""`rlhf export-model` and `rlhf export-policy`: folders that plain libraries load.

Each export is reloaded here the way a user outside the studio would: in a fresh interpreter
(``python -I``: the test's folders are not on its path) that imports ``transformers`` (text)
or ``torch`` (trajectories) and nothing of this project, and its scores or actions are
compared with the studio's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _cartpole as cp
import _text_project as tp
import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services.policies import learned_reward, load_agent, policy_behaviour, train_policy
from app.services.rewards import train_reward_model
from app.services.text_rewards import score_responses

OUTSIDERS = ("rlhf_core", "app", "db", "peft", "stable_baselines3")


def _rlhf(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args])


def _outside(code: str, *args: str) -> list:
    """Run ``code`` in a fresh isolated interpreter; its last stdout line as JSON. The code's
    last act checks that nothing of the studio (or PEFT, SB3) was imported."""
    check = (
        f"\nimport sys\nassert not [m for m in sys.modules if m.split('.')[0] in {OUTSIDERS!r}], sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code + check, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


LOAD_TEXT = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, prompts, responses = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
batch = tokenizer(prompts, responses, truncation=True, padding=True, return_tensors="pt")
assert "token_type_ids" not in batch and model.config.num_labels == 1
with torch.no_grad():
    print(json.dumps(model(**batch).logits[:, 0].tolist()))
"""


@pytest.mark.slow
def test_a_text_reward_model_exports_merged_and_transformers_alone_reproduces_its_scores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    studio = tp.build(data)
    train_reward_model(studio, tp.PROJECT, config={"epochs": 2, "max_length": 32, "rank": 4})
    prompts = [tp.PROMPT] * 4
    # the last response is longer than max_length (32 tokens): the export must truncate as the studio does
    responses = ["Lovely staff and superb food.", "Rude staff, cold food.", "Fine.", "The room was clean. " * 20]
    ranked = dict(score_responses(studio, tp.PROJECT, tp.PROMPT, responses).ranked)
    want = [ranked[r] for r in responses]

    result = _rlhf(data, "export-model", "--project", tp.PROJECT, "-o", str(tmp_path / "merged"), "--json")

    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["kind"] == "text-lora" and meta["form"] == "merged" and meta["max_abs_diff"] <= 1e-4
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(meta["files"])
    assert not any(name.startswith("adapter") for name in meta["files"])  # LoRA is merged in
    got = _outside(LOAD_TEXT, str(tmp_path / "merged"), json.dumps(prompts), json.dumps(responses))
    assert np.max(np.abs(np.array(got) - np.array(want))) <= 1e-4
    assert len(set(np.round(got, 6))) == 4  # four different scores: the comparison is not vacuous

    adapter = _rlhf(data, "export-model", "--project", tp.PROJECT, "--form", "adapter", "-o", str(tmp_path / "ad"))
    assert adapter.exit_code == 0, adapter.output
    from peft import PeftModel

    from rlhf_core.backbones.text import load_sequence_classifier, load_tokenizer
    from rlhf_core.rewards.text import pad_batch

    tokenizer = load_tokenizer("minilm")
    base = load_sequence_classifier("minilm", 1, seed=123, pad_token_id=tokenizer.pad_token_id)
    model = PeftModel.from_pretrained(base, str(tmp_path / "ad")).eval()  # the head comes from the adapter
    from transformers import AutoTokenizer

    exported = AutoTokenizer.from_pretrained(str(tmp_path / "ad"))
    ids = exported(prompts, responses, truncation=True)["input_ids"]
    input_ids, mask = pad_batch(ids, tokenizer.pad_token_id)
    import torch

    with torch.no_grad():
        scores = model(input_ids=input_ids, attention_mask=mask).logits[:, 0].numpy()
    assert np.max(np.abs(scores - np.array(want))) <= 1e-4


LOAD_REWARD = """
import json, sys, torch
reward = torch.export.load(sys.argv[1]).module()
obs, action, nxt = (torch.tensor(json.loads(a)) for a in sys.argv[2:5])
print(json.dumps(reward(obs.float(), action, nxt.float()).tolist()))
"""

RUN_POLICY = """
import json, sys, torch
import gymnasium as gym
policy = torch.export.load(sys.argv[1]).module()
env, total = gym.make(sys.argv[2]), 0.0
for episode in range(3):
    obs, _ = env.reset(seed=10_000 + episode)
    done = False
    while not done:
        action = policy(torch.as_tensor(obs)[None])[0].numpy()
        obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
        total += reward
        done = terminated or truncated
print(json.dumps([total / 3]))
"""


def test_a_trajectory_reward_model_and_policy_export_as_torch_programs(tmp_path: Path) -> None:
    data = cp.build(tmp_path / "data", n_segments=16, n_queries=40, oracle_labels=30)
    studio = Studio(Settings.from_env(data))
    train_reward_model(studio, cp.PROJECT)

    result = _rlhf(data, "export-model", "--project", cp.PROJECT, "-o", str(tmp_path / "reward"), "--json")

    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["form"] == "program" and {"reward.pt2", "model.safetensors", "README.md"} <= set(meta["files"])
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(7, 4)).astype(np.float32)
    nxt = obs + rng.normal(scale=0.1, size=(7, 4)).astype(np.float32)
    action = rng.integers(0, 2, size=7)
    want = learned_reward(studio, cp.PROJECT)(obs, action, nxt)
    got = _outside(
        LOAD_REWARD, str(tmp_path / "reward" / "reward.pt2"), *(json.dumps(a.tolist()) for a in (obs, action, nxt))
    )
    assert np.max(np.abs(np.array(got) - want)) <= 1e-5
    assert np.std(got) > 0  # transitions differ, so do their rewards

    policy = train_policy(studio, cp.PROJECT, "true", steps=4000, seed=0)
    result = _rlhf(data, "export-policy", "--project", cp.PROJECT, "-o", str(tmp_path / "policy"), "--json")

    assert result.exit_code == 0, result.output
    assert {"policy.pt2", "q.safetensors", "README.md"} <= set(json.loads(result.stdout)["files"])
    [mean_return] = _outside(RUN_POLICY, str(tmp_path / "policy" / "policy.pt2"), cp.ENV_ID)
    # the program's greedy actions are the checkpoint's: its return is the one the studio measured
    assert mean_return == pytest.approx(policy.metrics["true_return_mean"], rel=0.35)
    _, agent = load_agent(studio, cp.PROJECT)
    act = policy_behaviour(agent, "x").act
    assert [int(act(None, o, rng)) for o in obs] == _outside(
        "import json, sys, torch\np = torch.export.load(sys.argv[1]).module()\n"
        "print(json.dumps(p(torch.tensor(json.loads(sys.argv[2]))).tolist()))",
        str(tmp_path / "policy" / "policy.pt2"),
        json.dumps(obs.tolist()),
    )


def test_exports_refuse_a_used_folder_and_a_project_without_a_model(tmp_path: Path) -> None:
    data = cp.build(tmp_path / "data", n_segments=4, n_queries=4)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")

    no_model = _rlhf(data, "export-model", "--project", cp.PROJECT, "-o", str(tmp_path / "new"))
    assert no_model.exit_code != 0 and "no reward model to export: train one first" in no_model.output
    busy = _rlhf(data, "export-model", "--project", cp.PROJECT, "-o", str(used))
    assert busy.exit_code != 0 and "is not an empty folder" in busy.output
    assert (used / "keep.txt").read_text() == "mine" and sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))
    bad_version = _rlhf(data, "export-model", "--project", cp.PROJECT, "--version", "3", "-o", str(tmp_path / "n"))
    assert bad_version.exit_code != 0 and "has no reward model v3; versions: none" in bad_version.output
