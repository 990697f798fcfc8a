"""Config dataclasses of the training recipes.

A YAML file given with ``--config`` maps one-to-one onto these fields; flags override it. Each set of allowed
values is a ``Literal`` declared once; code that needs the tuple takes ``get_args`` of it.

Fields whose metadata says ``resume_may_differ`` change neither the result nor the data a run reads
(progress bars, logging, checkpoint cadence, trackers), so ``--resume`` accepts a different value for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from rewardgauge.data.steps import DEFAULT_SEPARATOR, LABEL_SOURCES, LabelSource, StepAggregation
from rewardgauge.losses import KLEstimator, TokenAggregation
from rewardgauge.modeling.logprobs import Layout
from rewardgauge.rewards.aggregators import Aggregator
from rewardgauge.rewards.ensemble import EnsembleForm

Schedule = Literal["cosine", "linear", "constant"]
MixedPrecision = Literal["no", "bf16", "fp16"]
ReportTo = Literal["none", "tensorboard", "trackio", "wandb"]
Loss = Literal["bt", "margin", "soft", "multi"]
Subset = Literal["bootstrap", "disjoint", "full"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
REPORT_TO: tuple[str, ...] = get_args(ReportTo)
LOSSES: tuple[str, ...] = get_args(Loss)
SUBSETS: tuple[str, ...] = get_args(Subset)


@dataclass(kw_only=True)
class RunConfig:
    """Options of the run directory (``rewardgauge.train.rundir``): resume, checkpoints, metrics, trackers."""

    resume: bool = field(default=False, metadata={
        "resume_may_differ": True,
        "help": "continue from the latest checkpoint in the output folder (without it, a new run replaces "
                "the checkpoints and metrics found there)"})
    save_every: int = field(default=100, metadata={
        "resume_may_differ": True, "help": "checkpoint every N steps (and at the end); 0 = only at the end"})
    keep_checkpoints: int = field(default=1, metadata={
        "resume_may_differ": True, "help": "how many recent checkpoints to keep"})
    log_every: int = field(default=10, metadata={
        "resume_may_differ": True,
        "help": "bring metrics to the CPU every N steps (each step still gets a line; with callbacks, every step)"})
    report_to: ReportTo = field(default="none", metadata={
        "resume_may_differ": True,
        "help": "also send each step's metrics to a tracker: tensorboard (event files in OUT/tensorboard), "
                "trackio or wandb (each needs its package: pip install 'rewardgauge[tensorboard]' ...)"})
    progress: bool = field(default=True, metadata={"resume_may_differ": True, "help": "show a progress bar"})

    def validate(self) -> None:
        for name in ("log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.save_every < 0:
            raise ValueError(f"save_every must not be negative, got {self.save_every}")


def _device_field():
    """``--device``, the option rm eval and audit have too (``train.loop.make_accelerator`` reads it)."""
    return field(default=None, metadata={
        "resume_may_differ": True,
        "help": "cpu, cuda or cuda:N, as for rm eval and audit (default: cuda if available); under torchrun each "
                "process takes its own GPU"})


def _cpu_field():
    return field(default=False, metadata={"resume_may_differ": True, "help": "same as --device cpu"})


@dataclass(kw_only=True)
class LoopConfig(RunConfig):
    """Options every training recipe on ``train.loop.fit`` shares; a recipe's config dataclass extends this one."""

    seed: int = field(default=0, metadata={"help": "seed for initialisation and batch order"})
    epochs: int = field(default=1, metadata={"help": "passes over the data (when max_steps is 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps to run; 0 = as many as epochs give"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch on each process"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on matrices (not norms, biases)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps with linear warm-up"})
    schedule: Schedule = field(
        default="cosine", metadata={"help": "learning-rate decay after warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this; 0 = no clipping"})
    bucket: bool = field(default=True, metadata={
        "help": "group examples of similar length into batches (less padding; batch order stays random)"})
    skip_nonfinite: bool = field(default=False, metadata={
        "resume_may_differ": True,
        "help": "skip a step whose loss or gradient is not finite (counted as nonfinite_skipped in the metrics) "
                "instead of stopping the run there"})
    device: str | None = _device_field()
    cpu: bool = _cpu_field()
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": "autocast precision"})

    def validate(self) -> None:
        super().validate()
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "weight_decay", "max_grad_norm"):
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
    loss: Loss = field(default="bt", metadata={
        "help": "bt: -log σ(Δ); margin: -log σ(Δ - m) with each pair's margin; soft: cross-entropy against the "
                "vote fraction; multi: one output per aspect, soft BT on per-aspect labels"})
    aspects: list[str] = field(default_factory=list, metadata={
        "help": "multi: aspect names, in output order (default: every aspect in the data, sorted)"})
    aspect_weights: dict[str, float] = field(default_factory=dict, metadata={
        "help": "multi: weights of the combined reward, e.g. '{\"accuracy\": 0.7, \"safety\": 0.3}' (default: equal)"})
    center_coef: float = field(default=0.0, metadata={
        "help": "reward centering coefficient, adds coef·(r_c + r_r)² (Eisenstein et al. 2023); 0 = off"})
    max_length: int = field(default=512, metadata={"help": "tokens per (prompt, response); longer ones keep their end"})
    layout: Layout = field(default="packed", metadata={
        "help": "decoders: how a pair goes through the model (same rewards and gradients, different work): packed "
                "(the pair's common prefix once, then chosen and rejected, several pairs per unpadded row, the last "
                "layer's query side only where rewards are read), shared "
                "(the prefix once, both responses on its KV cache), plain (two full sequences); encoders read a "
                "text pair and always run the two sequences apart"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    # Ensembles (Coste et al. 2023): K members on different data subsets and seeds, aggregated conservatively.
    members: int = field(default=1, metadata={
        "help": "ensemble members K; 1 trains one reward model, K > 1 writes an ensemble folder (ensemble.json) "
                "that loads as one reward model; under torchrun the independent/lora members fan out, one per process"})
    ensemble_form: EnsembleForm = field(default="independent", metadata={
        "help": "independent: K full models (most diverse, K x the scoring cost); shared: one backbone with K "
                "heads (about one model's cost); lora: K LoRA adapters with their own heads on one frozen base "
                "(needs peft); blocks: one trunk with each member's own copy of the top layer(s) and head "
                "(Llama-style decoders). Default independent: in bench/ensemble_quality.py the cheap forms' "
                "members disagree about a quarter as much (README, Ensembles)"})
    subset: Subset = field(default="bootstrap", metadata={
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
    aggregator: Aggregator = field(default="min", metadata={
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


@dataclass(kw_only=True)
class PRMTrainConfig(LoopConfig):
    """``rewardgauge prm train``: a process reward model, a head predicting each step's correctness."""

    model: str = field(metadata={"help": "HF model folder or hub name: a decoder (e.g. the SFT policy) or an "
                                         "encoder such as MiniLM; a per-token head is added"})
    data: str = field(metadata={"help": "step-labelled solutions (JSONL of StepRecord)"})
    out: str = field(metadata={"help": "output folder: the PRM (weights, prm.json), metrics.jsonl, checkpoints/"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out step records: step accuracy at the end"})
    eval_every: int = field(default=0, metadata={"help": "evaluate on eval_data every N steps; 0 = only at the end"})
    separator: str = field(default=DEFAULT_SEPARATOR, metadata={
        "help": "step separator of 'solution' texts and of responses the PRM scores later (\\n: one step per "
                "line; ' . ' for the lab's sentences)"})
    target: Literal["steps", "outcome"] = field(default="steps", metadata={
        "help": "steps: each step's label (hard true/false or a soft value); outcome: only the record's "
                "'outcome' (final answer right?) at the last step, i.e. an outcome verifier"})
    sources: list[LabelSource] = field(default_factory=list, metadata={
        "help": f"train only on labels from these sources ({', '.join(LABEL_SOURCES)}); default: all"})
    aggregation: StepAggregation | None = field(default=None, metadata={
        "help": "the default aggregate of step scores when the model is used as a reward model (default: min "
                "for target steps, last for target outcome)"})
    max_length: int = field(default=512, metadata={"help": "tokens per (prompt, solution); steps cut off are not trained"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})

    def validate(self) -> None:
        super().validate()
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not self.separator:
            raise ValueError("separator must not be empty")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must not be negative, got {self.eval_every}")


DPOLoss = Literal["sigmoid", "ipo", "conservative"]
DPO_LOSSES: tuple[str, ...] = get_args(DPOLoss)


@dataclass(kw_only=True)
class DPOConfig(LoopConfig):
    """``rewardgauge dpo``: direct preference optimisation of a causal LM against a frozen reference."""

    model: str = field(metadata={"help": "HF causal LM folder or hub name: the policy to start from (e.g. the SFT model)"})
    data: str = field(metadata={"help": "preference pairs (JSONL of PreferencePair)"})
    out: str = field(metadata={"help": "output folder: the policy, dpo.json, metrics.jsonl, checkpoints/"})
    ref_model: str | None = field(default=None, metadata={
        "help": "the frozen reference (default: --model, the policy's starting weights)"})
    loss: DPOLoss = field(default="sigmoid", metadata={
        "help": "sigmoid: -log σ(β h) (DPO); ipo: (h - 1/(2β))² (IPO); conservative: sigmoid DPO with label "
                "smoothing ε (labels assumed flipped with probability ε)"})
    beta: float = field(default=0.1, metadata={"help": "β: strength of the pull towards the reference"})
    label_smoothing: float = field(default=0.1, metadata={"help": "conservative: ε in [0, 0.5)"})
    max_length: int = field(default=512, metadata={"help": "tokens of prompt + response; responses are cut at the end"})
    max_prompt_length: int = field(default=256, metadata={"help": "prompts keep their last N tokens"})
    layout: Layout = field(default="packed", metadata={
        "help": "how pairs go through the model (same loss, different work): packed (the prompt once, then "
                "chosen and rejected, one unpadded sequence per batch), shared (the prompt once, responses on "
                "its KV cache), plain (prompt + response rows, the prompt twice)"})
    lr: float = field(default=1e-5, metadata={"help": "peak learning rate (AdamW); ~5e-7 for large pretrained models"})

    def validate(self) -> None:
        super().validate()
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.max_prompt_length < 1 or self.max_length <= self.max_prompt_length:
            raise ValueError(f"need 1 <= max_prompt_length < max_length, got {self.max_prompt_length}, {self.max_length}")


Algo = Literal["grpo", "dr_grpo", "rloo", "ppo"]
ALGOS: tuple[str, ...] = get_args(Algo)
KLPlacement = Literal["loss", "reward"]
GenerationBackendName = Literal["torch", "vllm"]


@dataclass(kw_only=True)
class PolicySection:
    """``policy.*``: the model being optimised, its reference, and its optimizer."""

    model: str = field(metadata={"help": "HF causal LM folder or hub name to start from (e.g. the SFT model)"})
    ref_model: str | None = field(default=None, metadata={
        "help": "the frozen reference of the KL term (default: policy.model, the starting weights)"})
    lr: float = field(default=1e-5, metadata={"help": "learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on matrices"})
    schedule: Schedule = field(default="constant", metadata={"help": "learning-rate decay after warm-up"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "fraction of optimizer steps with linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm; 0 = no clipping"})
    max_prompt_length: int = field(default=256, metadata={"help": "prompts keep their last N tokens"})

    def validate(self) -> None:
        if not self.lr > 0 or self.weight_decay < 0 or self.max_grad_norm < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("need lr > 0, weight_decay >= 0, max_grad_norm >= 0 and 0 <= warmup_ratio < 1")
        if self.max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be at least 1, got {self.max_prompt_length}")


@dataclass(kw_only=True)
class GenerationSection:
    """``generation.*``: how responses are sampled."""

    group_size: int = field(default=8, metadata={"help": "G: responses sampled per prompt (grpo, dr_grpo, rloo need >= 2)"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest response; longer ones are cut"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (the loss uses the same)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling: smallest set of tokens reaching p"})
    top_k: int = field(default=0, metadata={"help": "sample among the k likeliest tokens; 0 = all"})
    backend: GenerationBackendName = field(default="torch", metadata={
        "help": "torch: rewardgauge's KV-cache sampler on the live policy; vllm: a vLLM engine (GPU extra)"})

    def validate(self) -> None:
        if self.group_size < 1 or self.max_new_tokens < 1 or self.top_k < 0:
            raise ValueError("need group_size >= 1, max_new_tokens >= 1 and top_k >= 0")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


@dataclass(kw_only=True)
class KLSection:
    """``kl.*``: the pull towards the reference, β · KL(π || π_ref)."""

    coef: float = field(default=0.0, metadata={"help": "β, the KL coefficient (the initial one when kl.target is set)"})
    estimator: KLEstimator = field(default="k3", metadata={
        "help": "per-token estimate of KL: k1 = log π/π_ref, k2 = ½ (log π/π_ref)², k3 = π_ref/π - 1 - log π_ref/π"})
    placement: KLPlacement = field(default="loss", metadata={
        "help": "loss: β·KL added to the per-token loss (GRPO); reward: -β·KL paid per token in the reward "
                "(PPO-RLHF; for grpo/rloo the summed penalty enters the response's reward)"})
    target: float | None = field(default=None, metadata={
        "help": "adaptive controller (Ziegler et al. 2019): β moves to keep the response KL near this many nats"})
    horizon: int = field(default=10000, metadata={"help": "adaptive controller: horizon of the β update"})
    measure: bool = field(default=True, metadata={
        "help": "compute the reference's log-probabilities to log kl_k1/k2/k3 even when coef is 0"})

    def validate(self) -> None:
        if self.coef < 0 or (self.target is not None and not self.target > 0) or self.horizon < 1:
            raise ValueError("need kl.coef >= 0, kl.target > 0 (or unset) and kl.horizon >= 1")


@dataclass(kw_only=True)
class RewardSection:
    """``reward.*``: what the policy is optimised against, and the gold it is checked against."""

    models: list[str] = field(metadata={
        "help": "reward sources, comma-separated: a reward-model folder or hub name, an ensemble folder, a DPO "
                "run folder (its implicit reward), lab-gold, exec:TASKS.jsonl (hidden tests in the sandbox), a "
                "reward server's URL (rewardgauge serve; replicas of one server: space-separated in one item); "
                "several are summed with reward.weights"})
    weights: list[float] = field(default_factory=list, metadata={"help": "one weight per reward source (default 1 each)"})
    aggregator: Aggregator | None = field(default=None, metadata={
        "help": "ensembles: min, mean, mean_minus_std or quantile (default: the ensemble's saved one)"})
    lam: float | None = field(default=None, metadata={"help": "mean_minus_std: weight of the members' std"})
    quantile: float | None = field(default=None, metadata={"help": "quantile aggregator: q in [0, 1]"})
    batch_size: int = field(default=64, metadata={"help": "responses per reward-model forward"})
    dense: bool = field(default=False, metadata={
        "help": "process reward models: reward every step, not just the aggregate (ppo: each step's score at "
                "its last token, Math-Shepherd; grpo / dr_grpo: process supervision, a token's advantage is the "
                "sum of the group-normalised scores of its step and the later ones, DeepSeekMath)"})
    gold: str = field(default="auto", metadata={
        "help": "a reward source scored on the same samples and only logged (gold_* metrics): auto = the lab's "
                "gold reward when the prompts come from `rewardgauge lab data`, none = nothing"})

    def validate(self) -> None:
        if not self.models:
            raise ValueError("reward.models: give at least one reward source")
        if self.weights and len(self.weights) != len(self.models):
            raise ValueError(f"reward.weights: {len(self.weights)} weights for {len(self.models)} reward sources")
        if self.batch_size < 1:
            raise ValueError(f"reward.batch_size must be at least 1, got {self.batch_size}")


@dataclass(kw_only=True)
class ValueSection:
    """``value.*``: PPO's value model and generalised advantage estimation."""

    model: str | None = field(default=None, metadata={
        "help": "where the value model starts (default: policy.model with a fresh scalar head per token)"})
    coef: float = field(default=0.1, metadata={"help": "weight of the value loss in the total loss"})
    clip: float = field(default=0.2, metadata={"help": "value clipping range around the rollout's values"})
    gamma: float = field(default=1.0, metadata={"help": "discount γ"})
    lam: float = field(default=0.95, metadata={"help": "GAE λ"})

    def validate(self) -> None:
        if self.coef < 0 or self.clip <= 0 or not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError("need value.coef >= 0, value.clip > 0, 0 <= value.gamma, value.lam <= 1")


@dataclass(kw_only=True)
class RLConfig(RunConfig):
    """``rewardgauge rl``: optimise a policy against any reward source with GRPO, Dr. GRPO, RLOO or PPO."""

    algo: Algo = field(default="grpo", metadata={
        "help": "grpo: group-normalised advantages; dr_grpo: no std and no length normalisation (Liu et al. "
                "2025); rloo: leave-one-out baseline; ppo: value model + GAE"})
    prompts: str = field(metadata={"help": "prompts (JSONL with a 'prompt' field) or a code-task file (MBPP...)"})
    out: str = field(metadata={"help": "output folder: the policy, config.yaml, metrics.jsonl, samples.jsonl, checkpoints/"})
    seed: int = field(default=0, metadata={"help": "seed of the prompt order and of sampling"})
    steps: int = field(default=100, metadata={"help": "RL steps (each: sample, score, update)"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per step over all processes (each sampled G times)"})
    epochs_per_step: int = field(default=1, metadata={"help": "passes over a step's rollouts (PPO epochs)"})
    minibatches: int = field(default=1, metadata={"help": "optimizer steps per pass (the rollouts split by group)"})
    clip_low: float = field(default=0.2, metadata={"help": "ε_low: the ratio's lower clip at 1 - ε_low"})
    clip_high: float | None = field(default=None, metadata={
        "help": "ε_high: the upper clip at 1 + ε_high (default ε_low; DAPO's clip-higher uses 0.28)"})
    loss_aggregation: TokenAggregation | None = field(default=None, metadata={
        "help": "per-token loss to scalar: token-mean (DAPO, TRL's default), seq-mean-token-mean (GRPO paper), "
                "seq-mean-token-sum, seq-mean-token-sum-norm (Dr. GRPO); default: dr_grpo's for dr_grpo, else token-mean"})
    layout: Layout = field(default="packed", metadata={
        "help": "how prompts and responses go through the model in the training and no-grad forwards (same "
                "numbers, different work): packed (each prompt once, its G responses after it, no padding: "
                "Prefix Grouper), shared (prompts once, responses on their KV cache), plain (prompt + response "
                "rows: each prompt G times)"})
    micro_batch_tokens: int = field(default=2048, metadata={
        "help": "forwards run on micro-batches of responses of similar length, each at most about this many "
                "tokens (gradients add up to the whole minibatch's; lower it to save memory)"})
    samples_per_step: int = field(default=8, metadata={"help": "rollouts per logged step written to samples.jsonl"})
    samples_every: int = field(default=1, metadata={"help": "write samples every N steps"})
    samples_max: int = field(default=5000, metadata={"help": "cap on samples.jsonl lines"})
    policy: PolicySection
    generation: GenerationSection = field(default_factory=GenerationSection)
    kl: KLSection = field(default_factory=KLSection)
    reward: RewardSection
    value: ValueSection = field(default_factory=ValueSection)
    device: str | None = _device_field()
    cpu: bool = _cpu_field()
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": "autocast precision"})

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.prompts_per_step < 1 or self.epochs_per_step < 1 or self.minibatches < 1:
            raise ValueError("need steps, prompts_per_step, epochs_per_step and minibatches >= 1")
        if self.algo in ("grpo", "dr_grpo", "rloo") and self.generation.group_size < 2:
            raise ValueError(f"{self.algo} compares the responses to one prompt: generation.group_size must be at "
                             f"least 2, got {self.generation.group_size}")
        if self.reward.dense and self.algo == "rloo":
            raise ValueError("reward.dense is for ppo, grpo and dr_grpo (rloo has no per-step form here)")
        if self.reward.dense and self.algo != "ppo" and self.kl.placement == "reward":
            raise ValueError("reward.dense with grpo / dr_grpo needs kl.placement loss (process supervision has "
                             "no per-token KL reward)")
        if self.prompts_per_step % self.minibatches:
            raise ValueError(f"minibatches ({self.minibatches}) must divide prompts_per_step ({self.prompts_per_step})")
        if not 0 < self.clip_low < 1 or (self.clip_high is not None and not self.clip_high > 0):
            raise ValueError("need 0 < clip_low < 1 and clip_high > 0")
        if self.micro_batch_tokens < 1:
            raise ValueError(f"micro_batch_tokens must be at least 1, got {self.micro_batch_tokens}")
        if self.samples_per_step < 0 or self.samples_every < 1 or self.samples_max < 0:
            raise ValueError("need samples_per_step >= 0, samples_every >= 1, samples_max >= 0")

    @property
    def aggregation(self) -> str:
        if self.loss_aggregation is not None:
            return self.loss_aggregation
        return "seq-mean-token-sum-norm" if self.algo == "dr_grpo" else "token-mean"
