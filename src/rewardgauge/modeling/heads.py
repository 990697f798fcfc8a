"""A reward head on any backbone, for architectures that transformers gives no sequence-classification class
(Granite, OLMoE, Cohere, Mamba, ... as of transformers 5). It pools the hidden state of the last non-pad
token (as the HF decoder classifiers do) and maps it to one reward per output through a linear layer. It also
serves sentence-transformers encoders (all-MiniLM, mpnet, bge, e5, ...), which were trained to be read by
mean pooling: their [CLS] state and BERT pooler were never trained as a summary, so the HF classifier's
[CLS]-pooled head starts from a worse representation (``pooling="mean"``, chosen from the model's own
``1_Pooling/config.json``).

Saved in the portable form of ``modeling.pooled_reward_model``: one ``model.safetensors`` and a config that plain
transformers loads as ``AutoModelForSequenceClassification`` (with ``trust_remote_code=True``, as the pooling
code travels in the folder). Folders saved before that (the backbone's own folder plus
``reward_head.safetensors``) still load through ``BackboneRewardModel.from_pretrained``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

from rewardgauge.modeling.pooled_reward_model import (
    PooledRewardConfig,
    PooledRewardModel,
    drop_unused_pooler,
)

HEAD_FILE = "reward_head.safetensors"


POOLINGS = ("last", "mean", "cls", "token")


class BackboneRewardModel(torch.nn.Module):
    """``AutoModel`` backbone + linear head on a pooled hidden state; quacks like a seq-cls model.

    pooling: ``last`` the last non-pad token (decoders); ``mean`` the mean over real tokens; ``cls`` the first;
    ``token`` none: an output per token, [B, T, num_labels] (a process reward model reads it at step ends).
    """

    def __init__(self, backbone: torch.nn.Module, num_labels: int = 1, pooling: str = "last"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        drop_unused_pooler(backbone, pooling)
        self.config = backbone.config  # num_labels, id2label and pad_token_id live here, as for HF classifiers
        hidden = self.config.get_text_config().hidden_size
        self.score = torch.nn.Linear(hidden, num_labels, bias=False, dtype=torch.float32)
        std = getattr(self.config.get_text_config(), "initializer_range", 0.02)
        torch.nn.init.normal_(self.score.weight, std=std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                use_cache: bool | None = None, **kwargs) -> SequenceClassifierOutput | TokenClassifierOutput:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               **kwargs).last_hidden_state
        if self.pooling == "token":
            return TokenClassifierOutput(logits=self.score(hidden.to(self.score.weight.dtype)))
        by_mask = attention_mask is not None and attention_mask.dim() == 2  # not a 4D mask of packed rows
        real = attention_mask.bool() if by_mask else (input_ids != self.config.pad_token_id)
        if self.pooling == "mean":
            weights = real.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            # The head at every position (as the HF decoder classifiers apply it, so that a caller can read other
            # positions too, modeling.reward_forward), then the rightmost real token's, whichever side the
            # padding is on.
            logits = self.score(hidden.to(self.score.weight.dtype))
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            last = (positions * real).argmax(-1)
            return SequenceClassifierOutput(logits=logits[torch.arange(input_ids.shape[0], device=logits.device), last])
        return SequenceClassifierOutput(logits=self.score(pooled.to(self.score.weight.dtype)))

    def portable(self) -> PooledRewardModel:
        """The same weights (shared, not copied) as a ``PooledRewardModel``, the form plain transformers loads."""
        n = self.score.out_features
        labels = {k: getattr(self.config, k) for k in ("id2label", "label2id")
                  if len(getattr(self.config, k, None) or ()) == n}
        # A copy: the wrapper's __init__ sets attention settings on its sub-config, which must not reach the live
        # backbone (an attention implementation reset to None drops the causal mask of a decoder).
        config = PooledRewardConfig(backbone_config=copy.deepcopy(self.backbone.config), pooling=self.pooling,
                                    pad_token_id=self.config.pad_token_id, num_labels=n,
                                    **labels)
        model = PooledRewardModel(config, backbone=self.backbone)
        model.score = self.score
        return model

    def save_pretrained(self, folder: str | os.PathLike, **kwargs) -> None:
        """``model.safetensors``, ``config.json`` with ``auto_map`` and the code of ``pooled_reward_model``; a
        per-token head (a process reward model's) has no sequence-classifier form: the backbone and
        ``reward_head.safetensors``."""
        if self.pooling == "token":
            self.backbone.save_pretrained(folder, **kwargs)
            save_file({"weight": self.score.weight.detach().cpu().contiguous()}, str(Path(folder) / HEAD_FILE),
                      metadata={"pooling": self.pooling})
            return
        PooledRewardConfig.register_for_auto_class()
        PooledRewardModel.register_for_auto_class("AutoModelForSequenceClassification")
        self.portable().save_pretrained(folder, **kwargs)

    @classmethod
    def from_portable(cls, model: PooledRewardModel, num_labels: int | None = None) -> BackboneRewardModel:
        """Back from the portable form (weights shared); ``num_labels`` other than the saved count: a new head."""
        config = model.config
        backbone = model.backbone
        for key in ("id2label", "label2id", "pad_token_id"):
            setattr(backbone.config, key, getattr(config, key))
        keep = num_labels in (None, config.num_labels)
        backbone.config.num_labels = config.num_labels if keep else num_labels
        out = cls(backbone, num_labels=backbone.config.num_labels, pooling=config.pooling)
        if keep:
            out.score = model.score.float()
        return out

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs) -> BackboneRewardModel:
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(folder, **kwargs)
        path = str(Path(folder) / HEAD_FILE)
        weight = load_file(path)["weight"]
        with safe_open(path, "pt") as f:
            pooling = (f.metadata() or {}).get("pooling", "last")  # heads saved before pooling existed: last
        model = cls(backbone, num_labels=weight.shape[0], pooling=pooling)
        model.score.weight.data.copy_(weight)
        return model
