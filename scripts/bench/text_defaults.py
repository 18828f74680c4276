"""Benchmark: what ``rlhf train-reward`` gives a text project on its defaults (issue 12, target 3).

Run: ``python scripts/bench/text_defaults.py [--sizes 100 200 2000] [--seeds 0 1 2] [--tasks positive instruction]``

The user's path, with no flag: a file of labeled pairs (``prompt, chosen, rejected``) is
imported into a fresh data folder (``rlhf import``) and ``rlhf train-reward --project P
--json`` trains the default text model on it. Reported per run: the held-out accuracy that
the command itself prints (the project's own held-out split) with its number of pairs and
95% interval, and the accuracy on 400 pairs made from reviews that no training pair uses.

Tasks, from the packaged reviews (``rlhf_core/demo_data/sentiment.csv``; training pairs from
3/4 of them, the independent held-out pairs from the other quarter):

- ``positive``: a simple preference: one prompt ("Write a short review."), the positive
  review (1-3 sentences) chosen over the negative one;
- ``instruction``: the prompt asks for a positive or a negative review and the response
  with that sentiment is chosen, so a model must read the prompt (the task of
  ``text_reward.py``, harder: a model that scores sentiment alone stays at 50%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app.config import Settings, Studio
from app.services.model_registry import load_model
from db import repo
from db.engine import session_scope
from rlhf_core.demo_data.text import _response, instruction_preferences, sentiment_examples
from rlhf_core.rewards.text import TextPreferences

HELD_OUT = 400


def _split() -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    texts, labels = sentiment_examples()
    held = [(i // 2) % 4 == 3 for i in range(len(texts))]  # whole positive/negative topic pairs

    def pick(keep: bool) -> tuple[list[str], list[str]]:
        rows = [(t, x) for t, x, h in zip(texts, labels, held, strict=True) if h == keep]
        return [t for t, _ in rows], [x for _, x in rows]

    return pick(False), pick(True)


def positive_preferences(texts: list[str], labels: list[str], n: int, rng: np.random.Generator) -> TextPreferences:
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == "positive"]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab == "negative"]
    chosen = [_response(pos, rng, 3) for _ in range(n)]
    rejected = [_response(neg, rng, 3) for _ in range(n)]
    return TextPreferences.chosen_rejected(["Write a short review."] * n, chosen, rejected)


def make(task: str, n: int, seed: int) -> tuple[TextPreferences, TextPreferences]:
    (train_t, train_l), (test_t, test_l) = _split()
    rng = np.random.default_rng(seed)
    build = positive_preferences if task == "positive" else instruction_preferences
    return build(train_t, train_l, n, rng), build(test_t, test_l, HELD_OUT, rng)


def rlhf(data: Path, *args: str) -> str:
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "--data-dir", str(data), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def run(task: str, n: int, seed: int, options: tuple[str, ...] = ()) -> dict:
    train, test = make(task, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        pairs = Path(tmp) / "pairs.jsonl"
        with pairs.open("w") as f:
            for p, a, b, pref in zip(train.prompts, train.responses_a, train.responses_b, train.pref, strict=True):
                chosen, rejected = (a, b) if pref == 1 else (b, a)
                f.write(json.dumps({"prompt": p, "chosen": chosen, "rejected": rejected}) + "\n")
        rlhf(data, "import", "--project", "p", str(pairs))
        start = time.perf_counter()
        out = json.loads(rlhf(data, "train-reward", "--project", "p", "--json", *options))
        seconds = time.perf_counter() - start
        studio = Studio(Settings.from_env(data))
        with session_scope(studio.engine) as session:
            record = repo.active_reward_model(session, repo.get_project(session, "p").id)
        model = load_model(studio, record)
        independent = float(np.mean((model.predict_pref(test) > 0.5) == (test.pref > 0.5)))
    metrics = out.get("metrics", out)
    return {
        "task": task,
        "pairs": n,
        "seed": seed,
        "held_out": metrics.get("val_accuracy"),
        "held_out_pairs": metrics.get("val_pairs"),
        "interval": metrics.get("val_accuracy_ci95"),
        "independent": independent,
        "epochs": metrics.get("epochs"),
        "steps": metrics.get("optimizer_steps"),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["positive", "instruction"], choices=["positive", "instruction"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 2000])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--options", default="", help="train-reward options instead of the defaults, e.g. '--lr 2e-3'")
    args = ap.parse_args()
    rows = []
    for task in args.tasks:
        for n in args.sizes:
            for seed in args.seeds:
                row = run(task, n, seed, tuple(args.options.split()))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        "\n| task | pairs | held-out accuracy (its pairs, 95% interval) per seed "
        "| independent 400 pairs per seed | steps | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for task in args.tasks:
        for n in args.sizes:
            rs = [r for r in rows if r["task"] == task and r["pairs"] == n]
            own = ", ".join(
                f"{r['held_out']:.2f} ({r['held_out_pairs']}, {r['interval'][0]:.2f}-{r['interval'][1]:.2f})"
                if r["interval"]
                else f"{r['held_out']}"
                for r in rs
            )
            ind = ", ".join(f"{r['independent']:.3f}" for r in rs)
            steps = statistics.median(r["steps"] or 0 for r in rs)
            secs = ", ".join(f"{r['seconds']:.0f}" for r in rs)
            print(f"| {task} | {n} | {own} | {ind} (min {min(r['independent'] for r in rs):.3f}) | {steps} | {secs} |")


if __name__ == "__main__":
    main()
