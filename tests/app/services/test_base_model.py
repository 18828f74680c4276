"""`--base-model DIR`: any Hugging Face model folder as the text backbone, here a tiny randomly
initialised causal LM with a chat template that the test builds (no download)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _text_project as tp
import _tiny_lm
import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.services import model_registry
from app.services.exports import _CHECK_MERGED

pytestmark = pytest.mark.slow


def _rlhf(data: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args])


def test_a_tiny_causal_lm_trains_as_a_reward_model_scores_and_exports(tmp_path: Path) -> None:
    base = _tiny_lm.build_tiny_causal_lm(tmp_path / "tiny-llama")
    data = tmp_path / "data"
    studio = tp.build(data)

    result = _rlhf(data, "train-reward", "--project", tp.PROJECT, "--base-model", str(base), "--lr", "5e-3", "--json")

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["kind"] == "text-lora" and metrics["backbone"] == str(base.resolve())
    assert 0 < metrics["trainable_fraction"] < 0.5
    record, model = model_registry.active_model(studio, _project_id(studio))
    assert record.config["backbone"] == str(base.resolve())
    adapter = json.loads((data / record.path / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]  # PEFT's default for Llama
    assert adapter["base_model_name_or_path"] == str(base.resolve())

    # it learned the training labels (the positive review preferred), reading the last token
    texts = tp.pairs(30)
    prompts = [tp.PROMPT] * len(texts)
    good = model.score(prompts, [g for g, _ in texts])
    bad = model.score(prompts, [b for _, b in texts])
    assert np.mean(good > bad) >= 0.75, np.mean(good > bad)
    ids = model.encode([tp.PROMPT], ["Lovely staff."])[0]
    assert model.tokenizer.decode(ids).startswith("<s> user") and model.tokenizer.pad_token == "</s>"

    model_registry._models.clear()  # reloaded from the adapter as a new process would
    again = model_registry.active_model(studio, _project_id(studio))[1]
    np.testing.assert_allclose(again.score(prompts[:5], [g for g, _ in texts[:5]]), good[:5], atol=1e-5)

    out = _rlhf(data, "export-model", "--project", tp.PROJECT, "-o", str(tmp_path / "merged"), "--json")
    assert out.exit_code == 0, out.output
    responses = [g for g, _ in texts[:4]] + [b for _, b in texts[:4]]
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHECK_MERGED, str(tmp_path / "merged")],
        input=json.dumps([[tp.PROMPT] * 8, responses]),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    want = again.score([tp.PROMPT] * 8, responses)
    assert np.abs(got - want).max() <= 1e-4


def test_a_base_model_folder_is_checked_and_backs_a_classifier(tmp_path: Path) -> None:
    base = _tiny_lm.build_tiny_causal_lm(tmp_path / "tiny", chat_template=False)
    data = tmp_path / "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    tp.build(data)

    refused = _rlhf(data, "train-reward", "--project", tp.PROJECT, "--base-model", str(empty))
    assert refused.exit_code == 1 and "has no config.json" in refused.output
    assert _rlhf(data, "train-classifier", "--kind", "image", "--base-model", str(base)).exit_code == 1

    trained = _rlhf(data, "train-classifier", "--mode", "lora", "--epochs", "1", "--base-model", str(base), "--json")
    assert trained.exit_code == 0, trained.output
    predicted = _rlhf(data, "predict", "--classifier", "1", "lovely friendly staff", "rude and cold", "--json")
    assert predicted.exit_code == 0, predicted.output
    rows = json.loads(predicted.stdout)
    assert [sorted(r["probabilities"]) for r in rows] == [["negative", "positive"]] * 2


def _project_id(studio) -> int:
    from db import repo
    from db.engine import session_scope

    with session_scope(studio.engine) as session:
        return repo.get_project(session, tp.PROJECT).id
