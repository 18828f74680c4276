"""The names of the reward model kinds, as saved with every model; light to import (no torch)."""

from __future__ import annotations

#: Linear Bradley-Terry on frozen features (logistic regression).
LINEAR = "bt"
#: Bagged neural Bradley-Terry ensemble on frozen features.
ENSEMBLE = "ensemble"
#: Reward head on a LoRA-adapted EfficientNet-Lite0 (pixel observations).
CNN_LORA = "cnn-lora"
#: Reward head on a LoRA-adapted text backbone (text projects).
TEXT_LORA = "text-lora"

#: Two-tower model, one taste per annotator (text and clip projects).
PERSONAL = "personal"

#: Every kind, the trajectory kinds first.
ALL_KINDS: tuple[str, ...] = (LINEAR, ENSEMBLE, CNN_LORA, TEXT_LORA, PERSONAL)
