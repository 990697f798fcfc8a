"""Reward-model training: any HF model folder or name -> a sequence-classification reward model
(``AutoModelForSequenceClassification``, or the backbone plus our head, see ``modeling.heads``).

Losses: Bradley-Terry, BT with margin, soft-label BT from vote fractions, multi-objective (one output per
aspect), each optionally with reward centering (see ``rewardgauge.losses``). Chosen and rejected go through
the model in one forward pass. For a decoder they share their common prefix (the prompt, at least), computed
once, and several pairs fill one row without padding (``layout``, see ``modeling.reward_forward``: the same
rewards and gradients as two full passes); an encoder reads (prompt, response) as a text pair, so its two
sequences share nothing and go as one dynamically padded batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rewardgauge import losses
from rewardgauge.data.io import load_pairs
from rewardgauge.data.records import PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.modeling.export import combined_head, ignore_token_types
from rewardgauge.modeling.formatting import encode_pairs, ensure_pad_token, pad, prompt_format
from rewardgauge.modeling.heads import BackboneRewardModel
from rewardgauge.modeling.loading import (
    is_decoder_only,
    load_sequence_classifier,
    load_tokenizer,
    reward_logits,
)
from rewardgauge.modeling.logprobs import Layout
from rewardgauge.modeling.reward_forward import (
    group_rewards,
    group_sequences,
    reward_head,
)
from rewardgauge.rewards.card import COMBINED_DIR, write_model_card
from rewardgauge.rewards.hf import INFO_FILE, HFRewardModel, RewardModelInfo, combined_weights
from rewardgauge.rewards.pairs import score_pairs
from rewardgauge.train.config import RewardTrainConfig
from rewardgauge.train.loop import LoopResult, fit, make_accelerator, save_model
from rewardgauge.train.rundir import Callback, RunDir


def resolve_aspects(cfg: RewardTrainConfig, pairs: list[PreferencePair]) -> list[str] | None:
    if cfg.loss != "multi":
        return None
    seen = sorted({a for p in pairs for a in (p.aspects or {})})
    aspects = list(cfg.aspects) or seen
    if not aspects:
        raise InputError("loss 'multi' needs per-aspect labels ('aspects') in the pairs", path=cfg.data,
                         field="aspects")
    missing = sorted(set(cfg.aspects) - set(seen))
    if missing:
        raise InputError(f"no pair labels aspects {missing} (labelled: {seen})", path=cfg.data, field="aspects")
    return aspects


def pair_targets(pairs: list[PreferencePair], loss: str, aspects: list[str] | None, path: str) -> list[list[float]]:
    """Per pair, what the loss compares against: [] (bt), [m] (margin), [p] (soft), [p_1..p_K, mask_1..mask_K]."""
    if loss == "bt":
        return [[] for _ in pairs]
    if loss == "margin":
        if all(p.margin is None for p in pairs):
            raise InputError("loss 'margin' needs a 'margin' in the pairs; none has one", path=path, field="margin")
        return [[float(p.margin or 0.0)] for p in pairs]
    if loss == "soft":
        return [[p.preference] for p in pairs]
    rows = []
    for p in pairs:
        labels = p.aspects or {}
        rows.append([float(labels.get(a, 0.5)) for a in aspects] + [float(a in labels) for a in aspects])
    return rows


def encode_examples(tokenizer, pairs: list[PreferencePair], targets: list[list[float]], max_length: int):
    """(chosen_ids, rejected_ids, target) per pair, the longer side's length (for bucketing), and how many
    sequences were cut. The bucketing key stays the longer side in every layout, not the grouped length a packed
    row costs: the same seed then makes the same batches in every layout, so a run's figures do not move when
    the layout changes (sorting by grouped length moved a reduced quickstart's held-out accuracy by 3.3 points)."""
    prompts = [p.prompt for p in pairs]
    chosen = encode_pairs(tokenizer, prompts, [p.chosen for p in pairs], max_length)
    rejected = encode_pairs(tokenizer, prompts, [p.rejected for p in pairs], max_length)
    examples = list(zip(chosen.ids, rejected.ids, targets))
    lengths = [max(len(c), len(r)) for c, r, _ in examples]
    return examples, lengths, chosen.truncated + rejected.truncated


def make_collate(pad_id: int, grouped: bool):
    """Batches of pairs: ``grouped`` (decoders) as ``GroupedSequences`` with chosen and rejected of pair b as
    sequences 2b and 2b+1; otherwise the chosen then the rejected sequences, right-padded, with their mask."""
    def collate(batch):
        target = torch.tensor([t for _, _, t in batch], dtype=torch.float32)
        if grouped:
            return {"pairs": group_sequences([(c, r) for c, r, _ in batch], pad_id), "target": target}
        ids, mask = pad([c for c, _, _ in batch] + [r for _, r, _ in batch], pad_id)
        return {"input_ids": ids, "attention_mask": mask, "target": target}
    return collate


def pair_rewards(model, batch, layout: Layout, decoder_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C] rewards of the chosen and of the rejected responses of a collated batch, in float32."""
    if "pairs" in batch:
        rewards = group_rewards(model, batch["pairs"], layout).float()
        return rewards[0::2], rewards[1::2]
    rewards = reward_logits(model, batch["input_ids"], batch["attention_mask"], decoder_only).float()
    return rewards.chunk(2)


def make_loss_fn(loss: str, center_coef: float, decoder_only: bool, aspects: Sequence[str] = (),
                 layout: Layout = "packed"):
    """The loss and its metrics: ``loss`` (what is optimised), with ``multi`` also ``loss_<aspect>`` per output
    (an ensemble's shared heads are its members), and with centering ``loss_center`` for that term alone."""
    n_aspects = len(aspects)

    def loss_fn(model, batch):
        r_c, r_r = pair_rewards(model, batch, layout, decoder_only)
        target = batch["target"]
        if loss == "multi":
            p, mask = target[:, :n_aspects], target[:, n_aspects:]
            value = losses.multi_objective_loss(r_c, r_r, p, mask)
            parts = {f"loss_{a}": losses.multi_objective_loss(r_c[:, k:k + 1], r_r[:, k:k + 1], p[:, k:k + 1],
                                                              mask[:, k:k + 1]).detach()
                     for k, a in enumerate(aspects)}
            decided = mask * (p != 0.5)
            correct = ((r_c > r_r) == (p > 0.5)) * decided
            accuracy = correct.sum() / decided.sum().clamp_min(1)
        else:
            parts = {}
            r_c, r_r = r_c[:, 0], r_r[:, 0]
            if loss == "bt":
                value = losses.bradley_terry_loss(r_c, r_r)
            elif loss == "margin":
                value = losses.bradley_terry_margin_loss(r_c, r_r, target[:, 0])
            else:
                value = losses.soft_bradley_terry_loss(r_c, r_r, target[:, 0])
            accuracy = (r_c > r_r).float().mean()
        if center_coef:
            center = losses.reward_centering_loss(r_c, r_r, center_coef)
            parts["loss_center"] = center.detach()
            value = value + center
        metrics = {"loss": value.detach(), "accuracy": accuracy, "margin": (r_c - r_r).detach().mean(),
                   "reward_mean": (r_c.detach().mean() + r_r.detach().mean()) / 2, **parts}
        return value, metrics
    return loss_fn


def disable_dropout(model: torch.nn.Module) -> None:
    """Reward training is deterministic given the data (as TRL's RewardTrainer does by default)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _load_pairs(path: str, field_name: str) -> list[PreferencePair]:
    pairs = load_pairs(path)
    if not pairs:
        raise InputError("no preference pairs", path=path, field=field_name)
    return pairs


def train_reward_model(cfg: RewardTrainConfig, callbacks: Sequence[Callback] = (), *,
                       pairs: list[PreferencePair] | None = None,
                       member_weights: dict[str, Sequence[float]] | None = None,
                       wrap_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> LoopResult:
    """Train, then save to ``cfg.out``: model + tokenizer (safetensors), rewardgauge.json, config.yaml, metrics.
    Every input is checked before ``cfg.out`` is created or changed.

    For ensembles (``rewardgauge.train.ensemble``): ``pairs`` replaces reading ``cfg.data`` (a member's subset);
    ``member_weights`` {head: per-pair weight} trains one output per head, each a soft-BT loss on the pair's
    label weighted by that head's weights (a shared backbone with K heads); ``wrap_model`` replaces the
    loaded model before training (e.g. with LoRA adapters).
    """
    from accelerate.utils import set_seed

    out = Path(cfg.out)
    acc = make_accelerator(cfg)
    run = RunDir(out, cfg, acc, inputs={"model": cfg.model, "data": cfg.data, "eval_data": cfg.eval_data})
    pairs = _load_pairs(cfg.data, "data") if pairs is None else pairs
    eval_pairs = _load_pairs(cfg.eval_data, "eval_data") if cfg.eval_data else None
    aspects = resolve_aspects(cfg, pairs)
    try:
        weights = dict(zip(aspects, combined_weights(aspects, cfg.aspect_weights))) if aspects else None
    except ValueError as e:
        raise InputError(str(e), field="aspect_weights") from None
    targets = pair_targets(pairs, cfg.loss, aspects, cfg.data)
    loss, kind = cfg.loss, "reward_model"
    if member_weights:
        # Head k's label is the pair's preference (1 for bt), masked by how often member k drew the pair.
        aspects, loss, kind = list(member_weights), "multi", "ensemble_heads"
        labels = [p.preference if cfg.loss == "soft" else 1.0 for p in pairs]
        columns = list(zip(*member_weights.values()))
        targets = [[y] * len(aspects) + [float(w) for w in ws] for y, ws in zip(labels, columns)]

    tokenizer = load_tokenizer(cfg.model)
    set_seed(cfg.seed)  # the new head's initialisation
    id2label = {i: a for i, a in enumerate(aspects)} if aspects else None
    model = load_sequence_classifier(cfg.model, num_labels=len(aspects) if aspects else 1,
                                     **({"id2label": id2label, "label2id": {a: i for i, a in id2label.items()}}
                                        if id2label else {}))
    pad_id = ensure_pad_token(tokenizer, model)
    disable_dropout(model)
    if wrap_model is not None:
        model = wrap_model(model)
    decoder_only = is_decoder_only(model.config)
    grouped = decoder_only and cfg.layout != "plain"
    if grouped and reward_head(model) is None:
        grouped = False
        if acc.is_main_process:
            print(f"note: {type(model).__name__} has no per-position `score` head: chosen and rejected run as "
                  "two full sequences (layout plain)")
    if grouped and cfg.layout == "shared" and isinstance(model, BackboneRewardModel):
        raise InputError("layout 'shared' needs a model that runs with a KV cache; a backbone with our reward head "
                         "does not (use packed)", field="layout")
    examples, lengths, truncated = encode_examples(tokenizer, pairs, targets, cfg.max_length)
    if truncated and acc.is_main_process:
        print(f"note: {truncated} of {2 * len(pairs)} sequences cut to max_length={cfg.max_length} tokens")

    info = RewardModelInfo(kind=kind, aspects=aspects, aspect_weights=weights, loss=cfg.loss,
                           max_length=cfg.max_length, prompt_format=prompt_format(tokenizer),
                           base_model=str(cfg.model))
    evaluate = None
    if eval_pairs:
        def evaluate(m):
            was_training = m.training
            m.eval()  # the training loop owns the model: scoring never switches modes itself
            try:
                scores = score_pairs(HFRewardModel(m, tokenizer, info, batch_size=2 * cfg.batch_size), eval_pairs)
            finally:
                m.train(was_training)
            return {"accuracy": round(float((scores.margins > 0).float().mean()), 6)}

    loss_fn = make_loss_fn(loss, cfg.center_coef, decoder_only, aspects or (), cfg.layout)
    result = fit(acc, model, examples, lengths, make_collate(pad_id, grouped), loss_fn, cfg, run, callbacks=callbacks,
                 evaluate=evaluate, eval_every=cfg.eval_every, desc="rm train")
    if acc.is_main_process:
        tokenizer.model_max_length = cfg.max_length  # what it was trained on; consumers truncate there too
        ignore_token_types(result.model)  # trained on token type 0 only: any token_type_ids give its scores
        save_model(result.model, tokenizer, out, {INFO_FILE: info.to_dict()})
        if kind == "reward_model" and aspects:
            save_combined(result.model, tokenizer, info, out / COMBINED_DIR)
        write_model_card(out)
    acc.wait_for_everyone()
    return result


def save_combined(model: torch.nn.Module, tokenizer, info: RewardModelInfo, folder: Path) -> None:
    """A multi-objective model's one-output variant: its combined weights folded into the head, saved with its
    own rewardgauge.json and card, so single-reward consumers load it as any reward model."""
    weights = combined_weights(info.aspects, info.aspect_weights)
    one = RewardModelInfo(kind="reward_model", loss=info.loss, max_length=info.max_length,
                          prompt_format=info.prompt_format, base_model=info.base_model,
                          combined_from={"aspects": list(info.aspects), "weights": dict(zip(info.aspects, weights))})
    with combined_head(model, weights) as folded:
        save_model(folded, tokenizer, folder, {INFO_FILE: one.to_dict()})
    write_model_card(folder)
