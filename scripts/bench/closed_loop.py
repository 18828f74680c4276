"""Benchmark: the user's path, with a scripted oracle in place of people, on the defaults only.

Run: ``python scripts/bench/closed_loop.py [--env ENV ...] [--seeds 0 1 2 3 4] [--json]``

For each environment and seed, in a fresh data folder and through the use cases the app and
the CLI call (nothing is set that a user would not get by default):

1. ``rlhf demo`` (its defaults: 200 clips, 300 pairs),
2. ``rlhf loop --rounds 2 --first-labels 200 --labels-per-round 100``: the B-Pref oracle
   labels 200 pairs; a round retrains the reward model (the default kind and form) and the
   policy (the environment's preset; from round 2 on, continuing from the last round's
   network, which stays a candidate) and queues the policy's clips; the oracle labels 100
   more (those clips first) and a second round runs. Nothing in a round looks at the true
   reward: the policy keeps the checkpoint with the best *discounted learned* return.
3. side by side, two baselines with the same seed and preset: a policy on the environment's
   true reward (``--reward true``) and one on the scripted teacher's own reward
   (``--reward teacher``: whether the teacher can teach the task at all).
4. in MiniGrid rooms of walls, floor, lava and a goal, whether each round's learned reward
   has the task as its *optimum*: the share of 5 evaluation layouts in which the optimal
   policy of that reward (exact value iteration over the room's states, as the policy sees
   the reward: normalised, with its absorbing state; ``rlhf_core.envs.minigrid_mdp``)
   reaches the goal from the start. 1.00 with a failing policy: the reward is right and the
   learner did not find its optimum; 0.00: the reward model is wrong.

Reports, per run, success (MiniGrid) or true return (others) after each round, the
baselines, the wall time of each round and of the run; then per environment how many seeds
met the target (issue 12: MiniGrid success >= 0.9 after the last round in at least 4 of 5
seeds; CartPole-v1 true return >= 475 in at least 9 of 10 seeds; a round under 3 minutes).

Continuous control (``--env Pendulum-v1``, issue 15): one round on 300 oracle labels with the
defaults (an ensemble of transition rewards, SAC), against SAC on the true reward with the
same seed and preset, side by side. Returns are negative there, so the target (the learned-
reward policy reaches >= 90% of the true-reward policy's return, the whole run under 10
minutes) is measured above a uniformly random policy: (learned - random) / (true - random).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from app.config import Settings, Studio
from app.services.demo import create_demo_project
from app.services.loop import run_loop
from app.services.policies import learned_reward, policy_registry, train_policy
from rlhf_core.envs.minigrid_mdp import optimum_reaches_goal
from rlhf_core.envs.registry import env_family, env_info, make_env
from rlhf_core.policy.dqn import preset_for

DEFAULT_ENVS = [
    "MiniGrid-Empty-Random-6x6-v0",  # the default demo
    "MiniGrid-LavaGapS5-v0",  # lava
    "MiniGrid-Dynamic-Obstacles-Random-6x6-v0",  # moving obstacles
    "MiniGrid-DistShift1-v0",  # lava, a wider room
    "MiniGrid-Empty-8x8-v0",  # a larger room (fails: docs/benchmarks.md)
    "MiniGrid-LavaGapS6-v0",  # lava, a larger room (fails, the true and teacher rewards too)
    "MiniGrid-SimpleCrossingS9N1-v0",  # walls (fails, the true and teacher rewards too)
    "CartPole-v1",
]
FIRST_LABELS, MORE_LABELS, ROUNDS = 200, 100, 2
ROUND_BUDGET_S = 180.0
#: Continuous control: oracle labels, and the share of the true-reward policy's gain over random.
CONTINUOUS_LABELS, CONTINUOUS_TARGET, CONTINUOUS_BUDGET_S = 300, 0.9, 600.0


def measure(m: dict[str, Any]) -> float:
    """What a run is judged by: success where the environment defines it, else true return."""
    return m["success_rate"] if m.get("success_rate") is not None else m["true_return_mean"]


def target(env_id: str) -> float:
    return 0.9 if env_family(env_id) == "minigrid" else 475.0


def random_return(env_id: str, episodes: int = 20, seed: int = 10_000) -> float:
    """Mean true return of uniformly random actions, on the evaluation seeds policies use."""
    import numpy as np

    from rlhf_core.envs.registry import make_env

    env, total = make_env(env_id, render=False), 0.0
    env.action_space.seed(seed)
    for k in range(episodes):
        env.reset(seed=seed + k)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return float(np.float64(total) / episodes)


def run_continuous(
    env_id: str, seed: int, data_dir: Path, labels: int = CONTINUOUS_LABELS, steps: int | None = None
) -> dict[str, Any]:
    """One round on ``labels`` oracle labels with the defaults (``steps``: the policy's
    environment steps, None for the preset's); SAC on the true reward beside it."""
    studio = Studio(Settings.from_env(data_dir))
    start = time.perf_counter()
    create_demo_project(studio, "loop", env_id, seed=seed, n_queries=max(labels, 300))
    demo_s = time.perf_counter() - start
    [result] = run_loop(
        studio, "loop", rounds=1, first_labels=labels, labels_per_round=1, teacher="oracle", seed=seed, steps=steps
    )
    user_s = time.perf_counter() - start
    t0 = time.perf_counter()
    true_result = train_policy(studio, "loop", "true", seed=seed, steps=steps)
    true_metrics = true_result.metrics
    true_s = time.perf_counter() - t0
    learned_curve = next(p["curve"] for p in policy_registry(studio, "loop") if p["version"] == result.policy_version)
    studio.engine.dispose()
    rand = random_return(env_id)
    share = (result.true_return_mean - rand) / (true_metrics["true_return_mean"] - rand)
    return {
        "env_id": env_id,
        "seed": seed,
        "demo_s": round(demo_s, 1),
        "run_s": round(user_s, 1),
        "labels": result.labels,
        "reward_val_accuracy": result.reward_val_accuracy,
        "learned": result.true_return_mean,
        "true": true_metrics["true_return_mean"],
        "random": rand,
        "share": round(share, 3),
        "true_s": round(true_s, 1),
        "curve": [
            {"step": a["step"], "learned": a.get("true_return_mean"), "true": b.get("true_return_mean")}
            for a, b in zip(learned_curve or [], true_result.curve or [], strict=False)
        ],
        # MuJoCo has no target in the issue (report what the machine allows); Pendulum has one
        "met": None
        if env_family(env_id) == "mujoco"
        else (share >= CONTINUOUS_TARGET and user_s <= CONTINUOUS_BUDGET_S),
    }


def reward_optimum(studio: Studio, env_id: str, version: int) -> float | None:
    """Share of evaluation layouts where reward model ``version``'s optimal policy reaches the
    goal (None outside static MiniGrid rooms)."""
    if env_family(env_id) != "minigrid":
        return None
    reward = learned_reward(studio, "loop", str(version))
    env = make_env(env_id, render=False)
    example, _ = env.reset(seed=0)
    env.close()
    gamma = preset_for(env_id).gamma
    return optimum_reaches_goal(env_id, reward, gamma, absorbing_reward=reward.absorbing_reward(example))


def run(env_id: str, seed: int, data_dir: Path, baselines: bool = True) -> dict[str, Any]:
    studio = Studio(Settings.from_env(data_dir))
    start = time.perf_counter()
    create_demo_project(studio, "loop", env_id, seed=seed)
    demo_s = time.perf_counter() - start
    rounds = run_loop(
        studio,
        "loop",
        rounds=ROUNDS,
        first_labels=FIRST_LABELS,
        labels_per_round=MORE_LABELS,
        teacher="oracle",
        seed=seed,
        on_round=lambda r: print(f"[{env_id} seed {seed}] {json.dumps(r.to_json())}", flush=True),
    )
    loop_s = time.perf_counter() - start - demo_s
    optimum = [reward_optimum(studio, env_id, r.reward_version) for r in rounds]
    measured: dict[str, dict[str, Any]] = {}
    for reward in ("true", "teacher") if baselines else ():
        t0 = time.perf_counter()
        m = train_policy(studio, "loop", reward, seed=seed).metrics
        measured[reward] = {"value": measure(m), "seconds": round(time.perf_counter() - t0, 1)}
    final = rounds[-1]
    value = final.success_rate if final.success_rate is not None else final.true_return_mean
    studio.engine.dispose()
    return {
        "env_id": env_id,
        "seed": seed,
        "demo_s": round(demo_s, 1),
        "loop_s": round(loop_s, 1),
        "rounds": [r.to_json() for r in rounds],
        "final": value,
        "met": value >= target(env_id),
        "round_s_max": max(r.seconds for r in rounds),
        "baseline_true": measured.get("true", {}).get("value"),
        "baseline_teacher": measured.get("teacher", {}).get("value"),
        "reward_optimum": optimum,
    }


def report_continuous(envs: list[str], seeds: list[int], labels: int, steps: int | None) -> None:
    rows = []
    for env_id in envs:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_continuous(env_id, seed, Path(tmp) / "data", labels, steps)
            rows.append(r)
            print(f"[{env_id} seed {seed}] {json.dumps(r)}", flush=True)
    print()
    print(
        "| environment | seed | labels | reward acc. | SAC, learned reward | SAC, true reward | random | share "
        "| run (demo + labels + reward + policy) | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env_id']} | {r['seed']} | {r['labels']} | {r['reward_val_accuracy']:.2f} | {r['learned']:.0f} | "
            f"{r['true']:.0f} | {r['random']:.0f} | {r['share']:.2f} | {r['run_s']:.0f} s | "
            f"{'n/a (report)' if r['met'] is None else ('yes' if r['met'] else 'no')} |"
        )
    print()
    print("True return of both policies as training goes on (the same environment steps):")
    print("| environment | seed | step | SAC, learned reward | SAC, true reward |")
    print("|---|---|---|---|---|")
    for r in rows:
        for point in r["curve"]:
            print(f"| {r['env_id']} | {r['seed']} | {point['step']} | {point['learned']:.0f} | {point['true']:.0f} |")
    for env_id in envs:
        mine = [r for r in rows if r["env_id"] == env_id and r["met"] is not None]
        if mine:
            print(f"{env_id}: target met in {sum(r['met'] for r in mine)} of {len(mine)} seeds")


def _value(v: float | None) -> str:
    return "not run" if v is None else f"{v:.2f}"


def _optimum(r: dict[str, Any]) -> str:
    return ", ".join("n/a" if v is None else f"{v:.2f}" for v in r["reward_optimum"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", action="store_true", help="Print the results as JSON at the end.")
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="MiniGrid and CartPole: skip the true- and teacher-reward policies (they do not use the labels).",
    )
    parser.add_argument(
        "--labels", type=int, default=CONTINUOUS_LABELS, help="Continuous control: oracle labels (MuJoCo: up to 700)."
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="Continuous control: the policies' environment steps (default: preset)."
    )
    args = parser.parse_args()
    results = []
    continuous = [e for e in args.env if env_info(e).continuous]
    if continuous:
        report_continuous(continuous, args.seeds, args.labels, args.steps)
    for env_id in [e for e in args.env if e not in continuous]:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                r = run(env_id, seed, Path(tmp) / "data", baselines=not args.no_baselines)
            results.append(r)
            per_round = " -> ".join(f"{measure(x):.2f}" for x in r["rounds"])
            print(
                f"[{env_id} seed {seed}] rounds {per_round}; true-reward {_value(r['baseline_true'])}, "
                f"teacher-reward {_value(r['baseline_teacher'])}; learned rewards' optimum reaches the goal "
                f"{_optimum(r)}; slowest round {r['round_s_max']:.0f} s",
                flush=True,
            )
    if not results:
        return
    print()
    columns = ["environment", "seed", "round 1 (200 labels)", "round 2 (300 labels)", "true-reward policy"]
    columns += ["teacher-reward policy", "learned reward's optimum reaches the goal (rounds 1, 2)"]
    columns += ["slowest round", "met"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in results:
        rounds = [f"{measure(x):.2f}" for x in r["rounds"]]
        print(
            f"| {r['env_id']} | {r['seed']} | {rounds[0]} | {rounds[-1]} | {_value(r['baseline_true'])} | "
            f"{_value(r['baseline_teacher'])} | {_optimum(r)} | {r['round_s_max']:.0f} s | "
            f"{'yes' if r['met'] else 'no'} |"
        )
    print()
    for env_id in dict.fromkeys(r["env_id"] for r in results):
        rows = [r for r in results if r["env_id"] == env_id]
        met = sum(r["met"] for r in rows)
        slow = sum(r["round_s_max"] > ROUND_BUDGET_S for r in rows)
        print(f"{env_id}: target met in {met} of {len(rows)} seeds; rounds over {ROUND_BUDGET_S:.0f} s in {slow}")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
