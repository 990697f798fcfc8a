"""``rewardgauge rm train --members K``: train K reward models that differ by data subset and seed, and save
them as one ensemble folder (see ``rewardgauge.rewards.ensemble`` for the layout and the three forms).

Why: a single reward model's errors are exactly where RL pushes. Members trained on different subsets make
partly different errors, so optimising a conservative aggregate (the minimum, or mean - lambda * std) lets
the policy improve only where they agree (Coste et al. 2023: up to +70 % gold reward for best-of-n under
25 % label noise with 5 members). Members that share a pretrained backbone share some errors (Eisenstein et
al. 2023), so the forms trade diversity for cost: independent > lora > shared.

Fan-out: under ``torchrun --nproc_per_node N`` the independent and lora forms give member k to process
k % N; each process trains its members alone, in a child process outside the torchrun world (no DDP between
members, each on its own GPU where there are GPUs), then all processes meet, and process 0 writes
``ensemble.json``. The shared form is one model, so
under torchrun it simply trains data-parallel. Without torchrun, members train one after another.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rewardgauge.data.io import load_pairs
from rewardgauge.data.records import PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.modeling.loading import load_tokenizer
from rewardgauge.rewards.ensemble import (
    ADAPTERS_DIR,
    BASE_DIR,
    ENSEMBLE_FILE,
    MEMBERS_DIR,
    SHARED_DIR,
    EnsembleSpec,
    reference_stats,
)
from rewardgauge.rewards.hf import INFO_FILE, HFRewardModel, RewardModelInfo
from rewardgauge.train.config import SUBSETS, RewardTrainConfig
from rewardgauge.train.reward import train_reward_model
from rewardgauge.train.rundir import RunDir


def member_weights(n: int, k: int, subset: str, seed: int) -> np.ndarray:
    """[K, n] how many times member k trains on pair i.

    bootstrap: n draws with replacement per member (about 63 % distinct pairs each, Breiman 1996);
    disjoint: a random partition into K shards of n/K pairs; full: every pair once (members differ by seed).
    """
    if subset == "full":
        return np.ones((k, n), dtype=np.int64)
    if subset == "disjoint":
        if n < k:
            raise ValueError(f"{n} pairs cannot make {k} disjoint shards")
        weights = np.zeros((k, n), dtype=np.int64)
        order = np.random.default_rng([seed, k]).permutation(n)
        for j, shard in enumerate(np.array_split(order, k)):
            weights[j, shard] = 1
        return weights
    if subset == "bootstrap":
        return np.stack([np.bincount(np.random.default_rng([seed, j]).integers(0, n, n), minlength=n)
                         for j in range(k)])
    raise ValueError(f"unknown subset {subset!r} (known: {', '.join(SUBSETS)})")


def reference_set(pairs: Sequence[PreferencePair], size: int, seed: int) -> tuple[list, list[str]]:
    """Up to ``size`` responses (both sides of randomly chosen training pairs) on which each member's reward
    mean and std are measured; the same pairs and seed give the same set."""
    order = np.random.default_rng([seed, 1]).permutation(len(pairs))[: (size + 1) // 2]
    prompts, responses = [], []
    for i in order.tolist():
        prompts += [pairs[i].prompt, pairs[i].prompt]
        responses += [pairs[i].chosen, pairs[i].rejected]
    return prompts[:size], responses[:size]


def add_lora(model: torch.nn.Module, rank: int, alpha: float) -> torch.nn.Module:
    """LoRA adapters on every linear layer; the reward head trains in full (peft's SEQ_CLS task saves it with
    the adapter), so each member has its own head as well as its own adapters."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="SEQ_CLS")
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


@dataclass
class EnsembleRun:
    """What ``train_ensemble`` did: the folder, one summary per member, and (on process 0) the spec saved."""

    out: Path
    members: list[dict] = field(default_factory=list)
    spec: EnsembleSpec | None = None


