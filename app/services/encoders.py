"""Use case: which frozen encoders of pixel observations a user can pick on this machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Studio
from rlhf_core.backbones.vision import resnet_weights_path
from rlhf_core.errors import EncoderUnavailableError, InvalidInputError

if TYPE_CHECKING:
    from rlhf_core.backbones.source import SourceTaskResult

#: Where ``rlhf train-encoder`` puts source-task encoders unless told otherwise, under the data folder.
ENCODERS_DIR = "encoders"


@dataclass(frozen=True)
class EncoderOption:
    """An encoder name (as ``--encoder`` takes it) and what to call it on a page."""

    name: str
    label: str


def encoder_options(studio: Studio) -> list[EncoderOption]:
    """The encoders that load here: EfficientNet-Lite0 (always), each source-task encoder in the
    data folder's ``encoders/``, and ResNet-18/50 where torchvision and their weights are present."""
    options = [EncoderOption("efficientnet-lite0", "EfficientNet-Lite0, ImageNet (default)")]
    folder = studio.settings.data_dir / ENCODERS_DIR
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        options.append(EncoderOption(f"source:{path}", f"Source-task CNN: {path.name}"))
    try:
        import torchvision  # noqa: F401  (optional)
    except ImportError:
        return options
    for arch in ("resnet18", "resnet50"):
        try:
            resnet_weights_path(arch)
        except EncoderUnavailableError:
            continue
        options.append(EncoderOption(arch, f"{arch.replace('resnet', 'ResNet-')}, ImageNet"))
    return options


def default_encoder_output(studio: Studio, env_id: str) -> Path:
    """Where a source-task encoder trained on ``env_id`` goes when no file is named."""
    return studio.settings.data_dir / ENCODERS_DIR / f"{env_id}.safetensors"


def train_encoder(
    studio: Studio,
    env_id: str,
    output: Path | None,
    *,
    frames: int,
    epochs: int,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Path, SourceTaskResult]:
    """Train a CNN on a source MiniGrid task and save it frozen to ``output`` (default: the data
    folder's ``encoders/ENV.safetensors``, where the pages offer it); the file and how it did."""
    from rlhf_core.backbones.source import SourceTaskConfig, train_source_encoder

    output = output or default_encoder_output(studio, env_id)
    if output.suffix != ".safetensors":
        raise InvalidInputError(f"the output file must end in .safetensors, got {output.name}")
    config = SourceTaskConfig(env_id=env_id, frames=frames, epochs=epochs, seed=seed)
    return output, train_source_encoder(config, output, on_step)
