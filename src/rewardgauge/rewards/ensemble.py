"""A reward-model ensemble as one RewardModel: K members scored together, put on one scale, aggregated
conservatively (Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization"), with the
members' disagreement as the uncertainty (Eisenstein et al. 2023, "Helping or Herding?").

An ensemble folder holds ``ensemble.json`` and the members in one of three forms:

  independent   ``members/m0/`` ... each a normal reward-model folder: K full models, the most diverse,
                about K times one model's scoring time and memory.
  shared        ``model/``: one reward-model folder whose K outputs are the members (one backbone, K heads):
                one forward pass, so about one model's cost; members differ only in their heads.
  lora          ``base/`` (the frozen backbone with a reward head) and ``adapters/m0/`` ... (peft LoRA
                adapters, each with its own head). The weights are shared (parameters about 1.5x one
                model's for K=5, rank 8), the compute is not: activations differ from the first adapted
                layer on, so each adapter runs the whole network, K times one model's time plus the LoRA
                overhead. One pass per adapter by default; ``lora_batching="mixed"`` scores all adapters in
                one mixed-adapter batch (peft ``adapter_names``), which was slower on CPU.

``ensemble.json`` says the form, the member names, each member's data subset and seed, the default
aggregator (with lambda and q), and each member's reward mean/std on a reference set. ``score`` returns
``Scores(reward=aggregate, members=[K, B] normalised rewards, uncertainty=std across members [B])``.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.errors import InputError
from rewardgauge.io import read_json_object
from rewardgauge.modeling.formatting import ensure_pad_token
from rewardgauge.modeling.loading import (
    is_decoder_only,
    load_sequence_classifier,
    load_tokenizer,
    quiet_transformers,
    reward_logits,
)
from rewardgauge.rewards.aggregators import AGGREGATORS, disagreement, get_aggregator, normalise
from rewardgauge.rewards.base import Meta, RewardModel, Scores
from rewardgauge.rewards.hf import RewardModelInfo, encode_batch, token_length

ENSEMBLE_FILE = "ensemble.json"
EnsembleForm = Literal["independent", "shared", "lora", "blocks"]
FORMS: tuple[str, ...] = get_args(EnsembleForm)
FORMAT_VERSION = 1
# Where each form keeps its members, relative to the ensemble folder.
MEMBERS_DIR, SHARED_DIR, BASE_DIR, ADAPTERS_DIR = "members", "model", "base", "adapters"

# (input_ids [b, T], attention_mask [b, T]) -> raw member rewards [b, K]
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EnsembleSpec:
    """What ``ensemble.json`` says."""

    form: str
    member_names: list[str]
    mean: list[float]  # each member's reward mean on the reference set
    std: list[float]  # ... and its std (population)
    aggregator: str = "min"
    lam: float = 1.0
    q: float = 0.25
    member_info: list[dict] = field(default_factory=list)  # per member: name, seed, subset, pairs drawn, ...
    reference: dict = field(default_factory=dict)  # where the normalisation statistics came from
    base_model: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def k(self) -> int:
        return len(self.member_names)

    def to_dict(self) -> dict:
        return {"format_version": self.format_version, "form": self.form, "members": self.k,
                "member_names": self.member_names, "aggregator": self.aggregator, "lam": self.lam, "q": self.q,
                "normalisation": {"mean": self.mean, "std": self.std, **self.reference},
                "member_info": self.member_info, "base_model": self.base_model}

    @classmethod
    def read(cls, folder: str | os.PathLike) -> EnsembleSpec:
        """Read and check ``FOLDER/ensemble.json``; a bad value raises InputError naming the field."""
        path = Path(folder) / ENSEMBLE_FILE
        if not path.is_file():
            raise InputError(f"not an ensemble folder (no {ENSEMBLE_FILE})", path=folder)
        raw = read_json_object(path)

        def bad(name: str, message: str) -> InputError:
            return InputError(message, path=path, field=name)

        version = raw.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise bad("format_version", f"format {version!r} is newer than this rewardgauge reads ({FORMAT_VERSION})")
        form = raw.get("form")
        if form not in FORMS:
            raise bad("form", f"must be one of {list(FORMS)}, got {form!r}")
        k = raw.get("members")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise bad("members", f"must be the number of members (an integer >= 1), got {k!r}")
        names = raw.get("member_names", [f"m{i}" for i in range(k)])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise bad("member_names", "must be a list of distinct, non-empty names")
        if len(names) != k:
            raise bad("members", f"says {k} members but member_names lists {len(names)}")
        norm = raw.get("normalisation") or {}
        mean, std = norm.get("mean"), norm.get("std")
        for name, values in (("mean", mean), ("std", std)):
            if not isinstance(values, list) or len(values) != k or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise bad("normalisation", f"'{name}' must list one number per member ({k}), got {values!r}")
        if not all(s > 0 for s in std):
            raise bad("normalisation", f"'std' must be positive, got {std}")
        aggregator = raw.get("aggregator", "min")
        if aggregator not in AGGREGATORS:
            raise bad("aggregator", f"must be one of {list(AGGREGATORS)}, got {aggregator!r}")
        lam, q = raw.get("lam", 1.0), raw.get("q", 0.25)
        if not isinstance(lam, (int, float)) or lam < 0:
            raise bad("lam", f"must be a number >= 0, got {lam!r}")
        if not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise bad("q", f"must be a number in [0, 1], got {q!r}")
        info = raw.get("member_info", [])
        if not isinstance(info, list) or (info and len(info) != k):
            raise bad("member_info", f"must list one entry per member ({k})")
        return cls(form=form, member_names=names, mean=[float(v) for v in mean], std=[float(v) for v in std],
                   aggregator=aggregator, lam=float(lam), q=float(q), member_info=info,
                   reference={a: b for a, b in norm.items() if a not in ("mean", "std")},
                   base_model=str(raw.get("base_model", "")), format_version=version)


def ensemble_scores(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, aggregator: str = "min",
                    lam: float = 1.0, q: float = 0.25) -> Scores:
    """Raw member rewards [K, B] -> Scores: each member normalised with its reference (mean, std), then the
    aggregate of the normalised rewards as ``reward`` and their population std as ``uncertainty``."""
    members = normalise(raw, mean, std)
    return Scores(reward=get_aggregator(aggregator, lam, q)(members), members=members,
                  uncertainty=disagreement(members))


def reference_stats(raw: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-member mean and population std of raw rewards [K, N] on a reference set; a constant member gets
    std 1 (it is then only shifted), so it cannot blow up when divided by."""
    std = raw.double().std(dim=1, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return raw.double().mean(dim=1).tolist(), std.tolist()


class EnsembleRewardModel(RewardModel):
    """K reward models that score as one. Build with ``from_pretrained``, which also takes the aggregate
    (``aggregator``, ``lam``, ``q``; default: the one saved in ``ensemble.json``).

    Scoring is thread-safe: the independent and shared forms only run forward passes; the lora form switches
    peft adapters under a lock, so its calls take turns."""

    def __init__(self, spec: EnsembleSpec, forward: Forward, tokenizer, info: RewardModelInfo,
                 device: torch.device, batch_size: int = 64, aggregator: str | None = None,
                 lam: float | None = None, q: float | None = None, name: str = "ensemble"):
        self.spec, self.forward, self.tokenizer, self.info = spec, forward, tokenizer, info
        self.device, self.batch_size, self.name = device, batch_size, name
        self.aggregator = aggregator or spec.aggregator
        self.lam = spec.lam if lam is None else float(lam)
        self.q = spec.q if q is None else float(q)
        get_aggregator(self.aggregator)  # an unknown name fails here, not at the first score
        self.mean = torch.tensor(spec.mean, dtype=torch.float32)
        self.std = torch.tensor(spec.std, dtype=torch.float32)

    @property
    def member_names(self) -> list[str]:
        return self.spec.member_names

    @property
    def form(self) -> str:
        return self.spec.form

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, aggregator: str | None = None, lam: float | None = None,
                        q: float | None = None, device: str | torch.device | None = None,
                        batch_size: int = 64, lora_batching: str = "sequential") -> EnsembleRewardModel:
        """Load an ensemble folder (see the module docstring); a missing or extra member, members with
        different tokenizers, or K that does not match the members found raise InputError.

        ``lora_batching`` (lora form): ``"sequential"``, one pass per adapter, or ``"mixed"``, one pass over
        K copies of the batch with peft's ``adapter_names``. Mixed measured slower and larger on CPU
        (bench/ensemble_score.py) because peft splits every LoRA layer's batch per adapter with Python-side
        bookkeeping, and it holds K copies of the activations at once.
        """
        if lora_batching not in ("sequential", "mixed"):
            raise InputError(f"must be 'sequential' or 'mixed', got {lora_batching!r}", field="lora_batching")
        root = Path(path)
        spec = EnsembleSpec.read(root)
        if aggregator is not None and aggregator not in AGGREGATORS:
            raise InputError(f"unknown aggregator {aggregator!r} (known: {', '.join(AGGREGATORS)})", field="aggregator")
        if lam is not None and not lam >= 0:
            raise InputError(f"must be >= 0, got {lam}", field="lam")
        if q is not None and not 0 <= q <= 1:
            raise InputError(f"must be in [0, 1], got {q}", field="quantile")
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if spec.form == "lora":
            forward, tokenizer, info, modules = _load_lora(root, spec, mixed=lora_batching == "mixed")
        else:
            loader = {"independent": _load_independent, "shared": _load_shared, "blocks": _load_shared}[spec.form]
            forward, tokenizer, info, modules = loader(root, spec)
        for m in modules:
            m.to(device).eval()
        return cls(spec, forward, tokenizer, info, device, batch_size=batch_size,
                   aggregator=aggregator, lam=lam, q=q, name=root.name or "ensemble")

    def sort_key(self, prompt: Prompt, response: str) -> int:
        return token_length(self.tokenizer, prompt, response, self.info.max_length)

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        """Raw member rewards of the batch, each normalised with its reference statistics, then aggregated."""
        ids, mask = encode_batch(self.tokenizer, prompts, responses, self.info.max_length)
        with torch.inference_mode():
            raw = self.forward(ids.to(self.device), mask.to(self.device)).float().cpu().T
        return ensemble_scores(raw, self.mean, self.std, self.aggregator, self.lam, self.q)


