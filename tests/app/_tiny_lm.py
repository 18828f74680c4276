"""A tiny randomly initialised causal LM with a chat template, built in a folder (no download):
the stand-in for "any Hugging Face model on disk" in the --base-model tests."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a staff food room was were and but very not good great lovely friendly clean superb delicious "
    "bad awful rude cold dirty terrible slow noisy how it is fine ok we loved hated service place hotel "
    "restaurant night stay again never always would come back user assistant"
)


def build_tiny_causal_lm(folder: Path, *, chat_template: bool = True, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden size 32) and a word-level tokenizer without a pad token, saved in ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([WORDS], trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if chat_template:
        tokenizer.chat_template = "{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder
