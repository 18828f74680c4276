"""Benchmark: reward learning from scripted oracle labels, ours against imitation's, side by side.

Run: ``python scripts/bench/reward_learning.py [--labels 100 300 1000] [--envs CartPole-v1 ...]``

For each environment: a pool of training segments and a disjoint pool of held-out segments
(from other episodes) is collected from the demo behaviours; the B-Pref oracle labels random
pairs (the true reward, or the registered oracle reward for MiniGrid). For each number of
labels, every model is fitted on the same labels and measured on held-out pairs: accuracy
(ties excluded), Spearman correlation of predicted with the teacher's return on held-out
segments, and fit time. The baseline is imitation 1.0.1 (``BasicRewardNet`` + RunningNorm,
``PreferenceModel``, ``CrossEntropyRewardLoss``, ``BasicRewardTrainer``), which needs
gymnasium 0.29: the script builds a separate venv for it in ``.bench/imitation`` (torch
pinned to the same CPU build). imitation sees the same observations plus the same
"episode still running" flag (appended to vector observations; for pixels it gets the
flattened image). Also checks the speed targets: linear BT on 10,000 pairs, and a
5-member ensemble on 1,000 pairs of 50-step segments.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlhf_core.envs.behaviours import behaviour_mix
from rlhf_core.envs.episodes import choose_segment_starts, rollout
from rlhf_core.envs.registry import DEFAULT_ENV_ID, env_info
from rlhf_core.rewards.metrics import preference_accuracy, spearman
from rlhf_core.rewards.models import make_reward_model
from rlhf_core.rewards.preferences import FeatureSpec, Preferences, Segments
from rlhf_core.rewards.queries import random_pairs
from rlhf_core.rewards.teachers import judge, return_scale, teacher, teacher_reward_fn

ROOT = Path(__file__).resolve().parents[2]
IMITATION_VENV = ROOT / ".bench" / "imitation"
IMITATION_EPOCHS = 10


def collect(env_id: str, n_segments: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """Segments (obs L+1, actions, valid) and the teacher's per-step rewards."""
    rng = np.random.default_rng(seed)
    mix = behaviour_mix(env_id)
    reward_fn = teacher_reward_fn(env_id)
    obs, acts, valid, rewards = [], [], [], []
    episode = 0
    while len(obs) < n_segments:
        traj = rollout(
            env_id, mix[episode % len(mix)], seed=seed + episode, rng=rng, render=False, max_steps=3 * length
        )
        episode += 1
        for s in choose_segment_starts(traj.length, length, 2, rng, terminated=traj.terminated):
            idx = np.minimum(np.arange(s, s + length + 1), traj.length)
            steps = np.arange(s, s + length)
            obs.append(traj.obs[idx])
            acts.append(np.where(steps < traj.length, traj.actions[np.minimum(steps, traj.length - 1)], 0))
            valid.append(steps < traj.length)
            rewards.append(reward_fn(traj, s, length))
    return {
        "obs": np.stack(obs[:n_segments]),
        "acts": np.stack(acts[:n_segments]),
        "valid": np.stack(valid[:n_segments]),
        "rewards": np.stack(rewards[:n_segments]),
    }


