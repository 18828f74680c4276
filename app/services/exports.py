"""Models that leave the studio: a reward model version written as a folder other tools load.

- Text reward models (``text-lora``): ``merged`` (the default) is a plain Hugging Face model
  folder, LoRA merged into the backbone, with the score head, the tokenizer and a config of
  one label, which ``AutoModelForSequenceClassification.from_pretrained(folder)`` loads with
  ``transformers`` alone and TRL takes as a reward model; ``adapter`` is PEFT's adapter with
  the tokenizer (``AutoPeftModelForSequenceClassification``, on the base its config names).
- Trajectory reward models (``ensemble``, ``bt``): a ``torch.export`` program
  (``reward.pt2``: observations, action and next observations in, the normalised reward out,
  encoder included) that ``torch.export.load`` runs with ``torch`` alone, beside the studio's
  ``config.json`` + ``model.safetensors``.

Every export is written to a temporary folder, reloaded the way a user would load it and
compared with the studio's own scores, and only then moved to the folder asked for: a
failed export leaves nothing behind, and an existing non-empty folder is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Studio
from app.services.artifacts import export_folder, require_new_folder
from app.services.model_registry import load_model
from db import repo
from db.engine import session_scope
from db.errors import NotFoundError
from db.models import ProjectKind, RewardModelRecord
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.kinds import CNN_LORA, PERSONAL, TEXT_LORA

FORMS = ("merged", "adapter")
CARD_FILE, META_FILE = "README.md", "rlhf_studio.json"
#: Largest score difference allowed between the export, reloaded, and the studio.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ModelExport:
    """What an export wrote."""

    path: Path
    project: str
    version: int
    kind: str
    form: str
    max_abs_diff: float
    """Largest difference between the reloaded export's scores and the studio's, on the check inputs."""
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "files": list(self.files)}


def export_model(
    studio: Studio, project_name: str, out: Path, *, version: int | None = None, form: str = "merged"
) -> ModelExport:
    """Write reward model ``version`` (default: the active one) of a project to the folder ``out``."""
    if form not in FORMS:
        raise InvalidInputError(f"unknown export form {form!r}; use one of: {', '.join(FORMS)}")
    out = require_new_folder(out)
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        record = _record(session, project, version)
        texts = repo.text_judgements(session, project.id)[:32] if project.kind is ProjectKind.text else []
    if record.kind == PERSONAL:
        raise InvalidInputError(
            f"reward model v{record.version} of {project_name!r} is a personal one (a reward per annotator); export a "
            f"pooled model: rlhf train-reward --project {project_name} --kind text-lora (or ensemble), then export it"
        )
    if record.kind == CNN_LORA:
        raise InvalidInputError(
            f"reward model v{record.version} is a cnn-lora model, which has no plain export yet; train an ensemble "
            f"(rlhf train-reward --project {project_name} --kind ensemble) and export that"
        )
    if record.kind != TEXT_LORA and form == "adapter":
        raise InvalidInputError(f"--form adapter is for text reward models; v{record.version} is a {record.kind} model")
    with export_folder(out) as staging:
        if record.kind == TEXT_LORA:
            diff = _export_text(studio, record, staging, form, texts)
        else:
            diff = _export_trajectory(studio, project, record, staging)
        meta = {
            "project": project_name,
            "version": record.version,
            "kind": record.kind,
            "form": form if record.kind == TEXT_LORA else "program",
            "labels": record.label_count,
            "metrics": {k: v for k, v in record.metrics.items() if isinstance(v, int | float | str | None)},
            "max_abs_diff": diff,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
    return ModelExport(
        out, project_name, record.version, record.kind, meta["form"], diff, tuple(sorted(p.name for p in out.iterdir()))
    )


def _record(session: Any, project: Any, version: int | None) -> RewardModelRecord:
    if version is None:
        record = repo.active_reward_model(session, project.id)
        if record is None:
            raise InvalidInputError(
                f"project {project.name!r} has no reward model to export: train one first (rlhf train-reward "
                f"--project {project.name})"
            )
        return record
    try:
        return repo.reward_model_by_version(session, project.id, version)
    except NotFoundError:
        known = ", ".join(str(r.version) for r in repo.reward_models(session, project.id)) or "none"
        raise InvalidInputError(f"project {project.name!r} has no reward model v{version}; versions: {known}") from None


# --- text -----------------------------------------------------------------------------------


_CHECK_MERGED = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder = sys.argv[1]
prompts, responses = json.loads(sys.stdin.read())  # on stdin: long texts would overflow the command line
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
if tokenizer.chat_template:  # a chat model: the conversation in its template
    chats = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses)]
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    batch = tokenizer(texts, truncation=True, padding=True, add_special_tokens=False, return_tensors="pt")
else:
    batch = tokenizer(prompts, responses, truncation=True, padding=True, return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**batch).logits[:, 0].tolist()))
"""