# ---- loading the three forms: each returns (forward, tokenizer, info, modules) -------------------------

def _spec_path(root: Path) -> Path:
    return root / ENSEMBLE_FILE


def _check_found(root: Path, spec: EnsembleSpec, where: str, complete: Callable[[Path], bool]) -> list[Path]:
    """The member folders ``root/where/<name>``, in member order; missing, incomplete or extra ones raise."""
    parent = root / where
    found = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if parent.is_dir() else []
    for name in spec.member_names:
        if name not in found:
            raise InputError(f"member '{name}' is missing: no folder {where}/{name}", path=_spec_path(root),
                             field="members")
        if not complete(parent / name):
            raise InputError(f"member '{name}' is incomplete: {where}/{name} holds no saved model",
                             path=_spec_path(root), field="members")
    extra = sorted(set(found) - set(spec.member_names))
    if extra:
        raise InputError(f"says {spec.k} members but {len(found)} member folders are in {where}/ "
                         f"(not listed: {', '.join(extra)})", path=_spec_path(root), field="members")
    return [parent / name for name in spec.member_names]


def _same_tokenizer(first, first_dir: Path, other, other_dir: Path) -> None:
    """Members score one tokenisation of the input, so their vocabularies must be identical."""
    a, b = first.get_vocab(), other.get_vocab()
    if a != b:
        detail = (f"{len(b)} tokens vs {len(a)}" if len(a) != len(b)
                  else f"{sum(a.get(t) != i for t, i in b.items())} tokens map to other ids")
        raise InputError(f"tokenizer differs from that of {first_dir.parent.name}/{first_dir.name} ({detail}); "
                         "every member must share one tokenizer", path=other_dir, field="tokenizer")