def _reference_raw(model: torch.nn.Module, tokenizer, folder: Path, prompts: list, responses: list[str],
                   batch_size: int) -> torch.Tensor:
    """[outputs, N] raw rewards of the model just trained (still in memory) on the reference set."""
    info = RewardModelInfo.read(folder)
    model.eval()  # training is over; scoring uses the model in the mode it is in
    scores = HFRewardModel(model, tokenizer, info, batch_size=batch_size).score(prompts, responses)
    if info.kind == "ensemble_heads":
        return torch.stack([scores.aspects[a] for a in info.aspects])
    return scores.reward[None]


def _summary(name: str, seed: int, weights: np.ndarray, result, subset: str, own_metrics: bool = True) -> dict:
    """One member's line in ensemble.json. A shared head has no run of its own (one joint run): its loss is its
    own term of the joint loss (``loss_<name>`` in the metrics)."""
    if own_metrics:
        last = {k: v for k, v in result.last_metrics.items() if k in ("loss", "accuracy", "eval_accuracy")}
    else:
        last = {"loss": result.last_metrics[f"loss_{name}"]} if f"loss_{name}" in result.last_metrics else {}
    return {"name": name, "seed": seed, "subset": subset, "pairs": int(weights.sum()),
            "distinct_pairs": int((weights > 0).sum()), "steps": result.steps,
            "seconds": round(result.seconds, 2), **last}


def _all_gather(obj, rank: int, world: int) -> list:
    """Every process's ``obj``, in rank order; also the barrier before process 0 writes ``ensemble.json``."""
    from datetime import timedelta

    import torch.distributed as dist

    # Members may take hours, and processes finish them at different times.
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(hours=24))
    try:
        gathered = [None] * world
        dist.all_gather_object(gathered, obj)
        return gathered
    finally:
        dist.destroy_process_group()


def _prune(parent: Path, keep: Sequence[str]) -> None:
    """Member folders of an earlier run with more members would make the folder fail to load."""
    if parent.is_dir():
        for p in parent.iterdir():
            if p.is_dir() and re.fullmatch(r"m\d+", p.name) and p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)


@dataclass
class _Plan:
    """Everything the members are trained from, derived from the config alone (so a child process that
    trains some of the members rebuilds the same plan); building it checks every input."""

    pairs: list[PreferencePair]
    weights: np.ndarray  # [K, n] draws of pair i by member k
    names: list[str]
    starts: list[str]  # each member's starting model
    ref_prompts: list
    ref_responses: list[str]
    tokenizer: object  # what every member trains with


def _plan(cfg: RewardTrainConfig) -> _Plan:
    if cfg.ensemble_form == "lora":
        try:
            import peft  # noqa: F401
        except ImportError:
            raise InputError("ensemble_form 'lora' needs peft: pip install 'rewardgauge[peft]'",
                             field="ensemble_form") from None
    pairs = load_pairs(cfg.data)
    if not pairs:
        raise InputError("no preference pairs", path=cfg.data, field="data")
    try:
        weights = member_weights(len(pairs), cfg.members, cfg.subset, cfg.seed)
    except ValueError as e:
        raise InputError(str(e), path=cfg.data, field="subset") from None
    ref_prompts, ref_responses = reference_set(pairs, cfg.reference_size, cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    starts = list(cfg.member_models) or [str(cfg.model)] * cfg.members
    if cfg.member_models:
        _check_same_tokenizer(tokenizer, starts)
    return _Plan(pairs, weights, [f"m{i}" for i in range(cfg.members)], starts, ref_prompts, ref_responses,
                 tokenizer)


def _train_members(cfg: RewardTrainConfig, plan: _Plan, indices: Sequence[int],
                   note: str = "") -> dict[str, tuple[list[float], dict]]:
    """Train members ``indices`` one after another: {name: (raw rewards on the reference set, summary)}."""
    parent = Path(cfg.out) / (ADAPTERS_DIR if cfg.ensemble_form == "lora" else MEMBERS_DIR)
    mine = {}
    for i in indices:
        name, seed, w = plan.names[i], cfg.seed + i, plan.weights[i]
        print(f"member {name} (seed {seed}, {int((w > 0).sum())} distinct of {len(plan.pairs)} pairs){note}",
              flush=True)
        out = parent / name
        subset = [plan.pairs[j] for j in np.repeat(np.arange(len(plan.pairs)), w)]
        wrap = (lambda m: add_lora(m, cfg.lora_rank, cfg.lora_alpha)) if cfg.ensemble_form == "lora" else None
        member_cfg = dataclasses.replace(cfg, out=str(out), seed=seed, members=1, model=plan.starts[i],
                                         member_models=[])
        result = train_reward_model(member_cfg, pairs=subset, wrap_model=wrap)
        raw = _reference_raw(result.model, plan.tokenizer, out, plan.ref_prompts, plan.ref_responses,
                             2 * cfg.batch_size)
        mine[name] = (raw[0].tolist(), {**_summary(name, seed, w, result, cfg.subset), "model": plan.starts[i]})
        del result
    return mine


# Variables by which torchrun makes a process one of several; a member trains alone, without them.
_DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                    "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT")


