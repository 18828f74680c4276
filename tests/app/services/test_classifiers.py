"""`rlhf make-demo-images`, `rlhf train-classifier` and the Classifiers page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from app.cli import cli
from app.config import Settings, Studio
from app.services import jobs

PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "views" / "classifiers.py"


def _rlhf(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)


@pytest.mark.slow  # trains a classifier
def test_make_demo_images_then_train_an_image_classifier(tmp_path: Path) -> None:
    result = _rlhf(tmp_path / "data", "make-demo-images", str(tmp_path / "shapes"), "--per-class", "5", "--size", "32")
    assert result.exit_code == 0, result.output
    assert "wrote 20 images of 4 classes (circle, square, triangle, cross)" in result.stdout
    assert len(list((tmp_path / "shapes" / "circle").glob("*.png"))) == 5

    args = ["train-classifier", "--kind", "image", "--data", str(tmp_path / "shapes"), "--epochs", "1", "--json"]
    result = _rlhf(tmp_path / "data", *args)

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mode"] == "frozen" and out["class_names"] == ["circle", "cross", "square", "triangle"]
    assert sum(map(sum, out["confusion"])) == out["n_val"] == 5
    correct = sum(out["confusion"][i][i] for i in range(4))  # the accuracy is the confusion matrix's diagonal
    assert out["accuracy"] == pytest.approx(correct / 5)
    assert out["trainable_params"] == 1280 * 4 + 4


@pytest.mark.slow  # trains a classifier
def test_train_classifier_on_the_packaged_sentiment_csv_prints_a_confusion_matrix(tmp_path: Path) -> None:
    result = _rlhf(tmp_path, "train-classifier", "--kind", "text", "--mode", "frozen", "--epochs", "1")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("classifier #1 (text, mode frozen): held-out accuracy ")  # kept in the registry
    assert "on 50 examples (150 trained on)" in lines[0]
    assert lines[1] == "confusion matrix (rows: true class, columns: predicted):"
    assert lines[2].split() == ["negative", "positive"]
    assert lines[3].split()[0] == "negative" and sum(int(v) for v in lines[3].split()[1:]) == 25


def test_a_csv_without_a_text_column_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("sentence,label\nhello,a\n")
    result = _rlhf(tmp_path, "train-classifier", "--data", str(csv))
    assert result.exit_code == 1
    assert "column(s) text missing; the header must be text,label" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_classifiers_page_trains_on_the_shapes_and_draws_the_confusion_matrix(tmp_path: Path, studio_env) -> None:
    studio_env(tmp_path / "data")
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Classifiers" and len(at.metric) == 0

    at.radio(key="classifier_dataset").set_value("shapes")
    at.radio(key="classifier_mode").set_value("frozen")
    at.number_input(key="classifier_epochs").set_value(1)
    at.button(key="classifier_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="classifier_train").disabled  # one run at a time while the job works
    deadline = time.monotonic() + 300
    while not at.metric and time.monotonic() < deadline:  # the job runs in its own process
        time.sleep(1.0)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Job #1" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    job = jobs.latest(Studio(Settings.from_env(tmp_path / "data")), None, "train-classifier")
    assert job is not None and job.result is not None
    confusion = job.result["confusion"]
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    assert sum(map(sum, confusion)) == 30
    assert metrics["Held-out accuracy"] == f"{correct / 30:.3f}"  # the page shows the job's own accuracy
    assert correct / 30 > 0.5  # four distinct shapes: well above chance (0.25) even after one epoch
    assert metrics["Examples"] == "90 + 30"
    titles = [json.loads(c.proto.spec).get("title", {}) for c in at.get("vega_lite_chart")]
    titles = [t.get("text") if isinstance(t, dict) else t for t in titles]
    assert "Confusion matrix (held-out examples)" in titles
    assert (tmp_path / "data" / "demo-images" / "shapes" / "triangle").is_dir()


LOAD_TEXT_CLASSIFIER = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, texts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
with torch.no_grad():
    probs = model(**tokenizer(texts, truncation=True, padding=True, return_tensors="pt")).logits.softmax(-1)
print(json.dumps({"labels": [model.config.id2label[i] for i in range(probs.shape[1])], "probs": probs.tolist()}))
"""


