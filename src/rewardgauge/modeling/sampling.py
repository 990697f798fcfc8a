"""Sample continuations of partial responses from a causal LM: what the rollout step labeller and best-of-N
need from a policy. ``Sampler`` is the interface (any callable of that shape plugs in, a scripted fake in
tests); ``HFSampler`` implements it with ``transformers``' ``generate``.

A partial response (``prefix``) is continued inside the assistant turn: the prompt is rendered as for
generation, the prefix's tokens follow it, and what the model adds is returned as text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.modeling.formatting import encode_prompts, ensure_pad_token, pad
from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer


class Sampler(Protocol):
    def __call__(self, prompts: Sequence[Prompt], prefixes: Sequence[str], n: int, seed: int) -> list[list[str]]:
        """``n`` sampled continuations of each ``(prompt, prefix)``; the same seed gives the same samples."""


class HFSampler:
    """Sampling with ``model.generate`` (temperature ``temperature``, at most ``max_new_tokens``)."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 64, temperature: float = 1.0, batch_size: int = 256):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        self.pad_id = ensure_pad_token(tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None, **kwargs) -> HFSampler:
        model = load_causal_lm(path, field="policy")
        model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))).eval()
        return cls(model, load_tokenizer(path, field="policy"), **kwargs)

    @torch.no_grad()
    def __call__(self, prompts: Sequence[Prompt], prefixes: Sequence[str], n: int, seed: int) -> list[list[str]]:
        heads = encode_prompts(self.tokenizer, prompts)
        tails = self.tokenizer(list(prefixes), add_special_tokens=False)["input_ids"] if prefixes else []
        rows = [h + t for h, t in zip(heads, tails) for _ in range(n)]
        texts: list[str] = []
        device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(rows), self.batch_size):
                ids, mask = pad(rows[start:start + self.batch_size], self.pad_id, side="left")
                out = self.model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                    temperature=self.temperature, top_k=0, top_p=1.0, max_new_tokens=self.max_new_tokens,
                    pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id)
                texts += self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