def _train_members_alone(cfg: RewardTrainConfig, indices: Sequence[int], rank: int, world: int,
                         local_rank: int) -> dict[str, tuple[list[float], dict]]:
    """This torchrun process's members, trained in a child process that is not part of the torchrun world
    (accelerate decides on DDP from the environment, which the child gets without torchrun's variables;
    this process's own environment is left as it is). On GPUs the child sees this process's GPU only."""
    import subprocess
    import sys
    import tempfile

    from rewardgauge.config import config_to_dict
    from rewardgauge.io import write_json_atomic

    env = {k: v for k, v in os.environ.items() if k not in _DISTRIBUTED_ENV and not k.startswith("TORCHELASTIC_")}
    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(torch.cuda.device_count()))))
        devices = [d for d in visible.split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = devices[local_rank % len(devices)]
    with tempfile.TemporaryDirectory(prefix="rewardgauge-members-") as tmp:
        job, answer = Path(tmp) / "job.json", Path(tmp) / "result.json"
        write_json_atomic(job, {"config": config_to_dict(cfg), "members": list(indices), "result": str(answer),
                                "note": f" on process {rank} of {world}"})
        code = subprocess.run([sys.executable, "-m", "rewardgauge.train.ensemble", str(job)], env=env).returncode
        result = json.loads(answer.read_text(encoding="utf-8")) if answer.is_file() else {}
    if "error" in result:
        raise InputError(result["error"])
    if code != 0 or "members" not in result:
        raise RuntimeError(f"training members {list(indices)} on process {rank} failed (exit code {code})")
    return {name: (raw, summary) for name, (raw, summary) in result["members"].items()}


def train_ensemble(cfg: RewardTrainConfig) -> EnsembleRun:
    """Train ``cfg.members`` members in ``cfg.ensemble_form`` into ``cfg.out``; ``ensemble.json`` is written
    last, so a folder without it is incomplete. Every input is checked before ``cfg.out`` changes."""
    from rewardgauge.io import write_json_atomic

    root, form, k = Path(cfg.out), cfg.ensemble_form, cfg.members
    # The ensemble folder holds config.yaml and ensemble.json; each member is a run folder of its own.
    run = RunDir(root, cfg, inputs={"model": cfg.model, "member_models": cfg.member_models, "data": cfg.data,
                                    "eval_data": cfg.eval_data})
    plan = _plan(cfg)
    names = plan.names
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    run.begin()
    if run.is_main:
        (root / ENSEMBLE_FILE).unlink(missing_ok=True)
        if not cfg.resume:
            _prune(root / (ADAPTERS_DIR if form == "lora" else MEMBERS_DIR), names)

    if form in ("shared", "blocks"):
        # One model, K outputs: trains like any reward model (data-parallel under torchrun).
        out = root / SHARED_DIR
        result = train_reward_model(dataclasses.replace(cfg, out=str(out), members=1), pairs=plan.pairs,
                                    member_weights=dict(zip(names, plan.weights)),
                                    wrap_model=_member_blocks(cfg) if form == "blocks" else None)
        raws, summaries = {}, []
        if rank == 0:
            raw = _reference_raw(result.model, plan.tokenizer, out, plan.ref_prompts, plan.ref_responses,
                                 2 * cfg.batch_size)
            raws = dict(zip(names, raw.tolist()))
            # Heads share the run's seed; blocks members start from their own seed's perturbation.
            seeds = [cfg.seed + i if form == "blocks" else cfg.seed for i in range(k)]
            summaries = [_summary(n, s, w, result, cfg.subset, own_metrics=False)
                         for n, s, w in zip(names, seeds, plan.weights)]
    else:
        if world > 1:
            mine = _train_members_alone(cfg, range(rank, k, world), rank, world, local_rank)
            parts = _all_gather(mine, rank, world)
        else:
            parts = [_train_members(cfg, plan, range(k))]
        if rank == 0:
            merged = {n: v for part in parts for n, v in part.items()}
            raws = {n: merged[n][0] for n in names}
            summaries = [merged[n][1] for n in names]

    if rank != 0:
        return EnsembleRun(out=root)
    if form == "lora":
        _save_base(cfg, root, RewardModelInfo.read(root / ADAPTERS_DIR / names[0]))
    mean, std = reference_stats(torch.tensor([raws[n] for n in names]))
    spec = EnsembleSpec(form=form, member_names=names, mean=mean, std=std, aggregator=cfg.aggregator,
                        lam=cfg.lam, q=cfg.quantile, member_info=summaries, base_model=str(cfg.model),
                        reference={"source": str(cfg.data), "responses": len(plan.ref_responses), "seed": cfg.seed})
    write_json_atomic(root / ENSEMBLE_FILE, spec.to_dict())
    return EnsembleRun(out=root, members=summaries, spec=spec)


def _member_blocks(cfg: RewardTrainConfig) -> Callable[[torch.nn.Module], torch.nn.Module]:
    """The blocks form: the loaded model's backbone becomes the trunk, its top layers each member's own."""
    from rewardgauge.modeling.trunk_ensemble import TrunkEnsemble

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        try:
            return TrunkEnsemble.from_backbone(model.base_model, cfg.members, cfg.member_layers,
                                               seeds=[cfg.seed + i for i in range(cfg.members)],
                                               noise=cfg.member_noise)
        except ValueError as e:
            raise InputError(f"ensemble_form 'blocks': {e}", path=cfg.model, field="ensemble_form") from None
    return wrap


def _check_same_tokenizer(tokenizer, models: Sequence[str]) -> None:
    """Members scored in one pass must read the same token ids: every start model needs ``tokenizer``'s vocab."""
    vocab = tokenizer.get_vocab()
    for model in models:
        if load_tokenizer(model, field="member_models").get_vocab() != vocab:
            raise InputError(f"{model} has a different tokenizer from {tokenizer.name_or_path}; members must "
                             "share one", field="member_models")


def _save_base(cfg: RewardTrainConfig, root: Path, info: RewardModelInfo) -> None:
    """The frozen backbone the adapters were trained on (its head is unused: each adapter has its own)."""
    from rewardgauge.modeling.formatting import ensure_pad_token
    from rewardgauge.modeling.loading import load_sequence_classifier
    from rewardgauge.train.loop import save_model

    tokenizer, model = load_tokenizer(cfg.model), load_sequence_classifier(cfg.model, num_labels=1)
    ensure_pad_token(tokenizer, model)
    save_model(model, tokenizer, root / BASE_DIR, {INFO_FILE: dataclasses.replace(info, kind="lora_base").to_dict()})


def _child_main(job_path: str) -> int:
    """``python -m rewardgauge.train.ensemble JOB``: train some members alone (see _train_members_alone)."""
    from rewardgauge.io import write_json_atomic

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    cfg = RewardTrainConfig(**job["config"])
    try:
        members = _train_members(cfg, _plan(cfg), job["members"], job["note"])
    except InputError as e:
        write_json_atomic(job["result"], {"error": str(e)})
        return 2
    write_json_atomic(job["result"], {"members": members})
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_child_main(sys.argv[1]))
