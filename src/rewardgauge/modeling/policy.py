"""Tiny Llama policies built from config: small enough to learn the lab language in minutes on 2 CPU cores."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from rewardgauge.errors import InputError
from rewardgauge.io import atomic_dir, iter_jsonl
from rewardgauge.modeling.loading import quiet_transformers
from rewardgauge.modeling.presets import PRESETS
from rewardgauge.modeling.tokenizer import SPECIAL_TOKENS, build_word_tokenizer

# Fields of lab / data records that hold text the model must be able to spell.
TEXT_FIELDS = ("prompt", "chosen", "rejected", "response", "text")


def llama_config(tokenizer: PreTrainedTokenizerBase, preset: str = "small", max_positions: int = 512) -> LlamaConfig:
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})", field="preset")
    return LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, **PRESETS[preset])


def build_policy(tokenizer: PreTrainedTokenizerBase, preset: str = "small", seed: int = 0,
                 max_positions: int = 512) -> LlamaForCausalLM:
    """A randomly initialised Llama whose vocabulary is ``tokenizer``'s; the same ``seed`` gives the same weights."""
    config = llama_config(tokenizer, preset, max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def corpus_texts(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Every text of a JSONL corpus: prompts (plain or chat messages) and responses of any record kind."""
    for path in paths:
        for _, obj in iter_jsonl(path):
            for name in TEXT_FIELDS:
                value = obj.get(name)
                if isinstance(value, str):
                    yield value
                elif isinstance(value, list):  # chat messages
                    yield from (m["content"] for m in value if isinstance(m, dict) and isinstance(m.get("content"), str))


def init_model(corpus: Iterable[str | os.PathLike], out: str | os.PathLike, preset: str = "small",
               seed: int = 0, min_count: int = 1, max_positions: int = 512) -> int:
    """Build the word tokenizer from ``corpus`` files and a fresh tiny Llama; save both to ``out``.

    Returns the parameter count. ``out`` then loads with ``AutoModelForCausalLM``/``AutoTokenizer``.
    """
    corpus = list(corpus)
    tokenizer = build_word_tokenizer(corpus_texts(corpus), min_count=min_count)
    if len(tokenizer) == len(SPECIAL_TOKENS):
        raise InputError("corpus has no text in fields " + ", ".join(TEXT_FIELDS), path=corpus[0])
    model = build_policy(tokenizer, preset, seed, max_positions)
    tokenizer.model_max_length = max_positions  # a real limit, not transformers' "no limit" sentinel
    with atomic_dir(Path(out)) as tmp, quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return count_parameters(model)
