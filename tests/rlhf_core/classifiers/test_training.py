"""Transfer-learning classifiers: datasets, the three modes on text and images, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlhf_core.classifiers.training import (
    SHAPES,
    ClassifierConfig,
    _ModeModel,
    image_dataset,
    make_shape_images,
    stratified_split,
    text_dataset,
    train_classifier,
)
from rlhf_core.demo_data.text import sentiment_csv_path
from rlhf_core.errors import InvalidInputError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    assert make_shape_images(root, per_class=6, size=32) == dict.fromkeys(SHAPES, 6)
    return root


@pytest.fixture(scope="module")
def sentiment_subset():
    data = text_dataset(sentiment_csv_path())
    return data.take(np.arange(48))  # 24 positive, 24 negative (the CSV alternates)


def test_packaged_sentiment_csv_has_200_balanced_lines() -> None:
    data = text_dataset(sentiment_csv_path())
    assert len(data) == 200 and data.class_names == ("negative", "positive")
    assert np.bincount(data.labels).tolist() == [100, 100]
    assert len(set(data.inputs)) == 200


def test_shape_images_load_one_class_per_folder(shapes: Path) -> None:
    data = image_dataset(shapes, size=32)
    assert data.class_names == tuple(sorted(SHAPES))
    assert data.inputs.shape == (24, 32, 32, 3) and data.inputs.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [6, 6, 6, 6]


def test_bad_datasets_say_what_is_wrong(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("sentence,label\nhi,a\n")
    with pytest.raises(ValueError, match="column\\(s\\) text missing"):
        text_dataset(csv)
    csv.write_text("text,label\nhi,a\n,b\n")
    with pytest.raises(ValueError, match="line 3 has an empty text or label"):
        text_dataset(csv)
    with pytest.raises(InvalidInputError, match="rlhf make-demo-images"):
        image_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="mode must be one of frozen, lora, full"):
        ClassifierConfig(mode="half")


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = np.repeat(np.arange(4), 6)
    train, val = stratified_split(labels, 0.25, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(24))
    assert set(labels[train]) == set(labels[val]) == {0, 1, 2, 3}


@pytest.mark.slow  # fits a backbone per mode
@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_text_modes_train_and_report_accuracy_and_confusion(sentiment_subset, mode: str) -> None:
    config = ClassifierConfig(mode=mode, epochs=2, max_length=32, num_threads=1)
    steps: list[int] = []

    result = train_classifier(sentiment_subset, config, on_step=lambda d, t, m: steps.append(d))

    assert result.n_train + result.n_val == 48 and result.n_val == 12
    confusion = np.array(result.confusion)
    assert confusion.shape == (2, 2) and confusion.sum() == 12
    assert result.accuracy == pytest.approx(np.trace(confusion) / 12)
    assert steps and steps[-1] == len(steps)
    if mode == "frozen":
        assert result.trainable_params == 384 * 2 + 2
    elif mode == "lora":
        assert 0 < result.trainable_fraction < 0.01
    else:
        assert result.trainable_params == result.total_params


def test_frozen_minilm_features_separate_the_sentiment_reviews() -> None:
    result = train_classifier(text_dataset(sentiment_csv_path()), ClassifierConfig(mode="frozen", num_threads=1))
    assert result.n_val == 50 and result.accuracy >= 0.85


@pytest.mark.slow  # fits a backbone per mode
@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_image_modes_train_and_report_accuracy_and_confusion(shapes: Path, mode: str) -> None:
    data = image_dataset(shapes, size=32)
    config = ClassifierConfig(mode=mode, epochs=2, batch_size=8, image_size=32, num_threads=1)

    result = train_classifier(data, config)

    assert result.class_names == sorted(SHAPES) and result.n_val == 6
    assert np.array(result.confusion).shape == (4, 4) and np.array(result.confusion).sum() == 6
    assert result.accuracy == pytest.approx(np.trace(np.array(result.confusion)) / 6)  # the diagonal's share
    if mode == "frozen":
        assert result.trainable_params == 1280 * 4 + 4
    elif mode == "lora":
        assert 0 < result.trainable_fraction < 0.1
    else:
        assert result.trainable_params == result.total_params


def test_image_lora_targets_pointwise_convolutions_and_keeps_the_base() -> None:
    adapter = _ModeModel("image", 4, ClassifierConfig(mode="lora", rank=2))
    names = [n for n, p in adapter.model.named_parameters() if p.requires_grad]
    assert any("_project_conv.lora_A" in n for n in names) and any("_expand_conv.lora_B" in n for n in names)
    assert not any("_depthwise_conv" in n for n in names)
    assert all("lora_" in n or "classifier" in n for n in names)
    adapter.model.eval()  # drop-connect is random in training mode
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode(), adapter.model.disable_adapter():
        base_out = adapter.model(x)
    with torch.inference_mode():
        lora_out = adapter.model(x)
    torch.testing.assert_close(lora_out, base_out)  # B starts at zero: LoRA is a no-op at initialisation
