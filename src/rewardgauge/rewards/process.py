"""A process reward model (PRM) as a RewardModel: P(step correct) at the end of every step, and one reward per
solution from an aggregate of them (min, product, last, mean; ``aggregators.aggregate_steps``).

``Scores.steps`` holds each response's step scores (what a dense per-step RL reward uses), ``Scores.reward``
their aggregate. Responses are cut into steps with the separator the PRM was trained with (``prm.json``).
The model is any HF backbone with one output per token (``modeling.loading.load_token_classifier``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.data.steps import DEFAULT_SEPARATOR, STEP_AGGREGATIONS, split_steps
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_steps, ensure_pad_token, pad, prompt_format
from rewardgauge.modeling.loading import is_decoder_only, load_token_classifier, load_tokenizer
from rewardgauge.rewards.aggregators import aggregate_steps
from rewardgauge.rewards.base import Meta, RewardModel, Scores
from rewardgauge.rewards.hf import read_info_file

PRM_INFO_FILE = "prm.json"


@dataclass
class PRMInfo:
    """What ``prm.json`` beside the weights says about a process reward model."""

    separator: str = DEFAULT_SEPARATOR
    aggregation: str = "min"
    target: str = "steps"  # "outcome": trained on the final answer's correctness only (an outcome verifier)
    max_length: int = 512
    prompt_format: str = "chat_template"
    base_model: str = ""
    kind: str = "process_reward_model"
    format_version: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> PRMInfo:
        path = Path(folder) / PRM_INFO_FILE
        if not path.is_file():
            raise InputError("not a process reward model folder (no prm.json)", path=folder)
        return read_info_file(cls, path)


def is_prm_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / PRM_INFO_FILE).is_file()


class ProcessRewardModel(RewardModel):
    """Step scores from a per-token head read at each step's last token; reward = their aggregate.

    Like ``HFRewardModel`` it scores the model in the mode it is in (``from_pretrained`` sets eval once; a
    training loop that evaluates its model sets the mode around the call), so scoring is thread-safe.
    """

    name = "prm"

    def __init__(self, model: torch.nn.Module, tokenizer, info: PRMInfo | None = None, batch_size: int = 64,
                 aggregation: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.info = info or PRMInfo(prompt_format=prompt_format(tokenizer))
        self.aggregation = aggregation or self.info.aggregation
        if self.aggregation not in STEP_AGGREGATIONS:
            raise InputError(f"unknown step aggregation '{self.aggregation}' (known: {', '.join(STEP_AGGREGATIONS)})",
                             field="aggregation")
        self.batch_size = batch_size
        self.pad_id = ensure_pad_token(tokenizer, model)
        self.decoder_only = is_decoder_only(model.config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        batch_size: int = 64, aggregation: str | None = None) -> ProcessRewardModel:
        """Load a folder written by ``rewardgauge prm train``."""
        info = PRMInfo.read(path)
        model = load_token_classifier(path)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(device).eval()
        prm = cls(model, load_tokenizer(path), info, batch_size=batch_size, aggregation=aggregation)
        prm.name = f"prm-{prm.aggregation}"
        return prm

    def with_aggregation(self, aggregation: str) -> ProcessRewardModel:
        """The same model (shared weights) with another aggregate."""
        other = ProcessRewardModel(self.model, self.tokenizer, self.info, self.batch_size, aggregation)
        other.name = f"prm-{aggregation}"
        return other

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def step_scores(self, prompts: Sequence[Prompt], step_lists: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """P(step correct) for each step of each solution, NaN for a step cut off by max_length; batched
        longest first. Does not change the model's train/eval mode (scoring stays thread-safe)."""
        enc = encode_steps(self.tokenizer, prompts, step_lists, self.info.separator, self.info.max_length)
        order = sorted(range(len(enc.ids)), key=lambda i: -len(enc.ids[i]))
        out: list[torch.Tensor] = [torch.zeros(0)] * len(enc.ids)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = pad([enc.ids[i] for i in idx], self.pad_id)
            logits = self.model(input_ids=ids.to(self.device),
                                attention_mask=None if self.decoder_only else mask.to(self.device)).logits[..., 0]
            probs = torch.sigmoid(logits.float()).cpu()
            for row, i in enumerate(idx):
                scores = torch.full((len(enc.boundaries[i]),), float("nan"))
                seen = [k for k, b in enumerate(enc.boundaries[i]) if b is not None]
                scores[seen] = probs[row, [enc.boundaries[i][k] for k in seen]]
                out[i] = scores
        return out

    def score_steps(self, prompts: Sequence[Prompt], step_lists: Sequence[Sequence[str]]) -> Scores:
        """Scores of solutions already cut into steps; the aggregate skips steps cut off by max_length (NaN)."""
        steps = self.step_scores(prompts, step_lists)
        return Scores(reward=aggregate_steps([s[~s.isnan()] for s in steps], self.aggregation), steps=steps)

    def sort_key(self, prompt: Prompt, response: str) -> int:
        return len(response)  # characters: batches of similar length without tokenizing twice

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        return self.score_steps(prompts, [split_steps(r, self.info.separator) for r in responses])
