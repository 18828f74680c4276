"""A pretrained image encoder used frozen, with a feature cache keyed by the observation's bytes.

A frozen encoder stays in eval mode, never receives gradients, and computes each distinct
observation's features once; reward heads and Q-heads share the cache (``stats.hit_rate``).
Which encoders exist, and how to get one by name: :mod:`rlhf_core.backbones.registry`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CacheStats:
    """How often features came from the cache."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def encode_images(
    module: nn.Module, images: torch.Tensor, input_size: int, preprocess: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """uint8 images (B, H, W, 3) -> features (B, F): scaled to [0, 1], resized to ``input_size``
    (bilinear), preprocessed, encoded. Pure torch: the encoder's path, and torch.export's."""
    x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    return module(preprocess(x)).float()


class FrozenEncoder:
    """A pretrained image encoder used as a fixed feature extractor.

    ``encode`` takes uint8 HxWx3 images and returns float32 features; each distinct image
    (by its bytes) is encoded once per encoder instance.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        features_dim: int,
        input_size: int,
        preprocess: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int = 256,
        max_cached: int = 200_000,
    ) -> None:
        from rlhf_core.devices import resolve_device

        self.name = name
        self.device = resolve_device()
        self.module = module.to(self.device).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.features_dim = features_dim
        self.input_size = input_size
        self._preprocess = preprocess
        self.batch_size = batch_size
        self._cache: dict[bytes, np.ndarray] = {}
        self.max_cached = max_cached
        self._lock = threading.Lock()
        self.stats = CacheStats()

    @torch.inference_mode()
    def _forward(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return encode_images(self.module, x, self.input_size, self._preprocess).cpu().numpy()  # (B, F)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Features (N, features_dim) of images (N, H, W, 3) uint8, cached per distinct image."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        shape = repr(images.shape[1:]).encode()
        keys = [hashlib.blake2b(img.tobytes() + shape, digest_size=16).digest() for img in images]
        out = np.empty((len(images), self.features_dim), dtype=np.float32)
        with self._lock:
            missing: dict[bytes, int] = {}
            for i, key in enumerate(keys):
                cached = self._cache.get(key)
                if cached is None:
                    missing.setdefault(key, i)
                else:
                    out[i] = cached
            self.stats.hits += len(keys) - len(missing)
            self.stats.misses += len(missing)
            order = list(missing.items())
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                feats = self._forward(images[[i for _, i in chunk]])
                for (key, _), f in zip(chunk, feats, strict=True):
                    self._cache[key] = f
            for i, key in enumerate(keys):
                if key in missing:
                    out[i] = self._cache[key]
            while len(self._cache) > self.max_cached:  # oldest first (dicts keep insertion order)
                self._cache.pop(next(iter(self._cache)))
        return out