def labeled_pairs(pool: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> Preferences:
    """``n`` random pairs of the pool labeled by the oracle (skips dropped)."""
    pairs = random_pairs(len(pool["obs"]), n, rng)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    scale = return_scale(pool["rewards"].sum(1))
    pref = judge(teacher("oracle"), pool["rewards"][a], pool["rewards"][b], scale=scale, rng=rng)
    keep = ~np.isnan(pref)
    return Preferences(Segments(pool["obs"], pool["valid"]), a[keep], b[keep], pref[keep])


def ensure_imitation_venv() -> Path | None:
    python = IMITATION_VENV / "bin" / "python"
    if python.exists():
        return python
    print("building imitation's venv in .bench/imitation (one time, about 2 minutes)...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(IMITATION_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "imitation==1.0.1", "torch==2.13.0"], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"imitation could not be installed ({exc}); its column is left empty")
        return None
    return python


def run_imitation(
    python: Path, train_pool: dict, val_pool: dict, train: Preferences, n_actions: int, pixels: bool
) -> tuple[np.ndarray, float] | None:
    """Fit imitation on the train labels; predicted returns of the held-out segments."""

    def with_flag(pool: dict) -> np.ndarray:
        obs = pool["obs"].reshape(pool["obs"].shape[0], pool["obs"].shape[1], -1).astype(np.float32)
        if pixels:
            return obs
        alive = np.concatenate([pool["valid"], pool["valid"][:, -1:]], axis=1)[..., None].astype(np.float32)
        return np.concatenate([obs, alive], axis=-1)

    both = np.concatenate([with_flag(train_pool), with_flag(val_pool)])
    acts = np.concatenate([train_pool["acts"], val_pool["acts"]])
    n_train = len(train_pool["obs"])
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src,
            obs=both,
            acts=acts,
            n_actions=n_actions,
            epochs=IMITATION_EPOCHS,
            train_a=train.a,
            train_b=train.b,
            train_pref=train.pref,
            eval=np.arange(n_train, len(both)),
        )
        proc = subprocess.run(
            [str(python), str(ROOT / "scripts" / "bench" / "_imitation_reward.py"), str(src), str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"imitation failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
            return None
        result = np.load(out)
        return result["returns"], float(result["fit_seconds"])


def evaluate_returns(returns: np.ndarray, val: Preferences, teacher_returns: np.ndarray) -> tuple[float, float]:
    p = 1 / (1 + np.exp(-np.clip(returns[val.a] - returns[val.b], -60, 60)))
    return preference_accuracy(p, val.pref), spearman(returns, teacher_returns)


def speed_targets() -> None:
    """Linear BT on 10,000 pairs (< 1 s); 5-member ensemble on 1,000 pairs of 50 steps (< 30 s)."""
    pool = collect("CartPole-v1", 600, 50, seed=10_000)
    rng = np.random.default_rng(0)
    spec = FeatureSpec((4,), False)
    big = labeled_pairs(pool, 10_000, rng)
    model = make_reward_model("bt", spec)
    start = time.perf_counter()
    model.fit(big, rng=rng)
    print(f"speed: linear BT on {len(big)} pairs: {time.perf_counter() - start:.2f} s (target < 1 s)")
    thousand = labeled_pairs(pool, 1000, rng)
    model = make_reward_model("ensemble", spec, members=5)
    start = time.perf_counter()
    model.fit(thousand, rng=rng)
    print(
        f"speed: 5-member ensemble on {len(thousand)} pairs of 50-step segments: "
        f"{time.perf_counter() - start:.2f} s (target < 30 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", DEFAULT_ENV_ID])
    parser.add_argument("--no-imitation", action="store_true", help="skip the baseline")
    args = parser.parse_args()
    torch.set_num_threads(2)
    python = None if args.no_imitation else ensure_imitation_venv()
    print("| env | labels | model | held-out accuracy | Spearman (teacher return) | fit s |")
    print("|---|---|---|---|---|---|")
    for env_id in args.envs:
        info = env_info(env_id)
        length = info.segment_length()
        train_pool = collect(env_id, 600, length, seed=0)
        val_pool = collect(env_id, 300, length, seed=100_000)
        val_rng = np.random.default_rng(1)
        val = labeled_pairs(val_pool, 1000, val_rng)
        val_returns = val_pool["rewards"].sum(1)
        val_segments = Segments(val_pool["obs"], val_pool["valid"])
        spec = FeatureSpec.for_segments(val_segments)
        for n in args.labels:
            train = labeled_pairs(train_pool, n, np.random.default_rng(n))
            for kind in ("bt", "ensemble"):
                model = make_reward_model(kind, spec)
                start = time.perf_counter()
                model.fit(train, rng=np.random.default_rng(0))
                fit = time.perf_counter() - start
                acc, rho = evaluate_returns(model.segment_returns(val_segments), val, val_returns)
                print(f"| {env_id} | {len(train)} | ours: {kind} | {acc:.3f} | {rho:.3f} | {fit:.2f} |", flush=True)
            if python is not None:
                got = run_imitation(python, train_pool, val_pool, train, info.n_actions, info.pixels)
                if got is not None:
                    acc, rho = evaluate_returns(got[0], val, val_returns)
                    print(
                        f"| {env_id} | {len(train)} | imitation ({IMITATION_EPOCHS} epochs) | {acc:.3f} | "
                        f"{rho:.3f} | {got[1]:.2f} |",
                        flush=True,
                    )
    speed_targets()


if __name__ == "__main__":
    main()