@pytest.mark.slow  # trains two classifiers
def test_classifiers_stay_in_the_registry_predict_and_export(tmp_path: Path) -> None:
    import subprocess
    import sys

    import numpy as np

    from app.services import classifiers as service

    data = tmp_path / "data"
    args = ["train-classifier", "--mode", "lora", "--epochs", "2", "--rank", "4", "--alpha", "8", "--dropout", "0.05"]
    trained = _rlhf(data, *args, "--target-modules", "query,key,value", "--json")
    assert trained.exit_code == 0, trained.output
    first = json.loads(trained.stdout)
    assert first["id"] == 1 and first["trainable_params"] > 0

    listed = json.loads(_rlhf(data, "classifiers", "--json").stdout)
    assert [(c["id"], c["kind"], c["mode"], c["classes"]) for c in listed] == [
        (1, "text", "lora", ["negative", "positive"])
    ]
    studio = Studio(Settings.from_env(data))
    record, _ = service.load_classifier(studio, 1)
    assert (record.config["rank"], record.config["alpha"], record.config["dropout"]) == (4, 8.0, 0.05)
    assert record.config["target_modules"] == ["query", "key", "value"]
    assert (data / record.path / "adapter_config.json").exists()  # PEFT's format

    texts = ["A wonderful evening, lovely staff.", "Cold food, rude waiter, never again."]
    predicted = json.loads(_rlhf(data, "predict", "--classifier", "1", *texts, "--json").stdout)
    service._loaded.clear()  # a fresh process: reloaded from the registry's files
    again = service.predict(studio, 1, texts)
    for p, q in zip(predicted, again, strict=True):
        assert p["label"] == q.label and p["probabilities"] == pytest.approx(q.probabilities, abs=1e-6)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)

    exported = _rlhf(data, "export-model", "--classifier", "1", "-o", str(tmp_path / "cls"), "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["form"] == "transformers"
    done = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_TEXT_CLASSIFIER, str(tmp_path / "cls"), json.dumps(texts)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["labels"] == ["negative", "positive"]
    want = np.array([[q.probabilities["negative"], q.probabilities["positive"]] for q in again])
    assert np.abs(np.array(out["probs"]) - want).max() <= 1e-4

    # an image classifier: files in, a torch.export program out
    _rlhf(data, "make-demo-images", str(tmp_path / "shapes"), "--per-class", "6", "--size", "48")
    assert (
        _rlhf(
            data, "train-classifier", "--kind", "image", "--data", str(tmp_path / "shapes"), "--epochs", "1"
        ).exit_code
        == 0
    )
    files = (
        sorted((tmp_path / "shapes" / "circle").glob("*.png"))[:2]
        + sorted((tmp_path / "shapes" / "cross").glob("*.png"))[:1]
    )
    shown = _rlhf(data, "predict", "--classifier", "2", *map(str, files))
    assert shown.exit_code == 0 and len(shown.stdout.splitlines()) == 3
    refused = CliRunner().invoke(
        cli, ["--data-dir", str(data), "predict", "--classifier", "2", str(tmp_path / "nope.png")]
    )
    assert refused.exit_code == 1 and "nope.png does not exist" in refused.output
    missing = CliRunner().invoke(cli, ["--data-dir", str(data), "predict", "--classifier", "9", "x"])
    assert missing.exit_code == 1 and "no classifier #9; classifiers: 2, 1" in missing.output
    assert _rlhf(data, "export-model", "--classifier", "2", "-o", str(tmp_path / "img")).exit_code == 0
    import torch

    from rlhf_core.classifiers.training import resize_images

    program = torch.export.load(str(tmp_path / "img" / "classifier.pt2")).module()
    images = np.stack([np.asarray(__import__("PIL.Image").Image.open(f).convert("RGB")) for f in files])
    probs = program(torch.from_numpy(resize_images(images, 64))).detach().numpy()
    expected = service.predict(studio, 2, [str(f) for f in files])
    assert (
        np.abs(probs - np.array([[p.probabilities[c] for c in sorted(p.probabilities)] for p in expected])).max() < 1e-4
    )
