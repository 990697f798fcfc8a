"""Supervised fine-tuning: next-token cross-entropy on the response tokens of (prompt, response) demonstrations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rewardgauge.data.io import load_demonstrations
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_pairs, ensure_pad_token, pad
from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer
from rewardgauge.train.config import SFTConfig
from rewardgauge.train.loop import LoopResult, fit, make_accelerator, save_model
from rewardgauge.train.rundir import Callback, RunDir

IGNORE = -100  # label of tokens the loss skips (prompt and padding), as in transformers


def make_collate(pad_id: int):
    def collate(batch):
        ids, _ = pad([x for x, _ in batch], pad_id)
        labels = ids.clone()
        positions = torch.arange(ids.shape[1])
        prompt_lens = torch.tensor([n for _, n in batch])
        lengths = torch.tensor([len(x) for x, _ in batch])
        labels[(positions[None] < prompt_lens[:, None]) | (positions[None] >= lengths[:, None])] = IGNORE
        return {"input_ids": ids, "labels": labels}
    return collate


def sft_loss(model, batch):
    # Right padding in a causal LM: pads come after every real token, so no attention mask is needed.
    out = model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False)
    return out.loss, {"loss": out.loss.detach(), "tokens": (batch["labels"] != IGNORE).sum().float()}


def run_sft(cfg: SFTConfig, callbacks: Sequence[Callback] = ()) -> LoopResult:
    """Fine-tune ``cfg.model`` on ``cfg.data``; save model + tokenizer (safetensors) to ``cfg.out``. Every input
    is checked before ``cfg.out`` is created or changed."""
    from accelerate.utils import set_seed

    out = Path(cfg.out)
    acc = make_accelerator(cfg)
    run = RunDir(out, cfg, acc, inputs={"model": cfg.model, "data": cfg.data})
    demos = load_demonstrations(cfg.data)
    if not demos:
        raise InputError("no demonstrations", path=cfg.data, field="data")
    tokenizer = load_tokenizer(cfg.model)
    set_seed(cfg.seed)
    model = load_causal_lm(cfg.model)
    pad_id = ensure_pad_token(tokenizer)
    enc = encode_pairs(tokenizer, [d.prompt for d in demos], [d.response for d in demos], cfg.max_length)
    if enc.truncated and acc.is_main_process:
        print(f"note: {enc.truncated} of {len(demos)} sequences cut to max_length={cfg.max_length} tokens")
    examples = [(x, n) for x, n in zip(enc.ids, enc.prompt_lens) if n < len(x)]
    if not examples:
        raise InputError("no demonstration has response tokens left after formatting", path=cfg.data)
    result = fit(acc, model, examples, [len(x) for x, _ in examples], make_collate(pad_id), sft_loss, cfg, run,
                 callbacks=callbacks, desc="sft")
    if acc.is_main_process:
        save_model(result.model, tokenizer, out)
    acc.wait_for_everyone()
    return result
