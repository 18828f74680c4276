"""Reward model for text: a pretrained transformer scoring (prompt, response), LoRA-tuned on preferences.

The backbone (MiniLM) becomes a sequence classifier with one output, the reward r(prompt,
response). PEFT adds LoRA to the attention's ``query`` and ``value`` projections; the score
head trains too and is saved with the adapter (``modules_to_save``), so a reloaded model
scores exactly as the trained one (TRL #1379: a head that is not saved gives random rewards).
The base weights never change.

Training minimises the Bradley-Terry loss with ties,
``BCE_with_logits(r_a - r_b - margin * (2 pref - 1), pref)`` with pref = P(A preferred) in
{1, 0.5, 0}, plus TRL's optional reward centring ``c * mean((r_a + r_b)^2)``. For speed on
CPU: A and B of a batch go through the model in one forward pass, pairs are batched by
length (dynamic padding, little of it), no gradient checkpointing, bfloat16 autocast where
the CPU has AMX or AVX512-BF16 (or on a GPU that supports it), scoring under ``torch.inference_mode``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_core.backbones.text import (
    HUB_NAMES,
    check_backbone,
    hub_name,
    load_sequence_classifier,
    load_tokenizer,
    quiet_transformers,
    torch_threads,
)
from rlhf_core.callbacks import ProgressFn, StopFn, TrainingCancelledError
from rlhf_core.devices import bf16_pays_off, resolve_device
from rlhf_core.distributed import rank, world_size
from rlhf_core.errors import InvalidInputError
from rlhf_core.rewards.base import weighted_mean
from rlhf_core.rewards.kinds import TEXT_LORA
from rlhf_core.rewards.preferences import check_weight

KIND = TEXT_LORA
#: Our own description of a saved model, next to PEFT's adapter files.
MODEL_FILE = "reward_model.json"


@dataclass(frozen=True)
class TextRewardConfig:
    """LoRA reward model on a pretrained text backbone."""

    backbone: str = "minilm"
    """Pretrained backbone: ``minilm`` (packaged, offline) or the folder of any Hugging Face
    model on disk (``--base-model DIR``), an encoder or a causal LM."""
    rank: int = 8
    """LoRA rank r of each adapted projection."""
    alpha: float = 16.0
    """LoRA alpha; the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the LoRA branch's input (the backbone's own dropout is always off, as TRL's default)."""
    target_modules: tuple[str, ...] | None = None
    """Linear layers that get LoRA adapters (names inside the backbone); None: PEFT's default for
    the architecture (MiniLM and BERT: ``query``, ``value``; Llama: ``q_proj``, ``v_proj``...)."""
    max_length: int = 128
    """Tokens of prompt + response kept (the longer of the two is truncated first)."""
    batch_size: int = 16
    """Preference pairs per gradient step (2x this many sequences per forward pass)."""
    epochs: int | None = None
    """Passes over the training pairs; None: as many as make at least ``min_steps`` optimizer
    steps, and at least 2 (so the length of training follows the data: 20 passes over 160
    pairs, 2 over 1,600 and more)."""
    min_steps: int = 200
    """Fewest optimizer steps when ``epochs`` is None. 2 passes over 156 labeled pairs (20
    steps) left the packaged sentiment task at 0.71 held-out accuracy; 80 steps reach 1.0. A
    preference that depends on the prompt needs more: from 200 pairs, 80 steps left it at
    0.56-0.62 on unseen reviews and 200 steps reached 0.81-0.89 (lr 2e-3)."""
    lr: float = 2e-3
    """Peak AdamW learning rate, decayed linearly to 0 (transformers' Trainer default schedule).
    2e-3, as in the TRL comparison (scripts/bench/text_reward.py): at 5e-4 a preference that
    depends on the prompt was not learned from 2,000 pairs (0.66-0.82 held-out), at 2e-3 it was
    (0.96-0.97), and a simple one learned as well or better (scripts/bench/text_defaults.py)."""
    weight_decay: float = 0.0
    """AdamW weight decay on the LoRA and head parameters."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (transformers' Trainer default); 0 turns it off."""
    margin: float = 0.0
    """The preferred response must win by this much: logits r_a - r_b - margin * (2 pref - 1)."""
    center_rewards_coefficient: float = 0.0
    """Weight of mean((r_a + r_b)^2), which keeps rewards centred on 0 (TRL; 0.01 recommended, 0 off)."""
    bf16: bool | None = None
    """bfloat16 autocast in training: None = where the device multiplies bfloat16 fast; scoring
    always runs in float32."""
    num_threads: int | None = None
    """Intra-op threads while training and scoring (None: torch's default)."""
    sort_window: int = 50
    """Batches per length-sorted window: pairs are shuffled, cut into windows of this many batches
    and sorted by length inside each, so padding stays small and batches still vary by epoch."""
    seed: int = 0
    """Seed of the head and LoRA initialisation and of the batch order."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise InvalidInputError(f"rank must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise InvalidInputError(f"alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise InvalidInputError("target_modules must name at least one layer, e.g. ('query', 'value')")
        limit = 512 if self.backbone == "minilm" else 32_768
        if not 8 <= self.max_length <= limit:
            raise InvalidInputError(f"max_length must lie in 8..{limit} ({self.backbone}), got {self.max_length}")
        if self.batch_size < 1 or (self.epochs is not None and self.epochs < 1) or self.sort_window < 1:
            raise InvalidInputError("batch_size, epochs and sort_window must be at least 1")
        if self.min_steps < 1:
            raise InvalidInputError(f"min_steps must be at least 1, got {self.min_steps}")
        if not 0 < self.lr < 1:
            raise InvalidInputError(f"lr must lie in (0, 1), got {self.lr}")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.margin < 0 or self.center_rewards_coefficient < 0:
            raise InvalidInputError("weight_decay, max_grad_norm, margin and center_rewards_coefficient must be >= 0")
        if self.num_threads is not None and self.num_threads < 1:
            raise InvalidInputError(f"num_threads must be at least 1, got {self.num_threads}")
        check_backbone(self.backbone)

    def to_json(self) -> dict[str, Any]:
        targets = None if self.target_modules is None else list(self.target_modules)
        return {**asdict(self), "target_modules": targets}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextRewardConfig:
        targets = data.get("target_modules")
        return cls(**{**data, "target_modules": None if targets is None else tuple(targets)})


@dataclass(frozen=True)
class TextPreferences:
    """Comparisons of two responses to the same prompt; ``pref`` = P(response A preferred)."""

    prompts: tuple[str, ...]
    responses_a: tuple[str, ...]
    responses_b: tuple[str, ...]
    pref: np.ndarray
    """(N,) float: 1 (A preferred), 0 (B preferred), 0.5 (equal)."""
    weight: np.ndarray | None = None
    """(N,) non-negative weight of each comparison in the loss (None: all 1)."""

    def __post_init__(self) -> None:
        n = len(self.prompts)
        check_weight(self.weight, n)
        if len(self.responses_a) != n or len(self.responses_b) != n or self.pref.shape != (n,):
            raise ValueError(
                f"prompts ({n}), responses_a ({len(self.responses_a)}), responses_b ({len(self.responses_b)}) "
                f"and pref {self.pref.shape} must have the same length"
            )
        for name, texts in (("prompts", self.prompts), ("responses_a", self.responses_a)):
            bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
            if bad is not None:
                raise ValueError(f"{name}[{bad}] is {type(texts[bad]).__name__}, not text")
        bad = next((i for i, t in enumerate(self.responses_b) if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"responses_b[{bad}] is {type(self.responses_b[bad]).__name__}, not text")
        if n and (not np.all(np.isfinite(self.pref)) or self.pref.min() < 0 or self.pref.max() > 1):
            raise ValueError("pref must be P(A preferred), within [0, 1]")

    @classmethod
    def from_lists(
        cls,
        prompts: Sequence[str],
        responses_a: Sequence[str],
        responses_b: Sequence[str],
        pref: Sequence[float],
        weight: Sequence[float] | None = None,
    ) -> TextPreferences:
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        return cls(tuple(prompts), tuple(responses_a), tuple(responses_b), np.asarray(pref, dtype=np.float64), w)

    @classmethod
    def chosen_rejected(cls, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]) -> TextPreferences:
        """TRL-style data: A is the chosen response, B the rejected one."""
        return cls.from_lists(prompts, chosen, rejected, np.ones(len(prompts)))

    def __len__(self) -> int:
        return len(self.prompts)

    def fingerprint(self) -> str:
        """SHA-256 of every comparison (prompts, responses, preferences), in order."""
        import hashlib

        digest = hashlib.sha256()
        for row in zip(self.prompts, self.responses_a, self.responses_b, self.pref.tolist(), strict=True):
            digest.update(json.dumps(row).encode())
        return digest.hexdigest()

    def take(self, idx: np.ndarray | Sequence[int]) -> TextPreferences:
        idx = np.asarray(idx, dtype=np.int64)
        return TextPreferences(
            tuple(self.prompts[i] for i in idx),
            tuple(self.responses_a[i] for i in idx),
            tuple(self.responses_b[i] for i in idx),
            self.pref[idx],
            None if self.weight is None else self.weight[idx],
        )


def conversation_text(tokenizer: Any, prompt: str, response: str) -> str:
    """A prompt and a response as one conversation in the tokenizer's chat template."""
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def preference_loss(
    r_a: torch.Tensor,
    r_b: torch.Tensor,
    pref: torch.Tensor,
    *,
    margin: float | torch.Tensor = 0.0,
    center_coefficient: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley-Terry loss with ties: BCE-with-logits of r_a - r_b against P(A preferred).

    With ``margin`` m the preferred side must win by m: logits r_a - r_b - m (2 pref - 1), which
    for pref = 1 is TRL's ``-logsigmoid(r_chosen - r_rejected - m)`` and leaves ties alone.
    ``center_coefficient`` c adds TRL's c * mean((r_a + r_b)^2).
    """
    logits = r_a - r_b - margin * (2 * pref - 1)
    loss = weighted_mean(F.binary_cross_entropy_with_logits(logits, pref, reduction="none"), weight)
    if center_coefficient:
        loss = loss + center_coefficient * torch.mean((r_a + r_b) ** 2)
    return loss


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, window: int = 50
) -> list[np.ndarray]:
    """Indices cut into batches of similar length, in random order.

    Shuffle, cut into windows of ``window`` batches, sort each window by length, cut it into
    batches, shuffle the batches: a batch pads to its longest member, so sorting saves most
    of the padding, while the windows keep the batches different from epoch to epoch.
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token ids to the batch's longest: (input_ids, attention_mask), both (B, T)."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class TextRewardModel:
    """r(prompt, response) from a LoRA-adapted pretrained transformer with a one-output head."""

    kind = KIND

    def __init__(
        self, config: TextRewardConfig | None = None, *, device: str | None = None, _model: Any = None
    ) -> None:
        self.config = config or TextRewardConfig()
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(self.config.backbone)
        if _model is None:
            from peft import LoraConfig, TaskType, get_peft_model

            cfg = self.config
            base = load_sequence_classifier(cfg.backbone, 1, seed=cfg.seed, pad_token_id=self.tokenizer.pad_token_id)
            limit = getattr(base.config, "max_position_embeddings", None)
            if isinstance(limit, int) and cfg.max_length > limit:
                raise InvalidInputError(f"max_length {cfg.max_length} exceeds {cfg.backbone}'s {limit} positions")
            lora = LoraConfig(
                task_type=TaskType.SEQ_CLS,  # PEFT also trains and saves the score head ("classifier" or "score")
                r=cfg.rank,
                lora_alpha=cfg.alpha,
                lora_dropout=cfg.dropout,
                target_modules=None if cfg.target_modules is None else list(cfg.target_modules),
                modules_to_save=["classifier"] if cfg.backbone == "minilm" else None,
            )
            try:
                # LoRA A's init seeded, the global generator untouched
                with torch.random.fork_rng(devices=[]), quiet_transformers():
                    torch.manual_seed(cfg.seed + 1)
                    _model = get_peft_model(base, lora)
            except ValueError as exc:  # PEFT: "Target modules {...} not found in the base model"
                targets = "PEFT's default" if cfg.target_modules is None else list(cfg.target_modules)
                raise InvalidInputError(
                    f"LoRA target modules ({targets}) do not fit the {cfg.backbone} backbone: {exc}; "
                    "name its linear layers with --target-modules"
                ) from exc
            # Saved adapters name the hub model, not this machine's site-packages folder.
            _model.peft_config["default"].base_model_name_or_path = hub_name(cfg.backbone)
        self.model = _model.to(self.device).eval()

    # --- sizes -------------------------------------------------------------------------------

    def parameter_counts(self) -> dict[str, int]:
        """Trainable (LoRA + head) and backbone parameter counts."""
        trainable = sum(p.numel() for n, p in self.model.named_parameters() if self._is_adapter_param(n))
        backbone = sum(p.numel() for n, p in self.model.named_parameters() if not self._is_adapter_param(n))
        return {"trainable_params": trainable, "backbone_params": backbone}

    @property
    def trainable_fraction(self) -> float:
        """Trainable parameters as a fraction of the backbone's."""
        counts = self.parameter_counts()
        return counts["trainable_params"] / counts["backbone_params"]

    @staticmethod
    def _is_adapter_param(name: str) -> bool:
        return "lora_" in name or "modules_to_save" in name

    # --- tokens ------------------------------------------------------------------------------

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        """Token ids of ``[CLS] prompt [SEP] response [SEP]``, at most ``max_length`` long.

        Token type ids stay 0: sentence-transformers trained MiniLM on single segments, so
        the second segment's type embedding carries no learned meaning.
        """
        if not len(prompts):
            return []
        if self.tokenizer.chat_template:  # a chat model reads a conversation, formatted its own way
            texts = [conversation_text(self.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
            out = self.tokenizer(
                texts,
                truncation=True,
                max_length=self.config.max_length,
                add_special_tokens=False,  # the template wrote them
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            return out["input_ids"]
        out = self.tokenizer(
            list(prompts),
            list(responses),
            truncation="longest_first",
            max_length=self.config.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return out["input_ids"]

    # --- training ------------------------------------------------------------------------------

    def fit(
        self,
        data: TextPreferences,
        *,
        rng: np.random.Generator,
        on_step: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> dict[str, float]:
        """Train LoRA and the head on ``data``; returns training metrics.

        Raises :class:`TrainingCancelledError` when ``should_stop`` says so (polled every step); the
        caller then discards the model.
        """
        cfg = self.config
        if len(data) == 0:
            raise ValueError("no preference pairs to train on")
        ids_a = self.encode(data.prompts, data.responses_a)
        ids_b = self.encode(data.prompts, data.responses_b)
        lengths = np.array([max(len(a), len(b)) for a, b in zip(ids_a, ids_b, strict=True)])
        pref = torch.from_numpy(data.pref.astype(np.float32)).to(self.device)
        weight = None if data.weight is None else torch.from_numpy(data.weight.astype(np.float32)).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        model, accelerator, ranks = self.model, None, world_size()
        if ranks > 1:  # launched data-parallel (accelerate launch): DDP over gloo (CPU) or NCCL (GPUs)
            from accelerate import Accelerator

            accelerator = Accelerator(cpu=self.device.type == "cpu")
            self.device = accelerator.device
            # every process read the labels itself: if one saw a label the others did not (people label
            # on while the processes start), they would train on different data, or wait forever
            mine = torch.tensor([len(data), int(data.fingerprint()[:15], 16)], device=self.device)
            if not bool((accelerator.gather(mine[None]) == mine).all()):
                raise InvalidInputError(
                    "the data-parallel processes read different labels (labels were added while they "
                    "started); run the training again"
                )
            self.model.to(self.device)
            model, opt = accelerator.prepare(self.model, opt)
            pref = pref.to(self.device)
            weight = None if weight is None else weight.to(self.device)
        steps_per_epoch = int(np.ceil(len(data) / cfg.batch_size))
        epochs = cfg.epochs or max(2, int(np.ceil(cfg.min_steps / steps_per_epoch)))
        total = steps_per_epoch * epochs
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total))
        bf16 = bf16_pays_off(self.device) if cfg.bf16 is None else cfg.bf16
        pad_id = self.tokenizer.pad_token_id
        step, seen, loss_sum, loss_n, epoch_loss = 0, 0, 0.0, 0, float("nan")
        base = self.model.get_base_model()
        # Under bf16 autocast, CPU SDPA's backward is slow (over half of a step); plain matmul
        # attention trains ~2x faster. Scoring keeps SDPA, which is faster for the forward pass.
        switch = cfg.backbone in HUB_NAMES  # the packaged backbone's attention; another keeps its own
        if switch:
            base.set_attn_implementation("eager" if bf16 and self.device.type == "cpu" else "sdpa")
        self.model.train()
        started = time.perf_counter()
        try:
            with torch_threads(cfg.num_threads):
                for _ in range(epochs):
                    loss_sum, loss_n = 0.0, 0
                    for batch in length_batches(lengths, cfg.batch_size, rng, cfg.sort_window):
                        if should_stop is not None and should_stop():
                            raise TrainingCancelledError("stopped during training")
                        # every process draws the same batches; each takes its share (at least one pair)
                        idx = batch[rank() :: ranks] if len(batch) >= ranks else batch[[rank() % len(batch)]]
                        b = len(idx)
                        input_ids, mask = pad_batch([ids_a[i] for i in idx] + [ids_b[i] for i in idx], pad_id)
                        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                            rewards = model(input_ids=input_ids, attention_mask=mask).logits  # (2B, 1)
                        rewards = rewards.float().squeeze(-1)  # (2B,)
                        rows = torch.from_numpy(np.asarray(idx)).to(self.device)
                        loss = preference_loss(
                            rewards[:b],
                            rewards[b:],
                            pref[rows],
                            margin=cfg.margin,
                            center_coefficient=cfg.center_rewards_coefficient,
                            weight=None if weight is None else weight[rows],
                        )
                        opt.zero_grad(set_to_none=True)
                        if accelerator is not None:
                            accelerator.backward(loss)  # DDP: the processes' gradients averaged
                        else:
                            loss.backward()
                        if cfg.max_grad_norm:
                            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                        opt.step()
                        schedule.step()
                        step += 1
                        seen += len(batch)
                        loss_sum += loss.item() * b
                        loss_n += b
                        if on_step is not None:
                            on_step(step, total, {"loss": loss_sum / loss_n})
                    epoch_loss = loss_sum / loss_n
        finally:
            if accelerator is not None:
                self.model = accelerator.unwrap_model(model)
            self.model.eval()
            if switch:
                base.set_attn_implementation("sdpa")
        seconds = time.perf_counter() - started
        return {
            "train_loss": epoch_loss,
            "steps": step,
            "epochs": epochs,
            "train_seconds": seconds,
            "pairs_per_s": seen / seconds,
            "bf16": bool(bf16),
            "device": str(self.device),
            "processes": ranks,
            **self.parameter_counts(),
            "trainable_fraction": self.trainable_fraction,
        }

    # --- scoring -----------------------------------------------------------------------------

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Reward of each (prompt, response), (N,) float32; batched by length, float32."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        ids = self.encode(prompts, responses)
        out = np.empty(len(ids), dtype=np.float32)
        order = np.argsort([len(s) for s in ids], kind="stable")
        pad_id = self.tokenizer.pad_token_id
        with torch_threads(self.config.num_threads):
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                input_ids, mask = pad_batch([ids[i] for i in rows], pad_id)
                logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
                out[rows] = logits.squeeze(-1).float().cpu().numpy()
        return out

    def predict_pref(self, data: TextPreferences) -> np.ndarray:
        """Predicted P(A preferred) of each comparison, (N,)."""
        r_a = self.score(data.prompts, data.responses_a).astype(np.float64)
        r_b = self.score(data.prompts, data.responses_b).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(r_a - r_b, -60, 60)))

    # --- persistence -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """PEFT's adapter files (LoRA and the head) plus ``reward_model.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            # save_embedding_layers=False: the vocabulary is the backbone's, and "auto" asks the Hub
            self.model.save_pretrained(str(folder), save_embedding_layers=False)
        (folder / MODEL_FILE).write_text(json.dumps({"kind": KIND, "config": self.config.to_json()}, indent=2))

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> TextRewardModel:
        """A model written by :meth:`save`: the pretrained backbone plus the saved adapter."""
        from peft import PeftModel

        meta_path = folder / MODEL_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: {folder} does not hold a text reward model")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != KIND:
            raise ValueError(f"{meta_path} has kind {meta.get('kind')!r}, expected {KIND!r}")
        config = TextRewardConfig.from_json(meta["config"])
        tokenizer = load_tokenizer(config.backbone)
        base = load_sequence_classifier(config.backbone, 1, seed=config.seed, pad_token_id=tokenizer.pad_token_id)
        with quiet_transformers():
            model = PeftModel.from_pretrained(base, str(folder))
        return cls(config, device=device, _model=model)

    def merged(self) -> torch.nn.Module:
        """A copy of the model with LoRA merged into the base weights (``merge_and_unload``)."""
        return copy.deepcopy(self.model).merge_and_unload()

    def export_tokenizer(self, folder: Path) -> None:
        """The tokenizer as this model uses it: ``max_length`` as its model_max_length (so
        ``tokenizer(prompt, response, truncation=True)`` keeps what the studio keeps), and no
        token type ids among its outputs (the studio scores with all type ids 0)."""
        tokenizer = load_tokenizer(
            self.config.backbone,
            model_max_length=self.config.max_length,
            model_input_names=["input_ids", "attention_mask"],
        )
        with quiet_transformers():
            tokenizer.save_pretrained(str(folder))  # its pad token and truncation side too

    def export_merged(self, folder: Path) -> None:
        """A plain Hugging Face model folder: LoRA merged into the backbone, the score head, the
        tokenizer and the config (one label, the pad id), which
        ``AutoModelForSequenceClassification.from_pretrained(folder)`` loads without PEFT or
        this package, and which TRL takes as a reward model."""
        folder.mkdir(parents=True, exist_ok=True)
        model = self.merged()
        model.config.id2label, model.config.label2id = {0: "reward"}, {"reward": 0}
        model.config.problem_type = "regression"
        with quiet_transformers():
            model.save_pretrained(str(folder), safe_serialization=True)
        self.export_tokenizer(folder)

    def export_adapter(self, folder: Path) -> None:
        """PEFT's adapter (LoRA and the score head) with the tokenizer: loads with
        ``AutoPeftModelForSequenceClassification.from_pretrained(folder, num_labels=1)`` on the
        base model its ``adapter_config.json`` names."""
        self.save(folder)
        self.export_tokenizer(folder)
