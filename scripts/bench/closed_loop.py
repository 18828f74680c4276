"""Benchmark: the whole loop with a scripted oracle in place of people.

Run: ``python scripts/bench/closed_loop.py [--env MiniGrid-Empty-Random-6x6-v0 CartPole-v1]``

For each environment, in a fresh data folder and through the same use cases as the app and
the CLI: create the demo project (for MiniGrid also train the source-task encoder on the
8x8 room, as ``rlhf train-encoder`` does, and use it for the reward model and the policy),
then repeat rounds of

1. the B-Pref oracle labels the next ``--labels-per-round`` pending pairs (highest priority
   first: after round one these are the pairs cut from the policy's own rollouts),
2. a reward model is trained on every label so far and made active,
3. a DQN is trained on that learned reward and evaluated on the *true* reward (success rate
   for MiniGrid, return for CartPole),
4. the policy's fresh rollouts become new pairs (Christiano et al.'s interleaving),

until the target is met, the label budget is spent or the time budget runs out. Reports
labels used, wall time (including making the demo project) and the final true return or
success rate; ``--json`` prints the rounds as JSON. Targets (issue 4): MiniGrid success at
least 90% within 10 minutes; CartPole-v1 mean true return at least 450 with at most 500 labels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Settings, Studio
from app.services.demo import create_demo_project
from app.services.policies import rollouts_to_queries, train_policy
from app.services.rewards import train_reward_model
from app.services.synthetic import label_synthetic
from rlhf_core.source_encoder import SourceTaskConfig, train_source_encoder


@dataclass(frozen=True)
class Plan:
    """Settings of the loop for one environment."""

    segments: int
    queries: int
    first_labels: int
    labels_per_round: int
    max_labels: int
    reward_kind: str
    policy_steps: int
    rollout_episodes: int
    target_metric: str
    target: float
    budget_s: float
    source_encoder: bool


PLANS: dict[str, Plan] = {
    "MiniGrid-Empty-Random-6x6-v0": Plan(
        200, 300, 200, 100, 1_000, "bt", 10_000, 8, "success_rate", 0.9, 600.0, source_encoder=True
    ),
    "CartPole-v1": Plan(
        120, 300, 250, 250, 500, "ensemble", 50_000, 8, "true_return_mean", 450.0, 1200.0, source_encoder=False
    ),
}


def run(env_id: str, plan: Plan, data_dir: Path, seed: int) -> dict[str, Any]:
    studio = Studio(Settings.from_env(data_dir))
    start = time.perf_counter()
    create_demo_project(studio, "loop", env_id, n_segments=plan.segments, n_queries=plan.queries, seed=seed)
    demo_s = time.perf_counter() - start
    print(f"[{env_id}] demo project in {demo_s:.1f} s", flush=True)
    encoder = None
    if plan.source_encoder:
        out = data_dir / "encoders" / "minigrid8.safetensors"
        quality = train_source_encoder(SourceTaskConfig(env_id="MiniGrid-Empty-8x8-v0", seed=seed), out)
        encoder = f"source:{out}"
        print(f"[{env_id}] source-task encoder at {time.perf_counter() - start:.1f} s: {quality}", flush=True)
    rounds: list[dict[str, Any]] = []
    labels = 0
    while True:
        want = min(plan.labels_per_round if rounds else plan.first_labels, plan.max_labels - labels)
        if want > 0:
            labels += label_synthetic(studio, "loop", "oracle", want, seed=seed + len(rounds)).labeled
        t0 = time.perf_counter()
        reward = train_reward_model(studio, "loop", plan.reward_kind, seed=seed, encoder=encoder)
        t1 = time.perf_counter()
        policy = train_policy(studio, "loop", "active", steps=plan.policy_steps, seed=seed + len(rounds))
        t2 = time.perf_counter()
        m = policy.metrics
        row = {
            "round": len(rounds) + 1,
            "labels": labels,
            "reward_val_accuracy": reward.metrics.get("val_accuracy"),
            "true_return_mean": m["true_return_mean"],
            "success_rate": m["success_rate"],
            "learned_return_mean": m["learned_return_mean"],
            "env_steps_per_second": m["env_steps_per_second"],
            "reward_fit_s": round(t1 - t0, 1),
            "policy_s": round(t2 - t1, 1),
            "elapsed_s": round(time.perf_counter() - start, 1),
        }
        rounds.append(row)
        print(f"[{env_id}] {json.dumps(row)}", flush=True)
        met = (m[plan.target_metric] or 0.0) >= plan.target
        if met or labels >= plan.max_labels or time.perf_counter() - start > plan.budget_s:
            break
        rollouts_to_queries(studio, "loop", episodes=plan.rollout_episodes, seed=seed + len(rounds))
    final = rounds[-1]
    return {
        "env_id": env_id,
        "labels_used": final["labels"],
        "wall_s": round(time.perf_counter() - start, 1),
        "demo_s": round(demo_s, 1),
        "final_true_return_mean": final["true_return_mean"],
        "final_success_rate": final["success_rate"],
        "target": f"{plan.target_metric} >= {plan.target}",
        "target_met": (final[plan.target_metric] or 0.0) >= plan.target,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=list(PLANS), choices=list(PLANS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON at the end.")
    args = parser.parse_args()
    results = []
    for env_id in args.env:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(env_id, PLANS[env_id], Path(tmp) / "data", args.seed))
    print()
    print("| environment | rounds | labels | wall time | final true return | success rate | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        success = "n/a" if r["final_success_rate"] is None else f"{r['final_success_rate']:.2f}"
        print(
            f"| {r['env_id']} | {len(r['rounds'])} | {r['labels_used']} | {r['wall_s']:.0f} s | "
            f"{r['final_true_return_mean']:.2f} | {success} | {r['target']} | {'yes' if r['target_met'] else 'no'} |"
        )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
