"""Run under `accelerate launch`: train a small text reward model data-parallel, then write this
process's trained parameters and held-out predictions to OUT/rank-R.pt (tests/app/services/test_distributed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from rlhf_core.demo_data.text import sentiment_examples
from rlhf_core.distributed import rank
from rlhf_core.rewards.text import TextPreferences, TextRewardConfig, TextRewardModel


def main() -> None:
    out = Path(sys.argv[1])
    texts, labels = sentiment_examples()
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == "positive"]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab == "negative"]
    n = 64
    first = [pos[i] if i % 2 else neg[i] for i in range(n)]
    second = [neg[i] if i % 2 else pos[i] for i in range(n)]
    prefs = [1.0 if i % 2 else 0.0 for i in range(n)]
    data = TextPreferences.from_lists(["How was it?"] * n, first, second, prefs)
    train, held_out = data.take(np.arange(48)), data.take(np.arange(48, n))
    model = TextRewardModel(TextRewardConfig(max_length=48, rank=4, min_steps=24, bf16=False), device="cpu")
    metrics = model.fit(train, rng=np.random.default_rng(0))
    predicted = model.predict_pref(held_out)
    accuracy = float(np.mean((predicted > 0.5) == (held_out.pref > 0.5)))
    params = {n: p.detach().clone() for n, p in model.model.named_parameters() if p.requires_grad}
    torch.save({"params": params, "accuracy": accuracy, "metrics": metrics}, out / f"rank-{rank()}.pt")


if __name__ == "__main__":
    main()
