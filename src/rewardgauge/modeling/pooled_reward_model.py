"""A reward model for architectures that transformers has no fitting sequence-classification class for, in a
form plain ``transformers`` loads: ``AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True)``.

Two kinds of rewardgauge reward models need it: backbones without a ``*ForSequenceClassification`` class
(Granite, OLMoE, Cohere, Mamba, ... as of transformers 5), and sentence-transformers encoders (all-MiniLM,
mpnet, bge, e5) read by mean pooling, which no stock transformers classifier does (BERT's pools [CLS] through
its dense+tanh pooler). Saving one writes this file beside the weights (``register_for_auto_class``) and
``auto_map`` into ``config.json``, so the folder loads as a sequence classifier anywhere transformers runs,
without rewardgauge installed: TRL's ``reward_funcs`` (``model_init_kwargs={"trust_remote_code": True}``),
OpenRLHF, verl. Its ``model_type`` is its own, so loading it without ``trust_remote_code`` fails with
transformers' message instead of building a BERT classifier with a random head.

This file is copied into model folders: it imports nothing but torch and transformers, and must stay so.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("last", "mean", "cls")


def pool_hidden(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                pooling: str, pad_token_id: int | None) -> torch.Tensor:
    """[B, H] summary of [B, T, H] hidden states. ``last``: the rightmost real token, whichever side the
    padding is on (the rule of the transformers decoder classifiers); ``mean``: the mean over real tokens
    (sentence-transformers' mean pooling); ``cls``: the first token. Real tokens are those of the attention
    mask, or those that are not ``pad_token_id`` when there is no mask."""
    real = (input_ids != pad_token_id) if attention_mask is None else attention_mask.bool()
    if pooling == "mean":
        weights = real.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    if pooling == "cls":
        return hidden[:, 0]
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    last = (positions * real).argmax(-1)
    return hidden[torch.arange(input_ids.shape[0], device=hidden.device), last]


def drop_unused_pooler(backbone: torch.nn.Module, pooling: str) -> None:
    """BERT-like backbones carry a [CLS] dense+tanh pooler that these heads never read; without it the saved
    weights hold nothing unused (and DDP does not refuse unused parameters)."""
    if pooling != "last" and getattr(backbone, "pooler", None) is not None:
        backbone.pooler = None


class PooledRewardConfig(PretrainedConfig):
    """The backbone's own config (``backbone_config``) plus how its hidden states are pooled."""

    model_type = "rewardgauge_pooled_reward"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(self, backbone_config: PretrainedConfig | dict | None = None, pooling: str = "last",
                 pad_token_id: int | None = None, **kwargs):
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.backbone_config = backbone_config
        self.pooling = pooling
        self.pad_token_id = pad_token_id  # the last-token pooling finds real tokens by it when given no mask
        super().__init__(**kwargs)


class PooledRewardModel(PreTrainedModel):
    """``AutoModel`` backbone, pooled hidden state, linear head without bias: one reward per label."""

    config_class = PooledRewardConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _keep_in_fp32_modules = ["score"]  # as trained: the head in float32 whatever the backbone's dtype

    def __init__(self, config: PooledRewardConfig, backbone: torch.nn.Module | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.backbone_config)
        drop_unused_pooler(self.backbone, config.pooling)
        hidden = config.backbone_config.get_text_config().hidden_size
        self.score = torch.nn.Linear(hidden, config.num_labels, bias=False)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        if module is self.score:
            std = getattr(self.config.backbone_config.get_text_config(), "initializer_range", 0.02)
            torch.nn.init.normal_(module.weight, std=std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> SequenceClassifierOutput:
        kwargs = {k: v for k, v in kwargs.items() if k in ("token_type_ids", "position_ids")}
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               **kwargs).last_hidden_state
        pooled = pool_hidden(hidden, input_ids, attention_mask, self.config.pooling, self.config.pad_token_id)
        return SequenceClassifierOutput(logits=self.score(pooled.to(self.score.weight.dtype)))
