"""LoRA text reward model: BT loss with ties, batching, LoRA no-op at init, frozen base, merge,
adapter save/load, learning a tiny separable preference set, cancel."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rlhf_core.backbones.text import load_sequence_classifier
from rlhf_core.callbacks import TrainingCancelledError
from rlhf_core.demo_data.text import sentiment_examples
from rlhf_core.rewards.text import (
    TextPreferences,
    TextRewardConfig,
    TextRewardModel,
    length_batches,
    pad_batch,
    preference_loss,
)

# Small and fast: short sequences, 5 epochs of 2 batches.
TINY = TextRewardConfig(rank=4, alpha=8, max_length=32, batch_size=12, epochs=5, lr=3e-3, bf16=False, seed=0)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_preference_loss_is_bce_with_ties_margin_and_centring() -> None:
    r_a = torch.tensor([1.0, 0.0, 2.0])
    r_b = torch.tensor([0.0, 1.0, 2.0])
    pref = torch.tensor([1.0, 0.0, 0.5])
    # A wins by 1 and is preferred; B wins by 1 and is preferred; a tie scored equal.
    expected = (_softplus(-1.0) + _softplus(-1.0) + math.log(2.0)) / 3
    assert preference_loss(r_a, r_b, pref).item() == pytest.approx(expected, rel=1e-6)

    # A tie between unequal rewards costs half of each direction: 0.5 softplus(-2) + 0.5 softplus(2).
    tie = preference_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.5]))
    assert tie.item() == pytest.approx(0.5 * _softplus(-2.0) + 0.5 * _softplus(2.0), rel=1e-6)

    # Margin: TRL's -logsigmoid(r_chosen - r_rejected - m) whichever side is chosen; ties untouched.
    with_margin = preference_loss(r_a, r_b, pref, margin=0.5)
    assert with_margin.item() == pytest.approx((_softplus(-0.5) + _softplus(-0.5) + math.log(2.0)) / 3, rel=1e-6)
    chosen, rejected = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.5])
    trl = -torch.nn.functional.logsigmoid(chosen - rejected - 0.5).mean()
    ours = preference_loss(chosen, rejected, torch.ones(2), margin=0.5)
    assert ours.item() == pytest.approx(trl.item(), rel=1e-6)

    # Centring adds c * mean((r_a + r_b)^2) = 0.01 * (1 + 1 + 16) / 3.
    centred = preference_loss(r_a, r_b, pref, center_coefficient=0.01)
    assert centred.item() == pytest.approx(expected + 0.01 * 18 / 3, rel=1e-6)


def test_length_batches_cover_every_pair_once_with_little_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=103)
    batches = length_batches(lengths, 8, rng, window=50)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert all(1 <= len(b) <= 8 for b in batches)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = np.array_split(rng.permutation(103), 13)
    assert padded < 0.8 * sum(len(b) * lengths[b].max() for b in shuffled)  # sorting saves padding
    again = length_batches(lengths, 8, np.random.default_rng(1), window=2)
    assert [b.tolist() for b in again] != [b.tolist() for b in batches]  # order varies with the rng


def test_pad_batch_right_pads_with_the_pad_id() -> None:
    ids, mask = pad_batch([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rank", 0, "rank must be at least 1"),
        ("dropout", 1.0, r"dropout must lie in \[0, 1\)"),
        ("max_length", 4096, "max_length must lie in 8..512"),
        ("target_modules", (), "target_modules must name at least one layer"),
        ("backbone", "gpt-9", "unknown backbone 'gpt-9'"),
        ("margin", -1.0, "must be >= 0"),
    ],
)
def test_config_refuses_bad_values_with_a_precise_message(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TextRewardConfig(**{field: value})


def test_preferences_validate_lengths_and_values() -> None:
    with pytest.raises(ValueError, match="same length"):
        TextPreferences.from_lists(["p"], ["a", "b"], ["c"], [1.0])
    with pytest.raises(ValueError, match="within"):
        TextPreferences.from_lists(["p"], ["a"], ["b"], [2.0])
    data = TextPreferences.chosen_rejected(["p", "q"], ["a", "b"], ["c", "d"])
    assert data.pref.tolist() == [1.0, 1.0] and data.take([1]).responses_a == ("b",)


def _sentiment_pairs(offset: int, n: int) -> TextPreferences:
    """Positive review preferred to the negative one on the same topic (A = chosen)."""
    texts, labels = sentiment_examples()
    pos = [t for t, lab in zip(texts, labels, strict=True) if lab == "positive"]
    neg = [t for t, lab in zip(texts, labels, strict=True) if lab == "negative"]
    idx = range(offset, offset + n)
    # Alternate sides so the head cannot learn "A wins".
    a = [pos[i] if i % 2 else neg[i] for i in idx]
    b = [neg[i] if i % 2 else pos[i] for i in idx]
    return TextPreferences.from_lists(["How was it?"] * n, a, b, [1.0 if i % 2 else 0.0 for i in idx])


def _accuracy(model: TextRewardModel, data: TextPreferences) -> float:
    return float(np.mean((model.predict_pref(data) > 0.5) == (data.pref == 1)))


@pytest.fixture(scope="module")
def trained() -> dict:
    """A model trained on 24 pairs, with its parameters before training and its held-out accuracy."""
    model = TextRewardModel(TINY)
    held_out = _sentiment_pairs(60, 40)
    before = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    accuracy_before = _accuracy(model, held_out)
    steps: list[tuple[int, int]] = []
    metrics = model.fit(
        _sentiment_pairs(0, 24), rng=np.random.default_rng(0), on_step=lambda d, t, m: steps.append((d, t))
    )
    return {
        "model": model,
        "before": before,
        "metrics": metrics,
        "steps": steps,
        "held_out": held_out,
        "accuracy_before": accuracy_before,
    }


def test_lora_is_a_no_op_at_initialisation() -> None:
    model = TextRewardModel(TINY)
    base = load_sequence_classifier("minilm", 1, seed=TINY.seed, pad_token_id=model.tokenizer.pad_token_id).eval()
    prompts, responses = ["How was it?"] * 3, ["Great food.", "Awful, never again.", "It was fine I guess."]
    ids, mask = pad_batch(model.encode(prompts, responses), model.tokenizer.pad_token_id)
    with torch.inference_mode():
        expected = base(input_ids=ids, attention_mask=mask).logits.squeeze(-1).numpy()
    np.testing.assert_allclose(model.score(prompts, responses), expected, atol=1e-5)
    # The model's padding is explicit: the config names the tokenizer's pad token.
    assert model.model.config.pad_token_id == model.tokenizer.pad_token_id == 0


def test_training_moves_only_lora_and_the_head_and_learns(trained: dict) -> None:
    model, before, metrics = trained["model"], trained["before"], trained["metrics"]
    moved = {n for n, p in model.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved, "nothing trained"
    assert all("lora_" in n or "modules_to_save" in n for n in moved), sorted(moved)[:5]
    assert any("lora_B" in n for n in moved) and any("modules_to_save" in n for n in moved)
    # The original head (kept by PEFT next to the trained copy) and every base weight are untouched.
    assert not any("original_module" in n for n in moved)
    assert metrics["trainable_fraction"] < 0.01
    adapter = [n for n in before if "lora_" in n or "modules_to_save" in n]
    assert metrics["trainable_params"] == sum(before[n].numel() for n in adapter)
    assert trained["steps"][-1] == (10, 10) and len(trained["steps"]) == 10
    assert metrics["pairs_per_s"] > 0 and metrics["bf16"] is False
    assert _accuracy(model, trained["held_out"]) >= 0.9 > trained["accuracy_before"] + 0.2


def test_merged_and_unmerged_models_agree(trained: dict) -> None:
    model = trained["model"]
    prompts, responses = ["How was it?"] * 2, ["The soup was lovely.", "Cold soup and a rude waiter."]
    merged = model.merged()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    ids, mask = pad_batch(model.encode(prompts, responses), model.tokenizer.pad_token_id)
    with torch.inference_mode():
        merged_scores = merged(input_ids=ids, attention_mask=mask).logits.squeeze(-1).numpy()
    np.testing.assert_allclose(merged_scores, model.score(prompts, responses), atol=1e-4)
    assert any("lora_" in n for n, _ in model.model.named_parameters())  # the original is not merged


def test_adapter_save_and_load_reproduce_scores_exactly(trained: dict, tmp_path: Path) -> None:
    model = trained["model"]
    model.save(tmp_path / "rm")
    files = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "reward_model.json"} <= files
    with safe_open(str(tmp_path / "rm" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("classifier" in k for k in keys) and any("lora_A" in k for k in keys)  # the head is saved too
    adapter = json.loads((tmp_path / "rm" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert adapter["target_modules"] and set(adapter["target_modules"]) == {"query", "value"}

    loaded = TextRewardModel.load(tmp_path / "rm")

    data = trained["held_out"]
    scores = model.score(data.prompts, data.responses_a)
    np.testing.assert_array_equal(loaded.score(data.prompts, data.responses_a), scores)
    assert loaded.config == model.config


def test_cancel_stops_between_steps() -> None:
    model = TextRewardModel(TINY)
    calls = iter([False, True])
    with pytest.raises(TrainingCancelledError):
        model.fit(_sentiment_pairs(0, 24), rng=np.random.default_rng(0), should_stop=lambda: next(calls))


def test_load_refuses_a_folder_without_a_text_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not hold a text reward model"):
        TextRewardModel.load(tmp_path)


@pytest.mark.slow  # fits MiniLM three times
@pytest.mark.parametrize(("pairs", "min_steps", "epochs"), [(24, 9, 5), (24, 2, 2), (48, 9, 3)])
def test_training_length_follows_the_data_when_epochs_is_not_set(pairs: int, min_steps: int, epochs: int) -> None:
    from dataclasses import replace

    model = TextRewardModel(replace(TINY, epochs=None, min_steps=min_steps))
    steps: list[tuple[int, int]] = []
    metrics = model.fit(
        _sentiment_pairs(0, pairs), rng=np.random.default_rng(0), on_step=lambda d, t, m: steps.append((d, t))
    )
    per_epoch = -(-pairs // TINY.batch_size)
    assert metrics["epochs"] == epochs and metrics["steps"] == epochs * per_epoch >= min_steps
    assert steps[-1] == (epochs * per_epoch, epochs * per_epoch)  # the progress bar's total knew it
