"""A Hugging Face sequence-classification model as a RewardModel: ours from ``rewardgauge rm train`` or any
plain reward model folder / hub name (one output). Multi-objective folders give one reward per aspect and
a combined reward with the weights saved at training time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.errors import InputError
from rewardgauge.io import read_json_object
from rewardgauge.modeling.formatting import encode_pairs, ensure_pad_token, pad, prompt_format
from rewardgauge.modeling.loading import (
    is_decoder_only,
    load_sequence_classifier,
    load_tokenizer,
    reward_features,
    reward_logits,
)
from rewardgauge.rewards.base import Meta, RewardModel, Scores

T = TypeVar("T")

INFO_FILE = "rewardgauge.json"
# Runs made before the project was renamed (rewardlens -> rewardgauge) hold this name; still read.
LEGACY_INFO_FILE = "rewardlens.json"


@dataclass
class RewardModelInfo:
    """What ``rewardgauge.json`` beside the weights says about a reward model."""

    kind: str = "reward_model"
    aspects: list[str] | None = None  # multi-objective: output k is aspect k
    aspect_weights: dict[str, float] | None = None  # combined reward = Σ_k w_k r_k
    loss: str = "bt"
    max_length: int = 512
    prompt_format: str = "chat_template"
    base_model: str = ""
    format_version: int = 1
    combined_from: dict | None = None  # a one-output export: {"aspects": [...], "weights": {...}} folded in

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> RewardModelInfo | None:
        path = Path(folder) / INFO_FILE
        if not path.is_file():
            path = Path(folder) / LEGACY_INFO_FILE
        return read_info_file(cls, path) if path.is_file() else None


def read_info_file(cls: type[T], path: Path) -> T:
    """A dataclass from the JSON file beside a model's weights; keys it does not know (newer versions) are
    ignored, broken JSON is one InputError naming the file and line."""
    raw = read_json_object(path)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in known})


def combined_weights(aspects: Sequence[str], weights: dict[str, float] | None) -> list[float]:
    """Weights of the combined reward, one per aspect; unnamed aspects weigh 0, no weights at all means equal."""
    if not weights:
        return [1.0 / len(aspects)] * len(aspects)
    unknown = sorted(set(weights) - set(aspects))
    if unknown:
        raise ValueError(f"aspect_weights names unknown aspects {unknown} (aspects: {list(aspects)})")
    return [float(weights.get(a, 0.0)) for a in aspects]


def token_length(tokenizer, prompt: Prompt, response: str, max_length: int) -> int:
    """A sort key for length bucketing: the tokens of the prompt's texts and of the response, up to
    ``max_length``. It leaves out what the chat template or the encoder adds (the same for every one-turn
    prompt), so it orders inputs as their encoded lengths do without rendering the template, which would
    double the cost of encoding."""
    texts = [prompt] if isinstance(prompt, str) else [m.get("content", "") for m in prompt]
    texts.append(response)
    fast = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: 4x less overhead per call
    if fast is not None:
        n = sum(len(e.ids) for e in fast.encode_batch(texts, add_special_tokens=False))
    else:
        n = sum(len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return min(n, max_length)


def encode_batch(tokenizer, prompts: Sequence[Prompt], responses: Sequence[str],
                 max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One right-padded batch ``(input_ids [b, T], attention_mask [b, T])`` for a reward model."""
    return pad(encode_pairs(tokenizer, prompts, responses, max_length).ids, tokenizer.pad_token_id)


class HFRewardModel(RewardModel):
    """Scores (prompt, response) pairs with a sequence-classification model, batched by token length.

    The model is scored in the mode it is in and never switched: ``from_pretrained`` puts it in eval mode
    once, and whoever scores a model they are training (evaluation during ``rm train``) puts it in eval mode
    around the call, as its only user. Switching inside ``score`` would let one thread's call run another's
    forward pass in the wrong mode.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, info: RewardModelInfo | None = None,
                 batch_size: int = 64, name: str = "hf"):
        self.model, self.tokenizer = model, tokenizer
        self.info = info or RewardModelInfo(prompt_format=prompt_format(tokenizer))
        self.batch_size, self.name = batch_size, name
        ensure_pad_token(tokenizer, model)
        self.decoder_only = is_decoder_only(model.config)
        num_labels = model.config.num_labels
        aspects = self.info.aspects
        if aspects is None and num_labels != 1:
            raise InputError(f"model has {num_labels} outputs but no aspects in {INFO_FILE}; "
                             "a reward model has one output or one per named aspect")
        if aspects is not None and len(aspects) != num_labels:
            raise InputError(f"{INFO_FILE} names {len(aspects)} aspects but the model has {num_labels} outputs")
        self.weights = None if aspects is None else torch.tensor(
            combined_weights(aspects, self.info.aspect_weights), dtype=torch.float32)

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike, device: str | torch.device | None = None,
                        batch_size: int = 64, dtype: torch.dtype | None = None) -> HFRewardModel:
        """Load a folder written by ``rewardgauge rm train`` or any HF reward model (folder or hub name)."""
        info = RewardModelInfo.read(path_or_name) if Path(path_or_name).is_dir() else None
        tokenizer = load_tokenizer(path_or_name)
        model = load_sequence_classifier(path_or_name, dtype=dtype or torch.float32)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(device).eval()
        return cls(model, tokenizer, info, batch_size=batch_size, name=Path(str(path_or_name)).name or "hf")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sort_key(self, prompt: Prompt, response: str) -> int:
        return token_length(self.tokenizer, prompt, response, self.info.max_length)

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        ids, mask = encode_batch(self.tokenizer, prompts, responses, self.info.max_length)
        with torch.no_grad():  # not inference_mode: the model may be mid-training (evaluation during rm train)
            logits = reward_logits(self.model, ids.to(self.device), mask.to(self.device), self.decoder_only)
        logits = logits.float().cpu()
        if self.weights is None:
            return Scores(reward=logits[:, 0])
        aspects = {a: logits[:, k] for k, a in enumerate(self.info.aspects)}
        return Scores(reward=logits @ self.weights, aspects=aspects)

    def features(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """[N, hidden] the last hidden state the reward head reads, per (prompt, response), in input order
        (the monitor's latent-outlier detector measures how far the policy's samples move in this space)."""
        n = len(prompts)
        out: torch.Tensor | None = None
        order = sorted(range(n), key=lambda i: -self.sort_key(prompts[i], responses[i]))
        for start in range(0, n, self.batch_size or n):
            idx = order[start:start + (self.batch_size or n)]
            ids, mask = encode_batch(self.tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx],
                                     self.info.max_length)
            with torch.no_grad():
                h = reward_features(self.model, ids.to(self.device), mask.to(self.device), self.decoder_only)
            if out is None:
                out = torch.empty((n, h.shape[-1]), dtype=torch.float32)
            out[torch.tensor(idx)] = h.float().cpu()
        return out if out is not None else torch.zeros((0, self.model.config.hidden_size))
