"""Transfer learning for classification, three ways: frozen features, LoRA, full fine-tuning.

The seed slides 1-3, 9, 10 and 12, done right. A pretrained backbone meets a new task:

* ``frozen``: the backbone is a fixed feature extractor; each example's features are computed
  once and only a new linear head trains (slides 1 and 3).
* ``lora``: PEFT adds low-rank adapters to the backbone (MiniLM: attention ``query`` and
  ``value``; EfficientNet-Lite0: the pointwise 1x1 convolutions, ``_expand_conv``,
  ``_project_conv``, ``_conv_head``); the adapters and the head train, the base stays as it
  was (slides 10 and 12; PEFT initialises B to zero, so training starts from the base).
* ``full``: every weight trains, at a small learning rate (slides 2 and 9).

Text comes from a CSV of ``text,label`` rows (MiniLM), images from a folder with one
sub-folder per class (EfficientNet-Lite0). Results: held-out accuracy and the confusion
matrix (scikit-learn) on a stratified split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.backbones.text import (
    bf16_autocast_pays_off,
    load_sequence_classifier,
    load_tokenizer,
    quiet_transformers,
    torch_threads,
)
from rlhf_core.backbones.vision import CNN_LORA_TARGETS, efficientnet_trunk_for_lora
from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.errors import InvalidInputError
from rlhf_core.fileio import atomic_write

Mode = Literal["frozen", "lora", "full"]
DataKind = Literal["text", "image"]
MODES: tuple[str, ...] = ("frozen", "lora", "full")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_DEFAULT_LR = {
    ("text", "frozen"): 1e-2,
    ("text", "lora"): 2e-3,
    ("text", "full"): 5e-5,
    ("image", "frozen"): 1e-2,
    ("image", "lora"): 2e-3,
    ("image", "full"): 3e-4,
}


@dataclass(frozen=True)
class ClassifierConfig:
    """How a pretrained backbone is adapted to a classification task."""

    mode: str = "frozen"
    """frozen (features + linear head), lora (PEFT adapters + head) or full (every weight)."""
    epochs: int = 5
    """Passes over the training examples (frozen mode trains its head for 20x as many, cheaply)."""
    batch_size: int = 16
    """Examples per gradient step."""
    lr: float | None = None
    """AdamW learning rate; None picks one per mode (1e-2 head only, 2e-3 LoRA, 5e-5/3e-4 full)."""
    rank: int = 8
    """LoRA rank."""
    alpha: float = 16.0
    """LoRA alpha (scaling alpha / rank)."""
    val_fraction: float = 0.25
    """Share of the examples held out, stratified by class."""
    max_length: int = 64
    """Tokens per text."""
    image_size: int = 64
    """Images are resized to this square size."""
    bf16: bool | None = None
    """bfloat16 autocast when training the backbone: None = where the CPU has AMX."""
    num_threads: int | None = None
    """Intra-op threads (None: torch's default)."""
    seed: int = 0
    """Seed of the split, the head's initialisation and the batch order."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.rank < 1:
            raise InvalidInputError("epochs, batch_size and rank must be at least 1")
        if self.lr is not None and not 0 < self.lr < 1:
            raise InvalidInputError(f"lr must lie in (0, 1), got {self.lr}")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise InvalidInputError(f"val_fraction must lie in [0.05, 0.5], got {self.val_fraction}")
        if not 8 <= self.max_length <= 512 or not 32 <= self.image_size <= 512:
            raise InvalidInputError("max_length must lie in 8..512 and image_size in 32..512")

    def learning_rate(self, kind: str) -> float:
        return self.lr if self.lr is not None else _DEFAULT_LR[(kind, self.mode)]


@dataclass(frozen=True)
class LabeledData:
    """Examples with integer labels; ``inputs`` are texts (list) or uint8 images (N, H, W, 3)."""

    kind: str
    inputs: Any
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} examples but {len(self.labels)} labels")
        if len(self.class_names) < 2:
            raise InvalidInputError(f"a classifier needs at least 2 classes, found {len(self.class_names)}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> LabeledData:
        inputs = [self.inputs[i] for i in idx] if self.kind == "text" else self.inputs[idx]
        return LabeledData(self.kind, inputs, self.labels[idx], self.class_names)


def text_dataset(path: Path) -> LabeledData:
    """A ``text,label`` CSV; classes in sorted order."""
    from rlhf_core.demo_data.text import load_text_csv

    texts, names = load_text_csv(path)
    classes = tuple(sorted(set(names)))
    return LabeledData("text", texts, np.array([classes.index(n) for n in names]), classes)


def image_dataset(root: Path, size: int = 64) -> LabeledData:
    """Images under ``root/<class>/``, resized to ``size`` x ``size`` RGB; classes in sorted order."""
    from PIL import Image

    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder; make one with: rlhf make-demo-images {root}")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    with Image.open(file) as img:
                        images.append(np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR)))
                except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                    raise InvalidInputError(f"{file} is not a readable image ({exc}); remove or replace it") from exc
                labels.append(label)
    if len(classes) < 2 or not images:
        raise InvalidInputError(f"{root} needs one sub-folder of images per class (at least 2), found {len(classes)}")
    return LabeledData("image", np.stack(images), np.array(labels), classes)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices with every class in both (where it has 2+ examples)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


@dataclass
class ClassifierResult:
    """Held-out accuracy, confusion matrix (rows: true class, columns: predicted) and sizes."""

    mode: str
    kind: str
    accuracy: float
    confusion: list[list[int]]
    class_names: list[str]
    n_train: int
    n_val: int
    trainable_params: int
    total_params: int
    train_seconds: float
    train_loss: float
    history: list[float] = field(default_factory=list)

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_params / self.total_params

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "trainable_fraction": self.trainable_fraction}


# --- backbones ------------------------------------------------------------------------------


class _ImageClassifier(nn.Module):
    """EfficientNet-Lite0 trunk + global average pooling + a linear ``classifier``."""

    def __init__(self, trunk: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = nn.Linear(1280, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk.extract_features(x * 2.0 - 1.0).mean(dim=(2, 3))  # Lite models expect [-1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _images_to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Keep BatchNorm statistics as pretrained: batches of 16 would make them noisy."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


class _ModeModel:
    """A backbone with its classification head, set up for one mode (frozen, lora or full):
    what trains, how a batch becomes logits."""

    def __init__(self, kind: str, n_classes: int, cfg: ClassifierConfig) -> None:
        self.kind, self.cfg = kind, cfg
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            if kind == "text":
                self.tokenizer = load_tokenizer("minilm")
                self.model: nn.Module = load_sequence_classifier(
                    "minilm", n_classes, seed=cfg.seed, pad_token_id=self.tokenizer.pad_token_id
                )
            else:
                self.model = _ImageClassifier(efficientnet_trunk_for_lora(), n_classes)
            self.total_params = sum(p.numel() for p in self.model.parameters())
            if cfg.mode == "frozen":
                for p in self.model.parameters():
                    p.requires_grad_(False)
                in_dim = self.model.config.hidden_size if kind == "text" else 1280
                self.head = nn.Linear(in_dim, n_classes)
            elif cfg.mode == "lora":
                from peft import LoraConfig, get_peft_model

                if kind == "text":
                    lora = LoraConfig(
                        task_type="SEQ_CLS",
                        r=cfg.rank,
                        lora_alpha=cfg.alpha,
                        target_modules=["query", "value"],
                        modules_to_save=["classifier"],
                    )
                else:
                    lora = LoraConfig(
                        r=cfg.rank,
                        lora_alpha=cfg.alpha,
                        target_modules=CNN_LORA_TARGETS,
                        modules_to_save=["classifier"],
                    )
                with quiet_transformers():
                    self.model = get_peft_model(self.model, lora)

    def transformer(self) -> Any:
        """The transformers model inside (under PEFT's wrapper in lora mode)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def trainable(self) -> list[nn.Parameter]:
        if self.cfg.mode == "frozen":
            return list(self.head.parameters())
        return [p for p in self.model.parameters() if p.requires_grad]

    def encode(self, inputs: Any) -> Any:
        """Model-ready inputs: token ids (text) or a float image tensor."""
        if self.kind == "text":
            return self.tokenizer(
                list(inputs), truncation=True, max_length=self.cfg.max_length, padding=True, return_tensors="pt"
            )
        return _images_to_tensor(inputs)

    def logits(self, batch: Any) -> torch.Tensor:
        if self.kind == "text":
            return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return self.model(batch)

    @torch.no_grad()  # not inference_mode: the head trains on these features
    def frozen_features(self, inputs: Any) -> torch.Tensor:
        """Backbone features, computed once per example: MiniLM mean-pooled tokens, CNN pooled map."""
        self.model.eval()
        out = []
        for start in range(0, len(inputs), 64):
            batch = self.encode(inputs[start : start + 64])
            if self.kind == "text":
                hidden = self.model.base_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                out.append((hidden * mask).sum(1) / mask.sum(1))  # mean pooling, as sentence-transformers
            else:
                out.append(self.model.features(batch))
        return torch.cat(out)


# --- training -------------------------------------------------------------------------------


def train_classifier(
    data: LabeledData,
    config: ClassifierConfig | None = None,
    *,
    on_step: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> ClassifierResult:
    """Adapt the pretrained backbone of ``data.kind`` to ``data`` in ``config.mode``; evaluate held out."""
    cfg = config or ClassifierConfig()
    train_idx, val_idx = stratified_split(data.labels, cfg.val_fraction, cfg.seed)
    train, val = data.take(train_idx), data.take(val_idx)
    rng = np.random.default_rng(cfg.seed)
    with torch_threads(cfg.num_threads):
        classifier = _ModeModel(data.kind, len(data.class_names), cfg)
        params = classifier.trainable()
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate(data.kind), weight_decay=0.0)
        started = time.perf_counter()
        if cfg.mode == "frozen":
            history = _fit_head(classifier, train, cfg, rng, opt, on_step, should_stop)
            with torch.inference_mode():
                predicted = classifier.head(classifier.frozen_features(val.inputs)).argmax(-1).numpy()
        else:
            history = _fit_backbone(classifier, train, cfg, rng, opt, on_step, should_stop)
            predicted = _predict(classifier, val)
        seconds = time.perf_counter() - started
    from sklearn.metrics import confusion_matrix

    confusion = confusion_matrix(val.labels, predicted, labels=list(range(len(data.class_names))))
    return ClassifierResult(
        mode=cfg.mode,
        kind=data.kind,
        accuracy=float(np.mean(predicted == val.labels)),
        confusion=confusion.tolist(),
        class_names=list(data.class_names),
        n_train=len(train),
        n_val=len(val),
        trainable_params=sum(p.numel() for p in params),
        total_params=classifier.total_params,
        train_seconds=seconds,
        train_loss=history[-1],
        history=history,
    )


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _fit_head(classifier, train, cfg, rng, opt, on_step, should_stop) -> list[float]:  # noqa: ANN001
    """Linear head on features computed once (the backbone never runs again in training)."""
    feats = classifier.frozen_features(train.inputs)  # (N, D)
    labels = torch.from_numpy(train.labels)
    epochs = cfg.epochs * 20  # a linear head on cached features is cheap: give it enough steps
    history = []
    for epoch in range(epochs):
        if should_stop is not None and should_stop():
            raise TrainingCancelledError("stopped during training")
        total = 0.0
        for idx in _batches(len(train), cfg.batch_size, rng):
            loss = F.cross_entropy(classifier.head(feats[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(train))
        if on_step is not None:
            on_step(epoch + 1, epochs, {"loss": history[-1]})
    return history


def _fit_backbone(classifier, train, cfg, rng, opt, on_step, should_stop) -> list[float]:  # noqa: ANN001
    """LoRA or full fine-tuning: the backbone runs forward and backward every step."""
    labels = torch.from_numpy(train.labels)
    steps = int(np.ceil(len(train) / cfg.batch_size)) * cfg.epochs
    done, history = 0, []
    bf16 = bf16_autocast_pays_off() if cfg.bf16 is None else cfg.bf16
    if train.kind == "text":  # see text_reward: eager attention trains ~2x faster under bf16 on CPU
        classifier.transformer().set_attn_implementation("eager" if bf16 else "sdpa")
    classifier.model.train()
    _freeze_batchnorm(classifier.model)
    for _ in range(cfg.epochs):
        total = 0.0
        for idx in _batches(len(train), cfg.batch_size, rng):
            if should_stop is not None and should_stop():
                raise TrainingCancelledError("stopped during training")
            inputs = [train.inputs[i] for i in idx] if train.kind == "text" else train.inputs[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = classifier.logits(classifier.encode(inputs))
            loss = F.cross_entropy(logits.float(), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            done += 1
            if on_step is not None:
                on_step(done, steps, {"loss": loss.item()})
        history.append(total / len(train))
    classifier.model.eval()
    if train.kind == "text":
        classifier.transformer().set_attn_implementation("sdpa")
    return history


@torch.inference_mode()
def _predict(classifier: _ModeModel, data: LabeledData) -> np.ndarray:
    classifier.model.eval()
    out = []
    for start in range(0, len(data), 64):
        batch = data.inputs[start : start + 64]
        out.append(classifier.logits(classifier.encode(batch)).argmax(-1).numpy())
    return np.concatenate(out)


# --- a demo image dataset, drawn by code -----------------------------------------------------

SHAPES = ("circle", "square", "triangle", "cross")


def make_shape_images(root: Path, per_class: int = 30, size: int = 64, seed: int = 0) -> dict[str, int]:
    """Write ``per_class`` PNGs of each shape (random colour, size, place, background) to ``root/<shape>/``.

    Colour says nothing about the class, so a classifier has to see the shape.
    """
    from PIL import Image, ImageDraw

    if per_class < 2:
        raise InvalidInputError(f"per_class must be at least 2, got {per_class}")
    rng = np.random.default_rng(seed)
    counts = {}
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            background = tuple(int(v) for v in rng.integers(0, 120, 3))
            colour = tuple(int(v) for v in rng.integers(130, 256, 3))
            img = Image.new("RGB", (size, size), background)
            draw = ImageDraw.Draw(img)
            r = rng.uniform(0.18, 0.38) * size
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            if shape == "circle":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif shape == "square":
                draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif shape == "triangle":
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            else:
                w = r / 3
                draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
                draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
            noise = rng.integers(-12, 13, (size, size, 3))
            pixels = np.clip(np.asarray(img).astype(np.int16) + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            atomic_write(folder / f"{shape}-{i:03d}.png", lambda fh, image=image: image.save(fh, format="PNG"))
        counts[shape] = per_class
    return counts
