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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlhf_core.backbones.text import (
    check_backbone,
    load_sequence_classifier,
    load_tokenizer,
    quiet_transformers,
    torch_threads,
)
from rlhf_core.backbones.vision import CNN_LORA_TARGETS, efficientnet_trunk_for_lora
from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.devices import bf16_pays_off, resolve_device
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
    backbone: str = "minilm"
    """Text backbone: the packaged MiniLM or a Hugging Face model folder on disk."""
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
    dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    target_modules: tuple[str, ...] | None = None
    """Layers that get LoRA adapters (names inside the backbone); None: MiniLM's ``query`` and
    ``value``, EfficientNet-Lite0's pointwise convolutions (:data:`CNN_LORA_TARGETS`)."""
    val_fraction: float = 0.25
    """Share of the examples held out, stratified by class."""
    max_length: int = 64
    """Tokens per text."""
    image_size: int = 64
    """Images are resized to this square size."""
    bf16: bool | None = None
    """bfloat16 autocast when training the backbone: None = where the device multiplies bfloat16
    fast (AMX, AVX512-BF16, recent CUDA GPUs)."""
    num_threads: int | None = None
    """Intra-op threads (None: torch's default)."""
    seed: int = 0
    """Seed of the split, the head's initialisation and the batch order."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.rank < 1:
            raise InvalidInputError("epochs, batch_size and rank must be at least 1")
        if self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"alpha must be positive and dropout in [0, 1), got {self.alpha}, {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise InvalidInputError("target_modules must name at least one layer, e.g. query,value")
        check_backbone(self.backbone)
        if self.lr is not None and not 0 < self.lr < 1:
            raise InvalidInputError(f"lr must lie in (0, 1), got {self.lr}")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise InvalidInputError(f"val_fraction must lie in [0.05, 0.5], got {self.val_fraction}")
        if not 8 <= self.max_length <= 512 or not 32 <= self.image_size <= 512:
            raise InvalidInputError("max_length must lie in 8..512 and image_size in 32..512")

    def learning_rate(self, kind: str) -> float:
        return self.lr if self.lr is not None else _DEFAULT_LR[(kind, self.mode)]

    def targets(self, kind: str) -> list[str] | str | None:
        """The LoRA target modules for a backbone of ``kind``."""
        if self.target_modules is not None:
            return list(self.target_modules)
        if kind == "text":  # MiniLM's attention; another model: PEFT's default for its architecture
            return ["query", "value"] if self.backbone == "minilm" else None
        return CNN_LORA_TARGETS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = None if self.target_modules is None else list(self.target_modules)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassifierConfig:
        targets = data.get("target_modules")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "target_modules": None if targets is None else tuple(targets)})


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
    classifier: Any = field(default=None, repr=False, compare=False)
    """The trained :class:`TrainedClassifier` (not in ``to_json``)."""
    id: int | None = None
    """Its id in the studio's registry, once registered."""

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_params / self.total_params

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "classifier"}
        return {**data, "trainable_fraction": self.trainable_fraction}


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

    def __init__(self, kind: str, n_classes: int, cfg: ClassifierConfig, device: str | None = None) -> None:
        self.kind, self.cfg = kind, cfg
        self.device = resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if kind == "text":
                self.tokenizer = load_tokenizer(cfg.backbone)
                self.model: nn.Module = load_sequence_classifier(
                    cfg.backbone, n_classes, seed=cfg.seed, pad_token_id=self.tokenizer.pad_token_id
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

                lora = LoraConfig(
                    task_type="SEQ_CLS" if kind == "text" else None,
                    r=cfg.rank,
                    lora_alpha=cfg.alpha,
                    lora_dropout=cfg.dropout,
                    target_modules=cfg.targets(kind),
                    modules_to_save=["classifier"] if kind == "image" or cfg.backbone == "minilm" else None,
                )
                try:
                    with quiet_transformers():
                        self.model = get_peft_model(self.model, lora)
                except ValueError as exc:  # PEFT: "Target modules {...} not found in the base model"
                    raise InvalidInputError(
                        f"LoRA target modules {cfg.targets(kind)} do not fit the {kind} backbone: {exc}"
                    ) from exc
        self.model.to(self.device)
        if cfg.mode == "frozen":
            self.head.to(self.device)

    def cpu_module(self) -> tuple[nn.Module, nn.Module | None, str]:
        """(model, head or None, mode) on the CPU, LoRA merged: for an export."""
        model = self.model.merge_and_unload() if self.cfg.mode == "lora" else self.model
        head = self.head.cpu() if self.cfg.mode == "frozen" else None
        return model.cpu().eval(), head, self.cfg.mode

    def transformer(self) -> Any:
        """The transformers model inside (under PEFT's wrapper in lora mode)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def trainable(self) -> list[nn.Parameter]:
        if self.cfg.mode == "frozen":
            return list(self.head.parameters())
        return [p for p in self.model.parameters() if p.requires_grad]

    def encode(self, inputs: Any) -> Any:
        """Model-ready inputs on the model's device: token ids (text) or a float image tensor."""
        if self.kind == "text":
            return self.tokenizer(
                list(inputs), truncation=True, max_length=self.cfg.max_length, padding=True, return_tensors="pt"
            ).to(self.device)
        return _images_to_tensor(inputs).to(self.device)

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
                predicted = classifier.head(classifier.frozen_features(val.inputs)).argmax(-1).cpu().numpy()
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
        classifier=TrainedClassifier(classifier, tuple(data.class_names)),
    )


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _fit_head(classifier, train, cfg, rng, opt, on_step, should_stop) -> list[float]:  # noqa: ANN001
    """Linear head on features computed once (the backbone never runs again in training)."""
    feats = classifier.frozen_features(train.inputs)  # (N, D)
    labels = torch.from_numpy(train.labels).to(classifier.device)
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
    labels = torch.from_numpy(train.labels).to(classifier.device)
    steps = int(np.ceil(len(train) / cfg.batch_size)) * cfg.epochs
    done, history = 0, []
    bf16 = bf16_pays_off(classifier.device) if cfg.bf16 is None else cfg.bf16
    switch = train.kind == "text" and classifier.cfg.backbone == "minilm"  # another backbone keeps its own
    if switch:  # see text_reward: eager attention trains ~2x faster under bf16 on CPU
        eager = bf16 and classifier.device.type == "cpu"
        classifier.transformer().set_attn_implementation("eager" if eager else "sdpa")
    classifier.model.train()
    _freeze_batchnorm(classifier.model)
    for _ in range(cfg.epochs):
        total = 0.0
        for idx in _batches(len(train), cfg.batch_size, rng):
            if should_stop is not None and should_stop():
                raise TrainingCancelledError("stopped during training")
            inputs = [train.inputs[i] for i in idx] if train.kind == "text" else train.inputs[idx]
            with torch.autocast(classifier.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = classifier.logits(classifier.encode(inputs))
            loss = F.cross_entropy(logits.float(), labels[torch.from_numpy(idx).to(classifier.device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            done += 1
            if on_step is not None:
                on_step(done, steps, {"loss": loss.item()})
        history.append(total / len(train))
    classifier.model.eval()
    if switch:
        classifier.transformer().set_attn_implementation("sdpa")
    return history


@torch.inference_mode()
def _predict(classifier: _ModeModel, data: LabeledData) -> np.ndarray:
    classifier.model.eval()
    out = []
    for start in range(0, len(data), 64):
        batch = data.inputs[start : start + 64]
        out.append(classifier.logits(classifier.encode(batch)).argmax(-1).cpu().numpy())
    return np.concatenate(out)


# --- a trained classifier: predict, save, load, export ---------------------------------------

CLASSIFIER_FILE, HEAD_FILE, WEIGHTS_FILE = "classifier.json", "head.safetensors", "model.safetensors"


class TrainedClassifier:
    """A trained classifier that predicts, saves (safetensors; PEFT's adapter format in lora
    mode) and loads back to the same predictions."""

    def __init__(self, model: _ModeModel, class_names: tuple[str, ...]) -> None:
        self.model, self.class_names = model, class_names

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def mode(self) -> str:
        return self.model.cfg.mode

    @torch.inference_mode()
    def predict_proba(self, inputs: Any, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, C) of texts (a list) or uint8 images (N, H, W, 3)."""
        m = self.model
        m.model.eval()
        if self.kind == "image":
            inputs = np.asarray(inputs)
            if inputs.ndim != 4 or inputs.shape[-1] != 3 or inputs.dtype != np.uint8:
                raise InvalidInputError(f"expected uint8 images (N, H, W, 3), got {inputs.dtype} {inputs.shape}")
            size = m.cfg.image_size
            if inputs.shape[1:3] != (size, size):
                inputs = resize_images(inputs, size)
        out = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            if m.cfg.mode == "frozen":
                logits = m.head(m.frozen_features(batch))
            else:
                logits = m.logits(m.encode(batch))
            out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def save(self, folder: Path) -> None:
        """``classifier.json``, then the trained weights: ``head.safetensors`` (frozen), PEFT's
        ``adapter_config.json`` + ``adapter_model.safetensors`` (lora) or ``model.safetensors`` (full)."""
        import json

        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        m = self.model
        if m.cfg.mode == "frozen":
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in m.head.state_dict().items()}, str(folder / HEAD_FILE)
            )
        elif m.cfg.mode == "lora":
            with quiet_transformers():
                m.model.save_pretrained(str(folder), save_embedding_layers=False)
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in m.model.state_dict().items()}
            save_file(state, str(folder / WEIGHTS_FILE))
        meta = {"kind": self.kind, "class_names": list(self.class_names), "config": m.cfg.to_json()}
        (folder / CLASSIFIER_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> TrainedClassifier:
        """A classifier written by :meth:`save`: the backbone rebuilt, the trained weights loaded."""
        import json

        from safetensors.torch import load_file

        meta_path = folder / CLASSIFIER_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: {folder} does not hold a classifier")
        meta = json.loads(meta_path.read_text())
        cfg = ClassifierConfig.from_json(meta["config"])
        m = _ModeModel(meta["kind"], len(meta["class_names"]), cfg, device)
        if cfg.mode == "frozen":
            m.head.load_state_dict(load_file(str(folder / HEAD_FILE), device=str(m.device)))
        elif cfg.mode == "lora":
            from peft import set_peft_model_state_dict

            state = load_file(str(folder / "adapter_model.safetensors"), device=str(m.device))
            result = set_peft_model_state_dict(m.model, state)
            if getattr(result, "unexpected_keys", None):
                raise ValueError(f"{folder}: adapter weights that fit no layer: {result.unexpected_keys[:3]}")
        else:
            m.model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=str(m.device)))
        m.model.eval()
        return cls(m, tuple(meta["class_names"]))

    def export_merged(self, folder: Path) -> str:
        """A standalone export; returns its form. Text (lora, full): a plain Hugging Face model
        folder (LoRA merged, the labels as ``id2label``, the tokenizer) that
        ``AutoModelForSequenceClassification`` loads. Images, and text in frozen mode (a head on
        mean-pooled sentence embeddings, which no transformers class computes): a
        ``torch.export`` program ``classifier.pt2`` of uint8 images (N, H, W, 3), or of token
        ids and attention mask (N, T), to class probabilities."""
        import copy

        m = self.model
        folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "text" and m.cfg.mode != "frozen":
            model = copy.deepcopy(m.model)
            if m.cfg.mode == "lora":
                model = model.merge_and_unload()
            model = model.cpu()
            model.config.id2label = dict(enumerate(self.class_names))
            model.config.label2id = {n: i for i, n in enumerate(self.class_names)}
            with quiet_transformers():
                model.save_pretrained(str(folder), safe_serialization=True)
                m.tokenizer.model_max_length = m.cfg.max_length
                m.tokenizer.save_pretrained(str(folder))
            return "transformers"
        parts = copy.deepcopy(m).cpu_module()
        module = (_ImageProbabilities(parts) if self.kind == "image" else _TextProbabilities(parts)).eval()
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        if self.kind == "image":
            example: tuple[torch.Tensor, ...] = (
                torch.zeros((2, m.cfg.image_size, m.cfg.image_size, 3), dtype=torch.uint8),
            )
            shapes: tuple[Any, ...] = ({0: batch},)
        else:
            tokens = m.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
            example = (tokens["input_ids"], tokens["attention_mask"])
            length = torch.export.Dim("length", min=2, max=m.cfg.max_length)
            shapes = ({0: batch, 1: length}, {0: batch, 1: length})
            with quiet_transformers():
                m.tokenizer.model_max_length = m.cfg.max_length
                m.tokenizer.save_pretrained(str(folder))
        with torch.no_grad():
            program = torch.export.export(module, example, dynamic_shapes=shapes)
        torch.export.save(program, str(folder / "classifier.pt2"))
        return "program"


class _ImageProbabilities(nn.Module):
    """uint8 images (N, H, W, 3) -> class probabilities, as one torch module for ``torch.export``."""

    def __init__(self, parts: tuple[nn.Module, nn.Module | None, str]) -> None:
        super().__init__()
        self.model, self.head, _ = parts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        logits = self.head(self.model.features(x)) if self.head is not None else self.model(x)
        return torch.softmax(logits.float(), dim=-1)


class _TextProbabilities(nn.Module):
    """Token ids and attention mask (N, T) -> class probabilities, for ``torch.export``."""

    def __init__(self, parts: tuple[nn.Module, nn.Module | None, str]) -> None:
        super().__init__()
        self.model, self.head, _ = parts

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.head is not None:  # mean-pooled embeddings, then the linear head
            hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).float()
            logits = self.head((hidden * weights).sum(1) / weights.sum(1))
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images (N, H, W, 3) resized to ``size`` x ``size`` (bilinear, as the datasets load them)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in images])


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
