"""Process reward model training: a per-token head on any HF backbone, trained with binary cross-entropy at
the last token of every labelled step (``losses.step_bce_loss``), on hard (true/false) or soft (a Monte Carlo
fraction) labels. With ``target="outcome"`` only the final answer's correctness is taught, at the last step:
an outcome verifier (Cobbe et al. 2021) on the same backbone and data, for a like-for-like comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rewardgauge import losses
from rewardgauge.data.steps import StepRecord, load_step_records, unescape_separator
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_steps, ensure_pad_token, pad, prompt_format
from rewardgauge.modeling.loading import is_decoder_only, load_token_classifier, load_tokenizer
from rewardgauge.rewards.process import PRM_INFO_FILE, PRMInfo, ProcessRewardModel
from rewardgauge.train.config import PRMTrainConfig
from rewardgauge.train.loop import LoopResult, fit, make_accelerator, save_model
from rewardgauge.train.reward import disable_dropout
from rewardgauge.train.rundir import Callback, RunDir


def step_targets(record: StepRecord, target: str, sources: set[str]) -> list[float | None]:
    """Per step, the training target in [0, 1] or None (not trained)."""
    if target == "outcome":
        return [None] * (len(record.steps) - 1) + [None if record.outcome is None else float(record.outcome)]
    return [None if label is None or (sources and source not in sources) else float(label)
            for label, source in zip(record.labels, record.sources)]


def encode_records(tokenizer, records: list[StepRecord], separator: str, target: str, sources: set[str],
                   max_length: int) -> tuple[list[tuple[list[int], list[tuple[int, float]]]], int, int]:
    """Examples ``(ids, [(position, target), ...])`` for the records with at least one trainable step;
    also how many sequences were cut and how many records had nothing to train on."""
    enc = encode_steps(tokenizer, [r.prompt for r in records], [r.steps for r in records], separator, max_length)
    examples, empty = [], 0
    for record, ids, bounds in zip(records, enc.ids, enc.boundaries):
        labelled = [(b, y) for b, y in zip(bounds, step_targets(record, target, sources))
                    if b is not None and y is not None]
        if labelled:
            examples.append((ids, labelled))
        else:
            empty += 1
    return examples, enc.truncated, empty


def make_collate(pad_id: int):
    def collate(batch):
        ids, mask = pad([x for x, _ in batch], pad_id)
        target, step_mask = torch.zeros(ids.shape), torch.zeros(ids.shape)
        for row, (_, labelled) in enumerate(batch):
            for position, y in labelled:
                target[row, position], step_mask[row, position] = y, 1.0
        return {"input_ids": ids, "attention_mask": mask, "target": target, "step_mask": step_mask}
    return collate


def make_loss_fn(decoder_only: bool):
    def loss_fn(model, batch):
        # Right padding: a decoder's real tokens never see the pads, so it needs no mask.
        mask = None if decoder_only else batch["attention_mask"]
        logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits[..., 0].float()
        target, step_mask = batch["target"], batch["step_mask"]
        value = losses.step_bce_loss(logits, target, step_mask)
        right = ((logits > 0) == (target >= 0.5)).float() * step_mask
        return value, {"loss": value.detach(), "step_accuracy": right.sum() / step_mask.sum().clamp_min(1),
                       "steps": step_mask.sum()}
    return loss_fn


def _load(path: str, separator: str, field: str) -> list[StepRecord]:
    records = load_step_records(path, separator)
    if not records:
        raise InputError("no step records", path=path, field=field)
    return records


def train_prm(cfg: PRMTrainConfig, callbacks: Sequence[Callback] = ()) -> LoopResult:
    """Train, then save to ``cfg.out``: model + tokenizer (safetensors), prm.json, config.yaml, metrics. Every
    input is checked before ``cfg.out`` is created or changed."""
    from accelerate.utils import set_seed

    from rewardgauge.rewards.step_evaluation import evaluate_steps

    out = Path(cfg.out)
    separator = unescape_separator(cfg.separator)
    acc = make_accelerator(cfg)
    run = RunDir(out, cfg, acc, inputs={"model": cfg.model, "data": cfg.data, "eval_data": cfg.eval_data})
    records = _load(cfg.data, separator, "data")
    eval_records = _load(cfg.eval_data, separator, "eval_data") if cfg.eval_data else None
    tokenizer = load_tokenizer(cfg.model)
    set_seed(cfg.seed)  # the new head's initialisation
    model = load_token_classifier(cfg.model)
    pad_id = ensure_pad_token(tokenizer, model)
    disable_dropout(model)
    examples, truncated, empty = encode_records(tokenizer, records, separator, cfg.target, set(cfg.sources),
                                                cfg.max_length)
    if not examples:
        what = "an 'outcome'" if cfg.target == "outcome" else "a step label" + (
            f" from {', '.join(cfg.sources)}" if cfg.sources else "")
        raise InputError(f"no record has {what} to train on", path=cfg.data, field="data")
    if acc.is_main_process and (truncated or empty):
        print(f"note: {truncated} of {len(records)} sequences cut to max_length={cfg.max_length}; "
              f"{empty} records without a trainable label skipped")

    aggregation = cfg.aggregation or ("last" if cfg.target == "outcome" else "min")
    info = PRMInfo(separator=separator, aggregation=aggregation, target=cfg.target, max_length=cfg.max_length,
                   prompt_format=prompt_format(tokenizer), base_model=str(cfg.model))
    evaluate = None
    if eval_records:
        def evaluate(m):
            was_training = m.training
            m.eval()  # the training loop owns the model: scoring never switches modes itself
            try:
                report = evaluate_steps(ProcessRewardModel(m, tokenizer, info, batch_size=2 * cfg.batch_size),
                                        eval_records)
            finally:
                m.train(was_training)
            key = "outcome_accuracy" if cfg.target == "outcome" else "step_accuracy"
            return {key: report[key]} if report.get(key) is not None else {}

    result = fit(acc, model, examples, [len(x) for x, _ in examples], make_collate(pad_id),
                 make_loss_fn(is_decoder_only(model.config)), cfg, run, callbacks=callbacks, evaluate=evaluate,
                 eval_every=cfg.eval_every, desc="prm train")
    if acc.is_main_process:
        save_model(result.model, tokenizer, out, {PRM_INFO_FILE: info.to_dict()})
    acc.wait_for_everyone()
    return result