def _read_info(folder: Path) -> RewardModelInfo:
    return RewardModelInfo.read(folder) or RewardModelInfo()


def _same_format(first: RewardModelInfo, other: RewardModelInfo, other_dir: Path) -> None:
    for name in ("max_length", "prompt_format"):
        if getattr(first, name) != getattr(other, name):
            raise InputError(f"{name} {getattr(other, name)!r} differs from the first member's "
                             f"{getattr(first, name)!r}", path=other_dir / "rewardgauge.json", field=name)


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _load_independent(root: Path, spec: EnsembleSpec):
    dirs = _check_found(root, spec, MEMBERS_DIR, _has_model)
    tokenizer, info = load_tokenizer(dirs[0]), _read_info(dirs[0])
    models = []
    for d in dirs:
        if d is not dirs[0]:
            _same_tokenizer(tokenizer, dirs[0], load_tokenizer(d), d)
            _same_format(info, _read_info(d), d)
        model = load_sequence_classifier(d)
        if model.config.num_labels != 1:
            raise InputError(f"a member has one output, this one has {model.config.num_labels}", path=d,
                             field="num_labels")
        ensure_pad_token(tokenizer, model)
        models.append(model)
    decoder_only = is_decoder_only(models[0].config)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([reward_logits(m, ids, mask, decoder_only) for m in models], dim=1)
    return forward, tokenizer, info, models