def _export_text(studio: Studio, record: RewardModelRecord, folder: Path, form: str, texts: list[Any]) -> float:
    model = load_model(studio, record)
    prompts = [t.prompt or "" for t in texts for _ in (0, 1)] or ["Is this a good answer?"]
    responses = [r for t in texts for r in (t.text_a, t.text_b)] or ["Yes, it is."]
    want = model.score(prompts, responses)
    if form == "adapter":
        model.export_adapter(folder)
        from rlhf_core.rewards.text import TextRewardModel

        got = TextRewardModel.load(folder).score(prompts, responses)
        usage = _ADAPTER_CARD
    else:
        model.export_merged(folder)
        # Reloaded in a fresh interpreter that imports transformers and torch only, as a user would.
        done = subprocess.run(
            [sys.executable, "-c", _CHECK_MERGED, str(folder)],
            input=json.dumps([prompts, responses]),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise InvalidInputError(f"the exported model does not reload with transformers: {done.stderr[-800:]}")
        got = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
        usage = _MERGED_CARD
    diff = float(np.max(np.abs(got - want)))
    if not diff <= TOLERANCE:
        raise InvalidInputError(f"the exported model scores {diff:.2e} away from the studio's; nothing was written")
    cfg = model.config
    (folder / CARD_FILE).write_text(
        usage.format(
            backbone=cfg.backbone,
            rank=cfg.rank,
            alpha=cfg.alpha,
            targets=", ".join(cfg.target_modules) if cfg.target_modules else "PEFT's default layers",
            max_length=cfg.max_length,
            labels=record.label_count,
            version=record.version,
            accuracy=record.metrics.get("val_accuracy"),
        )
    )
    return diff


_MERGED_CARD = """# Text reward model v{version} (rlhf-studio)

A reward model r(prompt, response): {backbone} with LoRA (rank {rank}, alpha {alpha}, on {targets})
merged into its weights, and a one-output score head, trained on {labels} preference labels
(held-out accuracy {accuracy}). Loads with `transformers` alone:

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
model = AutoModelForSequenceClassification.from_pretrained("THIS_FOLDER").eval()
batch = tokenizer(["How was the film?"], ["I loved every minute."], truncation=True, padding=True,
                  return_tensors="pt")
with torch.no_grad():
    rewards = model(**batch).logits[:, 0]
```

Prompt and response go in as a sentence pair; the tokenizer keeps {max_length} tokens (the
longer text is cut first) and returns no token type ids, as the studio scored. A base model
with a chat template (a chat LM) reads the conversation instead, as the studio did:
`tokenizer(tokenizer.apply_chat_template([{{"role": "user", "content": prompt}}, {{"role":
"assistant", "content": response}}], tokenize=False), add_special_tokens=False, truncation=True)`;
a causal LM's reward is read at the last non-padding token. In TRL, pass the folder as the
reward model (`AutoModelForSequenceClassification`, `num_labels=1`).
"""

_ADAPTER_CARD = """# Text reward model v{version} (rlhf-studio), PEFT adapter

LoRA (rank {rank}, alpha {alpha}, on {targets}) and the score head of a reward model r(prompt,
response) on {backbone}, trained on {labels} preference labels (held-out accuracy {accuracy}).
`adapter_config.json` names the base model; with it at hand:

```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

base = AutoModelForSequenceClassification.from_pretrained("BASE_MODEL_OR_FOLDER", num_labels=1)
model = PeftModel.from_pretrained(base, "THIS_FOLDER").eval()
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
```

(or `AutoPeftModelForSequenceClassification.from_pretrained("THIS_FOLDER", num_labels=1)`
where the base loads from the Hub). The tokenizer keeps {max_length} tokens and returns no
token type ids, as the studio scored.
"""


# --- trajectories -----------------------------------------------------------------------------


def _export_trajectory(studio: Studio, project: Any, record: RewardModelRecord, folder: Path) -> float:
    from app.services.policies import learned_reward
    from rlhf_core.rewards.export import PROGRAM_FILE, check_program, export_program

    reward = learned_reward(studio, project.name, str(record.version))
    folder.mkdir(parents=True, exist_ok=True)
    reward.model.save(folder)
    inputs = export_program(reward, folder / PROGRAM_FILE)
    diff = check_program(reward, folder / PROGRAM_FILE, TOLERANCE)
    (folder / CARD_FILE).write_text(
        _PROGRAM_CARD.format(
            version=record.version,
            kind=record.kind,
            env=project.env_id,
            labels=record.label_count,
            obs=inputs["obs"],
            action=inputs["action"],
            mean=reward.mean,
            std=reward.std,
        )
    )
    return diff


_PROGRAM_CARD = """# Trajectory reward model v{version} (rlhf-studio, {kind}) for {env}

Learned from {labels} preference labels over clips. `reward.pt2` is a `torch.export` program of
the whole reward, feature extraction included; it runs with `torch` alone:

```python
import torch

reward = torch.export.load("THIS_FOLDER/reward.pt2").module()
r = reward(obs, action, next_obs)   # (N,) float32, one reward per transition
```

- `obs`, `next_obs`: {obs}
- `action`: {action}
- output: the reward as the studio's policies were trained on it: the model's raw reward minus
  {mean:.6g}, divided by {std:.6g} (the spread of its rewards on the labeled clips)

`config.json` + `model.safetensors` hold the studio's own description and weights
(`rlhf_core.rewards.models.load_reward_model(folder)` reloads them).
"""


# --- policies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyExport:
    """What a policy export wrote."""

    path: Path
    project: str
    version: int
    algo: str
    max_abs_diff: float
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "files": list(self.files)}


