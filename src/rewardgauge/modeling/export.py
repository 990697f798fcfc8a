"""What makes a saved reward model score the same outside rewardgauge: token types made irrelevant, and a
one-output view of a multi-output reward model: the combined reward ``r = Σ_k w_k r_k`` folded into the head.

Every reward head here ends in a linear layer ``r_k = W_k · h + b_k`` over a pooled hidden state ``h``, so the
weighted sum is itself one linear layer: ``r = (Σ_k w_k W_k) · h + Σ_k w_k b_k``. Swapping that layer in gives a
model with one output, exactly the combined reward, which any single-reward consumer (TRL ``reward_funcs``,
OpenRLHF, verl) can load as a plain sequence classifier.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


def ignore_token_types(model: torch.nn.Module) -> int:
    """Give every token type the embedding of type 0; returns how many embedding tables were changed.

    rewardgauge feeds encoders ``input_ids`` and ``attention_mask`` only, so BERT-like models train and score
    with token type 0 everywhere; a consumer that passes the tokenizer's ``token_type_ids`` for a text pair
    (1 on the response) would otherwise read a row the reward model never used. With the rows equal, the
    scores are the same whichever ids are passed.
    """
    changed = 0
    for name, module in model.named_modules():
        if name.endswith("token_type_embeddings") and isinstance(module, torch.nn.Embedding):
            if module.num_embeddings > 1:
                with torch.no_grad():
                    module.weight[1:] = module.weight[:1]
                changed += 1
    return changed


def output_layer(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The linear layer that produces the model's ``num_labels`` outputs, and the name of its attribute: the
    last ``nn.Linear`` with that many outputs (``score`` for decoders, ``classifier`` for BERT,
    ``classifier.out_proj`` for RoBERTa)."""
    n = model.config.num_labels
    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == n:
            found = name
    if found is None:
        raise ValueError(f"no linear layer with {n} outputs in {type(model).__name__}")
    parent_name, _, attr = found.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def fold_weights(layer: torch.nn.Linear, weights: Sequence[float]) -> torch.nn.Linear:
    """A one-output linear layer computing ``Σ_k weights[k] * layer(x)[k]``."""
    w = torch.tensor(list(weights), dtype=torch.float64)
    if w.shape[0] != layer.out_features:
        raise ValueError(f"{w.shape[0]} weights for a layer with {layer.out_features} outputs")
    folded = torch.nn.Linear(layer.in_features, 1, bias=layer.bias is not None, dtype=layer.weight.dtype,
                             device=layer.weight.device)
    with torch.no_grad():
        folded.weight.copy_((w @ layer.weight.double()).unsqueeze(0))
        if layer.bias is not None:
            folded.bias.copy_((w @ layer.bias.double()).unsqueeze(0))
    return folded


@contextlib.contextmanager
def combined_head(model: torch.nn.Module, weights: Sequence[float]) -> Iterator[torch.nn.Module]:
    """``model`` with its output layer folded to the one combined reward, restored on exit (no copy of the
    backbone is made, so saving it is cheap in memory)."""
    parent, attr = output_layer(model)
    layer = getattr(parent, attr)
    config = model.config
    saved = {k: getattr(config, k) for k in ("id2label", "label2id")}
    setattr(parent, attr, fold_weights(layer, weights))
    config.id2label, config.label2id = {0: "reward"}, {"reward": 0}  # num_labels follows id2label
    try:
        yield model
    finally:
        setattr(parent, attr, layer)
        config.id2label, config.label2id = saved["id2label"], saved["label2id"]