def _load_shared(root: Path, spec: EnsembleSpec):
    folder = root / SHARED_DIR
    if not _has_model(folder):
        raise InputError(f"the {spec.form} form's model is missing: no saved model in {SHARED_DIR}/",
                         path=_spec_path(root), field="members")
    tokenizer, info = load_tokenizer(folder), _read_info(folder)
    model = load_sequence_classifier(folder)
    if model.config.num_labels != spec.k:
        raise InputError(f"says {spec.k} members but {SHARED_DIR}/ has {model.config.num_labels} outputs",
                         path=_spec_path(root), field="members")
    ensure_pad_token(tokenizer, model)
    decoder_only = is_decoder_only(model.config)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return reward_logits(model, ids, mask, decoder_only)
    return forward, tokenizer, info, [model]


def _adapter_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the tokenizer: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}",
                         path=folder, field="tokenizer") from None


def _load_lora(root: Path, spec: EnsembleSpec, mixed: bool):
    try:
        from peft import PeftModel
    except ImportError:
        raise InputError("the lora form needs peft: pip install 'rewardgauge[peft]'", path=_spec_path(root),
                         field="form") from None
    base_dir = root / BASE_DIR
    if not _has_model(base_dir):
        raise InputError(f"the lora form's base model is missing: no saved model in {BASE_DIR}/",
                         path=_spec_path(root), field="members")
    dirs = _check_found(root, spec, ADAPTERS_DIR, lambda d: (d / "adapter_config.json").is_file())
    tokenizer, info = load_tokenizer(base_dir), _read_info(base_dir)
    for d in dirs:
        if (d / "tokenizer_config.json").is_file():  # an adapter folder has no config.json: load it directly
            _same_tokenizer(tokenizer, base_dir, _adapter_tokenizer(d), d)
    base = load_sequence_classifier(base_dir)
    ensure_pad_token(tokenizer, base)
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(base, str(dirs[0]), adapter_name=spec.member_names[0])
        for name, d in zip(spec.member_names[1:], dirs[1:]):
            model.load_adapter(str(d), adapter_name=name)
    decoder_only = is_decoder_only(base.config)
    k = spec.k
    # peft keeps the adapter choice on the shared modules (set_adapter; adapter_names installs forward hooks
    # for one call), so one forward at a time: a concurrent call would run under the other's adapter.
    lock = threading.Lock()

    def mixed_forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # One mixed-adapter batch: row block k goes through adapter k (LoRA weights and its own head).
        b = ids.shape[0]
        names = [n for n in spec.member_names for _ in range(b)]
        extra = {"use_cache": False} if decoder_only else {"attention_mask": mask.repeat(k, 1)}
        with lock:
            logits = model(input_ids=ids.repeat(k, 1), adapter_names=names, **extra).logits
        return logits[:, 0].reshape(k, b).T

    def sequential_forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = []
        with lock:
            for name in spec.member_names:
                model.set_adapter(name)
                out.append(reward_logits(model, ids, mask, decoder_only)[:, 0])
        return torch.stack(out, dim=1)
    return (mixed_forward if mixed else sequential_forward), tokenizer, info, [model]
