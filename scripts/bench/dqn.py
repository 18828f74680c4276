"""Benchmark: our DQN against stable-baselines3's DQN, same environment and hyperparameters.

Run: ``pip install -c constraints.txt -e ".[bench]"`` once (stable-baselines3), then
``python scripts/bench/dqn.py [--env CartPole-v1 MiniGrid-Empty-Random-6x6-v0] [--steps N]``

Each run is a separate process (so thread settings and caches do not leak between them):

- CartPole-v1 (vectors): both with rl-baselines3-zoo's tuned DQN hyperparameters (our
  ``PRESETS["CartPole-v1"]``: lr 2.3e-3, batch 64, buffer 100k, train_freq 256,
  gradient_steps 128, target update 10, exploration 0.16 -> 0.04, MLP 256x256), vanilla
  DQN on both sides; ours compiles its gradient steps, 8 per call (``torch.compile``,
  cached on disk: the bench reports warm runs; the first compile on a machine takes ~20 s).
- MiniGrid-Empty-Random-6x6-v0 (48x48 RGB pixels): SB3's ``CnnPolicy`` (NatureCNN trained
  end to end) against our Q-head on frozen, cached features, both with our MiniGrid preset
  (train_freq 4, one gradient step, head 256). Ours runs twice: on EfficientNet-Lite0
  (ImageNet, 1280 features) and on the source-task CNN (trained once on the 8x8 room, then
  frozen; 512 features), made in ``.bench/`` on first use.

Every run is repeated for each seed (``--seeds``, default 0 1 2), seed by seed side by side
(the machine's load changes between runs): SB3 with one thread and with torch's default
threads, then ours, whose updates use ``DQNAgent.update_threads()`` (one for plain updates,
two where compiled, at most torch's count; one for the rounds where its threads do not get
their cores, ``rlhf_core.threads``), so on a 2-core machine SB3's default is the
same-resources comparison. ``--neighbour`` runs each of them beside another process that
computes on two threads throughout (a busy machine: a second training). Reported:
environment steps per second over the whole ``learn`` call, each seed's ratio against both
SB3 runs, and the mean true return of 20 greedy episodes after training (same evaluation
seeds for both; SB3's from its one-thread run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EVAL_EPISODES = 20
EVAL_SEED = 10_000


def _evaluate(act: Any, env_id: str) -> float:
    from rlhf_core.envs.registry import make_env

    env = make_env(env_id, render=False)
    returns = []
    for k in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(act(obs)))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_ours(
    env_id: str, steps: int, seed: int, encoder: str = "efficientnet-lite0", bf16: bool = False
) -> dict[str, Any]:
    from rlhf_core.backbones.registry import get_encoder
    from rlhf_core.envs.registry import env_info, make_env
    from rlhf_core.policy.dqn import DQNAgent, preset_for, vector_features

    info = env_info(env_id)
    cfg = preset_for(env_id).replace(total_steps=steps, seed=seed, eval_every=0, bf16=bf16)
    if info.pixels:
        enc = get_encoder(encoder)
        featurize, dim = enc.encode, enc.features_dim
    else:
        featurize, dim = vector_features, int(np.prod(info.obs_shape))
    agent = DQNAgent(cfg, dim, info.n_actions, featurize)
    start = time.perf_counter()
    agent.learn(make_env(env_id, render=False))
    seconds = time.perf_counter() - start
    final = _evaluate(lambda obs: agent.greedy(featurize(obs[None]))[0], env_id)
    precision = "bf16 hidden layers" if agent.q.hidden_dtype is not None else "fp32"
    return {
        "sps": steps / seconds,
        "seconds": seconds,
        "final_return": final,
        "precision": precision,
        # the rounds' thread counts (1 where compiling failed; 1 beside another process: rlhf_core.threads)
        "update_threads": agent.last_threads.summary() if agent.last_threads else str(agent.update_threads()),
    }


def run_sb3(env_id: str, steps: int, seed: int, threads: int | None) -> dict[str, Any]:
    import torch
    from stable_baselines3 import DQN

    from rlhf_core.envs.registry import env_info, make_env
    from rlhf_core.policy.dqn import preset_for
    from rlhf_core.policy.sb3 import quiet_logger

    if threads:
        torch.set_num_threads(threads)
    info = env_info(env_id)
    cfg = preset_for(env_id)
    model = DQN(
        "CnnPolicy" if info.pixels else "MlpPolicy",
        make_env(env_id, render=False),
        learning_rate=cfg.learning_rate,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        gamma=cfg.gamma,
        train_freq=cfg.train_freq,
        gradient_steps=cfg.gradient_steps,
        target_update_interval=cfg.target_update_interval,
        exploration_fraction=cfg.exploration_fraction,
        exploration_initial_eps=cfg.epsilon_start,
        exploration_final_eps=cfg.epsilon_end,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={"net_arch": list(cfg.hidden)},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.set_logger(quiet_logger())
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    final = _evaluate(lambda obs: model.predict(obs, deterministic=True)[0], env_id)
    return {"sps": steps / seconds, "seconds": seconds, "final_return": final, "threads": torch.get_num_threads()}


def _spawn(
    which: str,
    env_id: str,
    steps: int,
    seed: int,
    threads: int = 0,
    encoder: str = "efficientnet-lite0",
    bf16: bool = False,
    neighbour: bool = False,
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", which, "--env", env_id]
    cmd += ["--steps", str(steps), "--seed", str(seed), "--threads", str(threads), "--encoder", encoder]
    cmd += ["--bf16"] if bf16 else []
    busy = subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) if neighbour else None
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


#: ``--neighbour``: another process computing on the same cores throughout each run, as a second
#: training does (the app runs up to RLHF_MAX_JOBS jobs at once): 64x256 by 256x256 products on
#: two threads, a DQN update's shape, without end.
NEIGHBOUR = (
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "a, b = torch.randn(64, 256), torch.randn(256, 256)\n"
    "while True:\n"
    "    a = torch.tanh(a @ b)\n"
)


def _source_encoder() -> Path:
    """A source-task encoder trained on the 8x8 room (as ``rlhf train-encoder`` does), made once."""
    from rlhf_core.backbones.source import SourceTaskConfig, train_source_encoder

    out = Path(__file__).resolve().parents[2] / ".bench" / "minigrid8.safetensors"
    if not out.is_file():
        start = time.perf_counter()
        result = train_source_encoder(SourceTaskConfig(env_id="MiniGrid-Empty-8x8-v0"), out)
        print(f"source-task encoder trained in {time.perf_counter() - start:.1f} s: {result}", flush=True)
    return out


DEFAULT_STEPS = {"CartPole-v1": 50_000, "MiniGrid-Empty-Random-6x6-v0": 10_000}


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=list(DEFAULT_STEPS))
    parser.add_argument("--steps", type=int, default=None, help="Environment steps (default per environment).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--worker", choices=["ours", "sb3"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--encoder", default="efficientnet-lite0", help=argparse.SUPPRESS)
    parser.add_argument(
        "--neighbour",
        action="store_true",
        help="run every measured run beside another process computing on two threads (a busy machine)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="ours: bfloat16 hidden layers (DQNConfig.bf16; the presets leave it off)"
    )
    args = parser.parse_args()
    if args.worker:
        env_id = args.env[0]
        steps = args.steps or DEFAULT_STEPS.get(env_id, 20_000)
        result = (
            run_ours(env_id, steps, args.seed, args.encoder, args.bf16)
            if args.worker == "ours"
            else run_sb3(env_id, steps, args.seed, args.threads or None)
        )
        print(json.dumps(result))
        return
    rows = []
    for env_id in args.env:
        steps = args.steps or DEFAULT_STEPS.get(env_id, 20_000)
        encoders = ["efficientnet-lite0"]
        if env_id.startswith("MiniGrid-"):
            encoders.append(f"source:{_source_encoder()}")
        sb3_one, sb3_default, ours = [], [], {encoder: [] for encoder in encoders}
        for seed in args.seeds:  # side by side, seed by seed: the machine's load changes between runs
            sb3_one.append(_spawn("sb3", env_id, steps, seed, threads=1, neighbour=args.neighbour))
            sb3_default.append(_spawn("sb3", env_id, steps, seed, neighbour=args.neighbour))
            for encoder in encoders:
                ours[encoder].append(
                    _spawn("ours", env_id, steps, seed, encoder=encoder, bf16=args.bf16, neighbour=args.neighbour)
                )
        for encoder in encoders:
            runs = ours[encoder]
            row = {
                "env_id": env_id + ("" if encoder == encoders[0] else " (source-task encoder)"),
                "steps": steps,
                "seeds": args.seeds,
                "ours": runs,
                "sb3_one_thread": sb3_one,
                "sb3_default_threads": sb3_default,
                "speedup_vs_sb3_one_thread": _mean(runs, "sps") / _mean(sb3_one, "sps"),
                "speedup_vs_sb3_default_threads": _mean(runs, "sps") / _mean(sb3_default, "sps"),
                "speedup_per_seed_vs_sb3_one_thread": [o["sps"] / s["sps"] for o, s in zip(runs, sb3_one, strict=True)],
                "speedup_per_seed_vs_sb3_default_threads": [
                    o["sps"] / s["sps"] for o, s in zip(runs, sb3_default, strict=True)
                ],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(
        "| environment | steps | ours steps/s (update threads) | SB3 steps/s: 1 thread / default threads | "
        "speedup: vs 1 thread / vs default | per-seed speedup: vs 1 thread / vs default (min - max) | "
        "precision (ours) | final return per seed: ours | SB3 (1 thread) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one, default = r["speedup_per_seed_vs_sb3_one_thread"], r["speedup_per_seed_vs_sb3_default_threads"]
        threads = "; ".join(sorted({x["update_threads"] for x in r["ours"]}))
        print(
            f"| {r['env_id']} | {r['steps']} | {_mean(r['ours'], 'sps'):.0f} ({threads}) | "
            f"{_mean(r['sb3_one_thread'], 'sps'):.0f} / {_mean(r['sb3_default_threads'], 'sps'):.0f} | "
            f"{r['speedup_vs_sb3_one_thread']:.1f}x / {r['speedup_vs_sb3_default_threads']:.1f}x | "
            f"{min(one):.1f}x - {max(one):.1f}x / {min(default):.1f}x - {max(default):.1f}x | "
            f"{', '.join(sorted({x['precision'] for x in r['ours']}))} | "
            + ", ".join(f"{x['final_return']:.2f}" for x in r["ours"])
            + f" (mean {_mean(r['ours'], 'final_return'):.2f}) | "
            + ", ".join(f"{x['final_return']:.2f}" for x in r["sb3_one_thread"])
            + f" (mean {_mean(r['sb3_one_thread'], 'final_return'):.2f}) |"
        )


if __name__ == "__main__":
    main()
