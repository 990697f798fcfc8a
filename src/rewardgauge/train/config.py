"""Config dataclasses of the training recipes (no torch here, so the CLI builds its parser quickly).

A YAML file given with ``--config`` maps one-to-one onto these fields; flags override it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(kw_only=True)
class LoopConfig:
    """Options every training recipe shares; a recipe's config dataclass extends this one."""

    seed: int = field(default=0, metadata={"help": "seed for initialisation and batch order"})
    epochs: int = field(default=1, metadata={"help": "passes over the data (when max_steps is 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps to run; 0 = as many as epochs give"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch on each process"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on matrices (not norms, biases)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps with linear warm-up"})
    schedule: Literal["cosine", "linear", "constant"] = field(
        default="cosine", metadata={"help": "learning-rate decay after warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this; 0 = no clipping"})
    bucket: bool = field(default=True, metadata={
        "help": "group examples of similar length into batches (less padding; batch order stays random)"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N steps (and at the end); 0 = only at the end"})
    keep_checkpoints: int = field(default=1, metadata={"help": "how many recent checkpoints to keep"})
    log_every: int = field(default=10, metadata={"help": "bring metrics to the CPU every N steps (each step still gets a line)"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the latest checkpoint in the output folder (without it, a new run replaces "
                "the checkpoints and metrics found there)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even when a GPU is present"})
    mixed_precision: Literal["no", "bf16", "fp16"] = field(default="no", metadata={"help": "autocast precision"})

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "save_every", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(kw_only=True)
class RewardTrainConfig(LoopConfig):
    """``rewardgauge rm train``: train a reward model on preference pairs."""

    model: str = field(metadata={"help": "HF model folder or hub name (causal LM, encoder or reward model)"})
    data: str = field(metadata={"help": "training pairs (JSONL of PreferencePair)"})
    out: str = field(metadata={"help": "output folder: the reward model, metrics.jsonl, checkpoints/"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out pairs: accuracy at the end (and every eval_every steps)"})
    eval_every: int = field(default=0, metadata={"help": "evaluate on eval_data every N steps; 0 = only at the end"})
    loss: Literal["bt", "margin", "soft", "multi"] = field(default="bt", metadata={
        "help": "bt: -log σ(Δ); margin: -log σ(Δ - m) with each pair's margin; soft: cross-entropy against the "
                "vote fraction; multi: one output per aspect, soft BT on per-aspect labels"})
    aspects: list[str] = field(default_factory=list, metadata={
        "help": "multi: aspect names, in output order (default: every aspect in the data, sorted)"})
    aspect_weights: dict[str, float] = field(default_factory=dict, metadata={
        "help": "multi: weights of the combined reward, e.g. '{\"accuracy\": 0.7, \"safety\": 0.3}' (default: equal)"})
    center_coef: float = field(default=0.0, metadata={
        "help": "reward centering coefficient, adds coef·(r_c + r_r)² (Eisenstein et al. 2023); 0 = off"})
    max_length: int = field(default=512, metadata={"help": "tokens per (prompt, response); longer ones keep their end"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    # Ensembles (Coste et al. 2023): K members on different data subsets and seeds, aggregated conservatively.
    members: int = field(default=1, metadata={
        "help": "ensemble members K; 1 trains one reward model, K > 1 writes an ensemble folder (ensemble.json) "
                "that loads as one reward model; under torchrun the independent/lora members fan out, one per process"})
    ensemble_form: Literal["independent", "shared", "lora", "blocks"] = field(default="independent", metadata={
        "help": "independent: K full models (most diverse, K x the scoring cost); shared: one backbone with K "
                "heads (about one model's cost); lora: K LoRA adapters with their own heads on one frozen base "
                "(needs peft); blocks: one trunk with each member's own copy of the top layer(s) and head "
                "(Llama-style decoders)"})
    subset: Literal["bootstrap", "disjoint", "full"] = field(default="bootstrap", metadata={
        "help": "each member's pairs: bootstrap (N draws with replacement), disjoint (a 1/K shard), full (all "
                "pairs; members differ by seed only)"})
    member_models: list[str] = field(default_factory=list, metadata={
        "help": "independent form: one starting model per member, comma-separated (e.g. backbones that differ "
                "in pretraining seed, which Eisenstein et al. 2023 found more diverse than fine-tuning seeds); "
                "they must share one tokenizer; default: every member starts from --model"})
    lora_rank: int = field(default=8, metadata={"help": "lora form: adapter rank r"})
    lora_alpha: float = field(default=16.0, metadata={"help": "lora form: adapter scale alpha (update = alpha/r * BA)"})
    member_layers: int = field(default=1, metadata={
        "help": "blocks form: top decoder layers each member has its own copy of (the last one runs at the last "
                "token only; each further one costs a full layer per member)"})
    member_noise: float = field(default=0.1, metadata={
        "help": "blocks form: each member's copy of the top layers starts perturbed by this times each weight "
                "matrix's std (its own seed)"})
    aggregator: Literal["mean", "min", "mean_minus_std", "quantile"] = field(default="min", metadata={
        "help": "the ensemble's default aggregate of normalised member rewards: mean, min (worst case), "
                "mean_minus_std (mean - lam * std) or quantile (the q-quantile)"})
    lam: float = field(default=1.0, metadata={"help": "mean_minus_std: weight of the members' std"})
    quantile: float = field(default=0.25, metadata={"help": "quantile aggregator: q in [0, 1] (0 = min)"})
    reference_size: int = field(default=1000, metadata={
        "help": "responses from the training pairs on which each member's reward mean/std is measured "
                "(saved in ensemble.json; members are put on one scale before aggregating)"})

    def validate(self) -> None:
        super().validate()
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        if self.members > 1 and self.loss == "multi":
            raise ValueError("ensembles of multi-objective reward models are not supported: use loss bt, soft or margin")
        if self.members > 1 and self.ensemble_form in ("shared", "blocks") and self.loss == "margin":
            raise ValueError(f"the {self.ensemble_form} form trains its members with (soft) BT: use loss bt or soft")
        if self.member_layers < 1 or self.member_noise < 0:
            raise ValueError(f"member_layers must be at least 1 and member_noise not negative, got "
                             f"{self.member_layers}, {self.member_noise}")
        if self.member_models and (self.members < 2 or self.ensemble_form != "independent"
                                   or len(self.member_models) != self.members):
            raise ValueError(f"member_models needs the independent form and one model per member: got "
                             f"{len(self.member_models)} models for members={self.members}, "
                             f"ensemble_form={self.ensemble_form}")
        if self.lora_rank < 1 or self.lora_alpha <= 0:
            raise ValueError(f"lora_rank must be at least 1 and lora_alpha positive, got {self.lora_rank}, {self.lora_alpha}")
        if self.lam < 0 or not 0 <= self.quantile <= 1:
            raise ValueError(f"need lam >= 0 and 0 <= quantile <= 1, got {self.lam}, {self.quantile}")
        if self.reference_size < 2:
            raise ValueError(f"reference_size must be at least 2, got {self.reference_size}")
        if self.center_coef < 0:
            raise ValueError(f"center_coef must not be negative, got {self.center_coef}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must not be negative, got {self.eval_every}")
        if self.loss != "multi" and (self.aspects or self.aspect_weights):
            raise ValueError("aspects and aspect_weights apply to loss 'multi' only")


@dataclass(kw_only=True)
class SFTConfig(LoopConfig):
    """``rewardgauge sft``: fine-tune a causal LM on demonstrations."""

    model: str = field(metadata={"help": "HF causal LM folder or hub name (e.g. from `rewardgauge model init`)"})
    data: str = field(metadata={"help": "demonstrations (JSONL of Demonstration: prompt, response)"})
    out: str = field(metadata={"help": "output folder: the model, metrics.jsonl, checkpoints/"})
    max_length: int = field(default=512, metadata={"help": "tokens per (prompt, response); longer ones keep their end"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW); ~1e-5 for pretrained models"})

    def validate(self) -> None:
        super().validate()
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")


