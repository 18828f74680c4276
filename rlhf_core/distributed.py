"""Data-parallel training under Hugging Face Accelerate: which process this is.

``accelerate launch --multi_gpu --num_processes N $(which rlhf) train-reward ...`` starts N
processes (torchrun underneath: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); on a machine without
GPUs they train on the CPU over gloo. Each takes its share of every batch, DDP averages the
gradients, so the N copies stay identical; only the main process registers the result.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """How many processes train together (1 when not launched distributed)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    """This process's index among them (0: the main process)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main() -> bool:
    """Whether this process registers models and reports (always, when not distributed)."""
    return rank() == 0
