"""Direct preference optimisation: sigmoid DPO, IPO and conservative DPO against a frozen reference.

Top to bottom: encode each pair as (prompt, chosen, rejected) token ids; compute the reference's summed
log-probabilities of every chosen and rejected response once, before training (one no-grad pass over the
data, split across processes); then ``fit`` trains the policy with the loss of ``cfg.loss`` on batches in
which the chosen and the rejected response share one forward of their prompt (the Prefix Grouper forward,
``modeling.logprobs``). The result is a policy folder with ``dpo.json`` (beta and the reference), which
``load_reward_model`` reads as the implicit reward beta * log(pi / pi_ref) (``rewards.dpo``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardgauge import losses
from rewardgauge.data.io import load_pairs
from rewardgauge.data.records import PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_pairs, ensure_pad_token, pad
from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer
from rewardgauge.modeling.logprobs import response_logprobs
from rewardgauge.rewards.dpo import DPO_FILE
from rewardgauge.train.config import DPOConfig
from rewardgauge.train.loop import LoopResult, fit, make_accelerator, save_model
from rewardgauge.train.rundir import Callback, RunDir


@dataclass
class PairIds:
    """One preference pair as token ids, and the reference's log-probabilities of its two responses."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0

    @property
    def length(self) -> int:
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))


def encode_preference_pairs(tokenizer, pairs: Sequence[PreferencePair], max_length: int,
                            max_prompt_length: int) -> tuple[list[PairIds], int]:
    """Token ids of each pair; prompts keep their last ``max_prompt_length`` tokens and responses their
    first ``max_length - len(prompt)`` (as TRL cuts them). Returns the pairs and how many were cut."""
    prompts = [p.prompt for p in pairs]
    chosen = encode_pairs(tokenizer, prompts, [p.chosen for p in pairs])
    rejected = encode_pairs(tokenizer, prompts, [p.rejected for p in pairs])
    out, cut = [], 0
    for c_ids, c_n, r_ids, r_n in zip(chosen.ids, chosen.prompt_lens, rejected.ids, rejected.prompt_lens):
        prompt = c_ids[:c_n]
        if r_ids[:r_n] != prompt:  # a template whose prompt tokens depend on the response: no shared prompt
            raise InputError("the prompt's tokens differ between the chosen and the rejected response; "
                             "DPO needs a tokenizer whose chat template renders the prompt the same way")
        c_resp, r_resp = c_ids[c_n:], r_ids[r_n:]
        keep_prompt = prompt[-max_prompt_length:]
        room = max_length - len(keep_prompt)
        if len(keep_prompt) < len(prompt) or len(c_resp) > room or len(r_resp) > room:
            cut += 1
        out.append(PairIds(keep_prompt, c_resp[:room], r_resp[:room]))
    return out, cut


def make_collate(pad_id: int):
    """Prompts [B, P] left-padded; responses [2B, R] right-padded, chosen and rejected of pair b in rows 2b and
    2b+1 (a group of 2 on one prompt); the reference's log-probabilities [B] each."""
    def collate(batch: list[PairIds]) -> dict[str, torch.Tensor]:
        prompt_ids, prompt_mask = pad([x.prompt for x in batch], pad_id, side="left")
        response_ids, response_mask = pad([r for x in batch for r in (x.chosen, x.rejected)], pad_id)
        return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "response_ids": response_ids,
                "response_mask": response_mask,
                "ref_chosen": torch.tensor([x.ref_chosen for x in batch], dtype=torch.float32),
                "ref_rejected": torch.tensor([x.ref_rejected for x in batch], dtype=torch.float32)}
    return collate


