"""The registry of frozen image encoders: names to encoders, one process-wide instance per name.

:func:`get_encoder` knows three kinds of backbone, all loaded offline: ``efficientnet-lite0``
(the default) and ``resnet18`` / ``resnet50`` (:mod:`rlhf_core.backbones.vision`), and
``source:/path/to/encoder.safetensors``, a CNN trained on a *source* task
(:mod:`rlhf_core.backbones.source`: one MiniGrid layout), then frozen and reused on another
environment: transfer learning from a task instead of from ImageNet.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from rlhf_core.backbones.frozen import FrozenEncoder, encode_images
from rlhf_core.backbones.source import load_source_encoder
from rlhf_core.backbones.vision import RESNET_WEIGHTS, efficientnet_lite0, resnet
from rlhf_core.errors import EncoderUnavailableError

_FACTORIES: dict[str, Callable[[], FrozenEncoder]] = {
    "efficientnet-lite0": efficientnet_lite0,
    "resnet18": lambda: resnet("resnet18", None),
    "resnet50": lambda: resnet("resnet50", None),
}
logger = logging.getLogger(__name__)

_INSTANCES: dict[str, FrozenEncoder] = {}
_INSTANCES_LOCK = threading.Lock()


def available_encoders() -> list[str]:
    """Names the registry knows (plus ``resnet18:FILE``, ``resnet50:FILE`` and ``source:FILE``)."""
    return sorted(_FACTORIES)


def _build(name: str) -> FrozenEncoder:
    kind, _, arg = name.partition(":")
    if arg and kind in RESNET_WEIGHTS:
        return resnet(kind, arg)
    if arg and kind == "source":
        return load_source_encoder(Path(arg))
    factory = _FACTORIES.get(name)
    if factory is None:
        raise EncoderUnavailableError(
            f"unknown encoder {name!r}; known: {', '.join(available_encoders())}, "
            "'resnet18:FILE', 'resnet50:FILE' or 'source:FILE' (a source-task encoder from `rlhf train-encoder`)"
        )
    return factory()


def canonical_name(name: str) -> str:
    """``name`` with any file argument made absolute, so it means the same file from any folder."""
    kind, sep, arg = name.partition(":")
    if sep and arg and (kind == "source" or kind in RESNET_WEIGHTS):
        return f"{kind}:{Path(arg).expanduser().resolve()}"
    return name


def get_encoder(name: str) -> FrozenEncoder:
    """The process-wide instance of encoder ``name`` (its feature cache is shared)."""
    name = canonical_name(name)
    with _INSTANCES_LOCK:
        if name not in _INSTANCES:
            logger.info("loading frozen encoder %s", name)
            _INSTANCES[name] = _build(name)
        return _INSTANCES[name]


class ObservationFeatures(torch.nn.Module):
    """Observations (N, ...) -> features (N, F) as one torch module: the frozen encoder of pixel
    images (uint8 (N, H, W, 3), resized and preprocessed as :class:`FrozenEncoder` does), or the
    flattened floats of any other observation. For ``torch.export`` programs that run without
    the studio (``rlhf_core.rewards.export``, ``rlhf_core.policy.export``)."""

    def __init__(self, encoder: str | None) -> None:
        super().__init__()
        self.encoder: torch.nn.Module | None = None
        if encoder is not None:
            enc = get_encoder(encoder)
            self.encoder = copy.deepcopy(enc.module).cpu()  # a program runs where its user puts it
            self.input_size = enc.input_size
            self.preprocess = enc._preprocess

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return obs.reshape(obs.shape[0], -1).float()
        return encode_images(self.encoder, obs, self.input_size, self.preprocess)
