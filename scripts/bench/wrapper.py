"""Benchmark: environment steps per second under our learned-reward VecEnv wrapper and under
imitation's ``RewardVecEnvWrapper``, on the same reward model, side by side.

Run: ``python scripts/bench/wrapper.py [--env Pendulum-v1] [--n-envs 1 8] [--steps 2000] [--repeats 3]``

A Pendulum demo project is labeled by the oracle (300 pairs) and a reward model trained with
the defaults (an ensemble of transition rewards); then, in imitation's venv (imitation 1.0.1
with gymnasium 0.29 and stable-baselines3 2.2, built once in ``.bench/imitation`` like
``reward_learning.py``'s), one process steps a ``DummyVecEnv`` of N environments with random
actions: bare, under ours, under imitation's, the same model computing the rewards for both
(one batched call per step of the N environments). Prints the steps per second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from reward_learning import ensure_imitation_venv

    from app.config import Settings, Studio
    from app.services.demo import create_demo_project
    from app.services.policies import learned_reward
    from app.services.rewards import train_reward_model
    from app.services.synthetic import label_synthetic
    from db import repo
    from db.engine import session_scope

    python = ensure_imitation_venv()
    if python is not None:  # our reward models save with safetensors, which imitation's venv lacks
        subprocess.run([str(python), "-m", "pip", "install", "-q", "safetensors"], check=False)
    with tempfile.TemporaryDirectory() as tmp:
        studio = Studio(Settings.from_env(Path(tmp) / "data"))
        create_demo_project(studio, "w", args.env, n_segments=100, n_queries=300)
        label_synthetic(studio, "w", "oracle", 300)
        train_reward_model(studio, "w")
        reward = learned_reward(studio, "w")
        with session_scope(studio.engine) as session:
            record = repo.active_reward_model(session, repo.get_project(session, "w").id)
            folder = studio.path(record.path)
        print(f"reward model: {record.kind}, normalised mean {reward.mean:.3f}, std {reward.std:.3f}")
        print(
            "| environments | no wrapper | ours (LearnedRewardVecEnv) | imitation (RewardVecEnvWrapper) "
            "| ours / imitation |"
        )
        print("|---|---|---|---|---|")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for n in args.n_envs:
            cmd = [str(folder), str(reward.mean), str(reward.std), args.env, str(n), str(args.steps), str(args.repeats)]
            child = str(python) if python is not None else sys.executable
            out = subprocess.run(
                [child, str(ROOT / "scripts" / "bench" / "_wrapper_speed.py"), *cmd],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ratio = f"{r['ours'] / r['imitation']:.2f}x" if r["imitation"] else "n/a"
            theirs = f"{r['imitation']:.0f}" if r["imitation"] else "n/a"
            print(f"| {n} | {r['none']:.0f} | {r['ours']:.0f} | {theirs} | {ratio} |", flush=True)
        studio.engine.dispose()


if __name__ == "__main__":
    main()
