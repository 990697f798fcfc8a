"""A reward head on any backbone, for architectures that transformers gives no sequence-classification class
(Granite, OLMoE, Cohere, Mamba, ... as of transformers 5). It pools the hidden state of the last non-pad
token (as the HF decoder classifiers do) and maps it to one reward per output through a linear layer. It also
serves sentence-transformers encoders (all-MiniLM, mpnet, bge, e5, ...), which were trained to be read by
mean pooling: their [CLS] state and BERT pooler were never trained as a summary, so the HF classifier's
[CLS]-pooled head starts from a worse representation (``pooling="mean"``, chosen from the model's own
``1_Pooling/config.json``).

Saved as the backbone's own folder (``save_pretrained``) plus ``reward_head.safetensors``; rewardgauge.json
says ``"head": "linear"`` so the folder loads back through ``BackboneRewardModel.from_pretrained``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

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
        if pooling != "last" and getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # BERT's [CLS] dense+tanh is unused here (and DDP refuses unused parameters)
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
        real = (input_ids != self.config.pad_token_id) if attention_mask is None else attention_mask.bool()
        if self.pooling == "mean":
            weights = real.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            # The rightmost real token, whichever side the padding is on (the rule of the HF decoder classifiers).
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            last = (positions * real).argmax(-1)
            pooled = hidden[torch.arange(input_ids.shape[0], device=hidden.device), last]
        return SequenceClassifierOutput(logits=self.score(pooled.to(self.score.weight.dtype)))

    def save_pretrained(self, folder: str | os.PathLike, **kwargs) -> None:
        self.backbone.save_pretrained(folder, **kwargs)
        save_file({"weight": self.score.weight.detach().cpu().contiguous()}, str(Path(folder) / HEAD_FILE),
                  metadata={"pooling": self.pooling})

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