def export_policy(studio: Studio, project_name: str, out: Path, *, version: int | None = None) -> PolicyExport:
    """Write policy checkpoint ``version`` (default: the newest) as a ``torch.export`` program of
    observations to deterministic actions (``policy.pt2``), with the checkpoint's own files."""
    from app.services.policies import load_agent
    from rlhf_core.envs.registry import env_info
    from rlhf_core.policy.export import PROGRAM_FILE, check_policy
    from rlhf_core.policy.export import export_policy as write_program

    out = require_new_folder(out)
    record, agent = load_agent(studio, project_name, version)
    with session_scope(studio.engine) as session:
        env_id = repo.get_project(session, project_name).env_id or ""
    info = env_info(env_id)
    encoder = record.encoder if info.pixels else None
    algo = (record.config or {}).get("algo", "dqn")
    with export_folder(out) as staging:
        shutil.copytree(studio.path(record.path), staging, dirs_exist_ok=True)
        write_program(agent, encoder, info.obs_shape, staging / PROGRAM_FILE)
        diff = check_policy(agent, agent.act, info.obs_shape, info.pixels, staging / PROGRAM_FILE)
        if info.continuous:
            action = f"float32 (N, {info.n_actions}) in [{list(info.action_low)}, {list(info.action_high)}]"
        else:
            action = f"int64 (N,), one of {info.n_actions} actions"
        obs = f"{'uint8' if info.pixels else 'float32'} (N, {', '.join(map(str, info.obs_shape))})"
        (staging / CARD_FILE).write_text(
            _POLICY_CARD.format(version=record.version, algo=algo.upper(), env=env_id, obs=obs, action=action)
        )
        meta = {
            "project": project_name,
            "version": record.version,
            "algo": algo,
            "env_id": env_id,
            "max_abs_diff": diff,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
    return PolicyExport(out, project_name, record.version, algo, diff, tuple(sorted(p.name for p in out.iterdir())))


_POLICY_CARD = """# Policy v{version} (rlhf-studio, {algo}) for {env}

`policy.pt2` is a `torch.export` program of the policy's deterministic action, feature
extraction and action scaling included; it runs with `torch` alone:

```python
import gymnasium as gym
import torch

policy = torch.export.load("THIS_FOLDER/policy.pt2").module()
env = gym.make("{env}")
obs, _ = env.reset(seed=0)
action = policy(torch.as_tensor(obs)[None])[0].numpy()
```

- input: observations, {obs}
- output: actions, {action}

The checkpoint's own files sit beside it (the studio's DQN: `q.safetensors` + `policy.json`;
stable-baselines3: `model.zip`, which `SAC.load` / `PPO.load` ... read).
"""
