"""Which device the heavy work runs on: CUDA or MPS when present, the CPU otherwise.

``RLHF_DEVICE`` (or the CLI's ``rlhf --device``) forces one: ``cpu``, ``cuda``, ``cuda:1``,
``mps``; ``auto`` (the default) picks CUDA, then MPS, then the CPU. What uses it: the text
reward model and the classifiers (training and scoring, bfloat16 autocast where the device
multiplies bfloat16 fast), the frozen image encoders (their features, cached), and
stable-baselines3's policies. The small MLP heads of trajectory reward models and the DQN's
Q-head stay on the CPU by design: they are a few thousand parameters fed from a feature cache
in CPU memory, where a GPU's launch and copy overhead exceeds their arithmetic; the DQN acts
through NumPy copies of its weights (its CPU fast path) wherever it trains.
"""

from __future__ import annotations

import os

import torch

from rlhf_core.errors import InvalidInputError

DEVICE_ENV = "RLHF_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | None = None) -> torch.device:
    """The device ``name`` names (None: ``RLHF_DEVICE``, else ``auto``); InvalidInputError when it
    is not there, naming what is."""
    raw = (name or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if raw == "auto":
        if torch.cuda.is_available():
            local = os.environ.get("LOCAL_RANK")  # a data-parallel process: its own GPU, not every one's GPU 0
            return torch.device(f"cuda:{int(local) % torch.cuda.device_count()}" if local else "cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(raw)
    except (RuntimeError, ValueError):
        raise InvalidInputError(f"unknown device {raw!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {raw!r} asked for, but this machine has no CUDA GPU that torch can use "
                f"({available()}); use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(f"device {raw!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type == "mps" and not _mps_available():
        raise InvalidInputError(f"device 'mps' asked for, but Apple's MPS is not available here ({available()})")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"unsupported device {raw!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def available() -> str:
    """The devices torch sees, for messages."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return "available: " + ", ".join(found)


def bf16_pays_off(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast on ``device``: CUDA GPUs that support it (Ampere and
    later); CPUs that multiply bfloat16 in hardware, with AMX (Intel Sapphire Rapids and
    later) or AVX512-BF16 (Intel Cooper Lake, AMD Zen 4 and later); not MPS."""
    if device.type == "cuda":  # natively from Ampere (8.0) on; older GPUs only emulate it, slowly
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return cpu_has_bf16()
    return False


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, probe)()) for probe in probes if hasattr(torch.cpu, probe))
    except RuntimeError:  # a torch whose probe fails: stay in float32
        return False
