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
    assert lines[0].startswith("text classifier, mode frozen: held-out accuracy ")
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
