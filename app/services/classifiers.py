"""Use cases of the transfer-learning classifiers: pick a dataset, adapt a backbone, report.

Datasets: a ``text,label`` CSV (the packaged sentiment reviews by default) or a folder of
images with one sub-folder per class (the generated shapes by default, drawn into the data
folder on first use). A trained classifier goes into the registry: its files (safetensors;
PEFT's adapter format in lora mode) under ``classifiers/`` in the data folder, written first,
then one row (kind, mode, dataset, classes, config, metrics); ``predict`` scores new text or
images with it, ``export_classifier`` writes a standalone copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import Studio
from app.services.artifacts import export_folder, staged_folder
from app.services.model_registry import require_job_running
from db import repo
from db.engine import session_scope
from rlhf_core.errors import InvalidInputError

if TYPE_CHECKING:  # torch loads only when a classifier trains
    from rlhf_core.callbacks import ProgressFn
    from rlhf_core.classifiers.training import ClassifierResult, LabeledData

KINDS = ("text", "image")
DEMO_IMAGES_PER_CLASS = 30


def demo_images_dir(studio: Studio) -> Path:
    """The generated shapes dataset in the data folder, drawn on first use."""
    from rlhf_core.classifiers.training import SHAPES, make_shape_images

    root = studio.settings.data_dir / "demo-images" / "shapes"
    if not all((root / shape).is_dir() and any((root / shape).glob("*.png")) for shape in SHAPES):
        make_shape_images(root, per_class=DEMO_IMAGES_PER_CLASS)
    return root


def load_dataset(studio: Studio, kind: str, path: Path | None, image_size: int = 64) -> LabeledData:
    """A text CSV or an image folder; ``path`` None picks the demo dataset of ``kind``."""
    from rlhf_core.classifiers.training import image_dataset, text_dataset
    from rlhf_core.demo_data.text import sentiment_csv_path

    if kind not in KINDS:
        raise InvalidInputError(f"kind must be text or image, got {kind!r}")
    if kind == "text":
        csv = path or sentiment_csv_path()
        if not csv.is_file():
            raise InvalidInputError(f"{csv} is not a file; give a CSV with a header line text,label")
        return text_dataset(csv)
    return image_dataset(path or demo_images_dir(studio), size=image_size)


def train_classifier(
    studio: Studio,
    kind: str,
    mode: str,
    *,
    path: Path | None = None,
    epochs: int = 5,
    seed: int = 0,
    lora: dict[str, Any] | None = None,
    base_model: Path | None = None,
    on_step: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    job_id: int | None = None,
) -> ClassifierResult:
    """Adapt the pretrained backbone of ``kind`` to the dataset in ``mode`` (frozen, lora, full)
    and register it (``result.id``). ``lora``: rank, alpha, dropout, target_modules."""
    from rlhf_core.classifiers.training import ClassifierConfig
    from rlhf_core.classifiers.training import train_classifier as fit

    options = {k: v for k, v in (lora or {}).items() if v is not None}
    if "target_modules" in options:
        options["target_modules"] = tuple(options["target_modules"])
    unknown = set(options) - {"rank", "alpha", "dropout", "target_modules"}
    if unknown:
        raise InvalidInputError(f"unknown LoRA options {sorted(unknown)}; use rank, alpha, dropout, target_modules")
    if base_model is not None:
        if kind != "text":
            raise InvalidInputError("--base-model is a text backbone; image classifiers adapt EfficientNet-Lite0")
        options["backbone"] = str(Path(base_model).expanduser().resolve())
    config = ClassifierConfig(mode=mode, epochs=epochs, seed=seed, **options)  # validates every option
    data = load_dataset(studio, kind, path, config.image_size)
    from rlhf_core.threads import AdaptiveThreads

    # fewer threads where another job computes on the cores, unless the config fixes a count
    with AdaptiveThreads((config.num_threads,) if config.num_threads else None) as threads:
        result = fit(data, config, on_step=threads.ticking(on_step), should_stop=should_stop)
    if should_stop is not None and should_stop():
        from rlhf_core.callbacks import TrainingCancelledError

        raise TrainingCancelledError("stopped after training")
    dataset = (
        str(path) if path is not None else ("packaged sentiment reviews" if kind == "text" else "generated shapes")
    )
    metrics = {k: v for k, v in result.to_json().items() if k not in ("class_names", "mode", "kind", "history")}
    with staged_folder(studio.settings.data_dir / "classifiers", result.classifier.save) as folder:
        with session_scope(studio.engine, write=True) as session:
            require_job_running(session, job_id)
            record = repo.register_classifier(
                session,
                kind=kind,
                mode=mode,
                dataset=dataset,
                class_names=list(result.class_names),
                config=config.to_json(),
                metrics=metrics,
                path=studio.relative(folder),
                job_id=job_id,
            )
            result.id = record.id
    return result


def list_classifiers(studio: Studio) -> list[dict[str, Any]]:
    """The registry, newest first."""
    with session_scope(studio.engine) as session:
        records = repo.classifiers(session)
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "mode": r.mode,
            "dataset": r.dataset,
            "classes": list(r.class_names),
            "accuracy": r.metrics.get("accuracy"),
            "rank": r.config.get("rank") if r.mode == "lora" else None,
            "created_at": r.created_at,
        }
        for r in records
    ]


_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def load_classifier(studio: Studio, classifier_id: int) -> tuple[Any, Any]:
    """(record, TrainedClassifier), loaded once per process."""
    from rlhf_core.classifiers.training import TrainedClassifier

    with session_scope(studio.engine) as session:
        record = repo.get_classifier(session, classifier_id)
    folder = studio.path(record.path)
    with _loaded_lock:  # page sessions are threads of one process
        if str(folder) not in _loaded:
            _loaded.clear()  # one at a time: a backbone each
            _loaded[str(folder)] = TrainedClassifier.load(folder)
        return record, _loaded[str(folder)]


@dataclass(frozen=True)
class Prediction:
    input: str
    label: str
    probabilities: dict[str, float]


def predict(studio: Studio, classifier_id: int, inputs: list[str]) -> list[Prediction]:
    """Class and probabilities of each input: texts for a text classifier, image files for an
    image one."""
    import numpy as np

    if not inputs:
        raise InvalidInputError("give at least one input to classify (a text, or an image file)")
    record, classifier = load_classifier(studio, classifier_id)
    if record.kind == "image":
        images = np.stack([_read_image(Path(p), record.config.get("image_size", 64)) for p in inputs])
        probs = classifier.predict_proba(images)
    else:
        probs = classifier.predict_proba(list(inputs))
    names = list(record.class_names)
    return [
        Prediction(inp, names[int(np.argmax(p))], {n: float(v) for n, v in zip(names, p, strict=True)})
        for inp, p in zip(inputs, probs, strict=True)
    ]


def predict_image_files(studio: Studio, classifier_id: int, files: list[tuple[str, bytes]]) -> list[Prediction]:
    """Predictions of uploaded image files, (name, bytes) each (the Classifiers page)."""
    import io

    import numpy as np

    if not files:
        raise InvalidInputError("upload at least one image to classify")
    record, classifier = load_classifier(studio, classifier_id)
    if record.kind != "image":
        raise InvalidInputError(f"classifier #{classifier_id} classifies text, not images")
    size = int(record.config.get("image_size", 64))
    images = np.stack([_read_image(io.BytesIO(data), size, name) for name, data in files])
    probs = classifier.predict_proba(images)
    labels = list(record.class_names)
    return [
        Prediction(name, labels[int(np.argmax(p))], {c: float(v) for c, v in zip(labels, p, strict=True)})
        for (name, _), p in zip(files, probs, strict=True)
    ]


def _read_image(source: Any, size: int, name: str | None = None) -> Any:
    """An image file (a path, or a file object named ``name``) as uint8 (size, size, 3)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    label = name or str(source)
    try:
        with Image.open(source) as img:
            return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
    except FileNotFoundError:
        raise InvalidInputError(f"{label} does not exist; an image classifier takes image files") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{label} is not an image this classifier can read ({exc})") from exc


def export_classifier(studio: Studio, classifier_id: int, out: Path) -> dict[str, Any]:
    """A standalone copy of a classifier in ``out`` (a new folder): a Hugging Face model folder
    (text, lora or full: LoRA merged) or a ``torch.export`` program; written to a temporary
    folder and moved into place."""
    record, classifier = load_classifier(studio, classifier_id)
    with export_folder(out) as staging:
        form = classifier.export_merged(staging)
    out = out.expanduser()
    return {"id": record.id, "kind": record.kind, "mode": record.mode, "form": form, "path": str(out),
            "classes": list(record.class_names), "files": sorted(p.name for p in out.iterdir())}  # fmt: skip


def make_demo_images(folder: Path, *, per_class: int, size: int, seed: int) -> dict[str, int]:
    """Draw the shapes dataset (circle, square, triangle, cross; a sub-folder each) into ``folder``;
    images per class."""
    from rlhf_core.classifiers.training import make_shape_images

    return make_shape_images(folder, per_class=per_class, size=size, seed=seed)
