"""Use cases of the transfer-learning classifiers: pick a dataset, adapt a backbone, report.

Datasets: a ``text,label`` CSV (the packaged sentiment reviews by default) or a folder of
images with one sub-folder per class (the generated shapes by default, drawn into the data
folder on first use). Nothing is written to the database: a classifier run is an
experiment whose result is returned (and shown), not a registered model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Studio
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
    on_step: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ClassifierResult:
    """Adapt the pretrained backbone of ``kind`` to the dataset in ``mode`` (frozen, lora, full)."""
    from rlhf_core.classifiers.training import ClassifierConfig
    from rlhf_core.classifiers.training import train_classifier as fit

    config = ClassifierConfig(mode=mode, epochs=epochs, seed=seed)  # validates mode and epochs
    data = load_dataset(studio, kind, path, config.image_size)
    return fit(data, config, on_step=on_step, should_stop=should_stop)


def make_demo_images(folder: Path, *, per_class: int, size: int, seed: int) -> dict[str, int]:
    """Draw the shapes dataset (circle, square, triangle, cross; a sub-folder each) into ``folder``;
    images per class."""
    from rlhf_core.classifiers.training import make_shape_images

    return make_shape_images(folder, per_class=per_class, size=size, seed=seed)
