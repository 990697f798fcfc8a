"""PPO's value model: a causal LM's backbone with a scalar head on every position, V(x, y_<t).

A plain module rather than ``AutoModelForTokenClassification`` because the value of every response token is
computed with the prompt's keys and values shared by its group (``modeling.logprobs``), and transformers'
token-classification outputs do not return the KV cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from rewardgauge.modeling.generation import cache_keyword, output_cache


@dataclass
class ValueOutput:
    logits: torch.Tensor  # [B, T, 1]
    cache: Any = None


class ValueModel(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1)
        # Values start at 0 everywhere: the first advantages are then the rewards themselves.
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self._cache_keyword = cache_keyword(backbone)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, use_cache: bool = False, cache: Any = None) -> ValueOutput:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=use_cache, **{self._cache_keyword: cache})
        return ValueOutput(self.head(out.last_hidden_state).float(), output_cache(out) if use_cache else None)


def load_value_model(name: str | os.PathLike, field: str = "value.model") -> ValueModel:
    """The backbone of a causal LM folder (or hub name) under a fresh value head, in float32."""
    from transformers import AutoModel

    from rewardgauge.modeling.loading import _load

    return ValueModel(_load(AutoModel, str(name), field, dtype=torch.float32))