def pair_logprobs(model, batch: dict[str, torch.Tensor], layout: str = "packed") -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the chosen and the rejected responses, [B] each, in one forward."""
    out = response_logprobs(model, batch["prompt_ids"], batch["prompt_mask"], batch["response_ids"],
                            batch["response_mask"], group_size=2, layout=layout)
    sums = out.logprobs.sum(-1)
    return sums[0::2], sums[1::2]


@torch.no_grad()
def reference_logprobs(acc, model, pairs: list[PairIds], collate, batch_size: int) -> None:
    """Fill in ``ref_chosen`` / ``ref_rejected`` of every pair: one pass of the reference, each process
    taking every world-th batch, the results gathered to all."""
    from accelerate.utils import gather_object

    was_training = model.training
    model.eval()
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].length)  # similar lengths pad less
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mine = []
    for idx in batches[acc.process_index::acc.num_processes]:
        batch = {k: v.to(acc.device) for k, v in collate([pairs[i] for i in idx]).items()}
        chosen, rejected = pair_logprobs(model, batch)
        mine.extend(zip(idx, chosen.tolist(), rejected.tolist()))
    found = gather_object(mine) if acc.num_processes > 1 else mine
    for i, c, r in found:
        pairs[i].ref_chosen, pairs[i].ref_rejected = c, r
    model.train(was_training)


def make_loss(cfg: DPOConfig):
    def dpo_loss_fn(model, batch):
        chosen, rejected = pair_logprobs(model, batch, cfg.layout)
        ref_c, ref_r = batch["ref_chosen"], batch["ref_rejected"]
        if cfg.loss == "ipo":
            loss = losses.ipo_loss(chosen, rejected, ref_c, ref_r, cfg.beta)
        else:
            smoothing = cfg.label_smoothing if cfg.loss == "conservative" else 0.0
            loss = losses.dpo_loss(chosen, rejected, ref_c, ref_r, cfg.beta, smoothing)
        with torch.no_grad():
            r_c = losses.dpo_implicit_reward(chosen, ref_c, cfg.beta)
            r_r = losses.dpo_implicit_reward(rejected, ref_r, cfg.beta)
        return loss, {"loss": loss.detach(), "reward_chosen": r_c.mean(), "reward_rejected": r_r.mean(),
                      "reward_margin": (r_c - r_r).mean(), "accuracy": (r_c > r_r).float().mean(),
                      "logp_chosen": chosen.detach().mean(), "logp_rejected": rejected.detach().mean()}
    return dpo_loss_fn


def run_dpo(cfg: DPOConfig, callbacks: Sequence[Callback] = ()) -> LoopResult:
    """Train ``cfg.model`` on ``cfg.data`` with DPO; save the policy, its tokenizer and ``dpo.json`` to
    ``cfg.out``. Every input is checked before ``cfg.out`` is created or changed."""
    from accelerate.utils import set_seed

    out = Path(cfg.out)
    acc = make_accelerator(cfg)
    reference_path = cfg.ref_model or cfg.model
    run = RunDir(out, cfg, acc, inputs={"model": cfg.model, "ref_model": cfg.ref_model, "data": cfg.data})
    pairs = load_pairs(cfg.data)
    if not pairs:
        raise InputError("no preference pairs", path=cfg.data, field="data")
    tokenizer = load_tokenizer(cfg.model)
    if cfg.ref_model:
        _check_same_vocabulary(tokenizer, load_tokenizer(cfg.ref_model, field="ref_model"), cfg.ref_model)
    pad_id = ensure_pad_token(tokenizer)
    examples, cut = encode_preference_pairs(tokenizer, pairs, cfg.max_length, cfg.max_prompt_length)
    if cut and acc.is_main_process:
        print(f"note: {cut} of {len(pairs)} pairs cut to max_prompt_length={cfg.max_prompt_length} / "
              f"max_length={cfg.max_length} tokens")
    if any(not x.chosen or not x.rejected for x in examples):
        raise InputError("a pair has no response tokens left after max_length", path=cfg.data, field="max_length")
    set_seed(cfg.seed)
    model = load_causal_lm(cfg.model)
    collate = make_collate(pad_id)
    model.to(acc.device)
    # The reference is frozen: its log-probabilities are computed once here, not at every step.
    reference = model if not cfg.ref_model else load_causal_lm(cfg.ref_model, field="ref_model").to(acc.device)
    reference_logprobs(acc, reference, examples, collate, cfg.batch_size * 2)
    del reference
    result = fit(acc, model, examples, [x.length for x in examples], collate, make_loss(cfg), cfg, run,
                 callbacks=callbacks, desc="dpo")
    if acc.is_main_process:
        save_model(result.model, tokenizer, out, extra={DPO_FILE: {
            "beta": cfg.beta, "loss": cfg.loss, "reference": _portable(reference_path, out)}})
    acc.wait_for_everyone()
    return result


def _portable(path: str, out: Path) -> str:
    """The reference as saved in dpo.json: relative to the run folder when it is a local folder (so that a
    pipeline's folder can move as a whole), else the hub name as given."""
    p = Path(path)
    if not p.exists():
        return path
    return os.path.relpath(p.resolve(), out.resolve())


def _check_same_vocabulary(tokenizer, other, path: str) -> None:
    if tokenizer.get_vocab() != other.get_vocab():
        raise InputError("the reference's tokenizer differs from the policy's: log-probabilities of the same "
                         "text would not be comparable", path=path, field="ref_model")
