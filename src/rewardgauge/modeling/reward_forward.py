"""Rewards of sequences that share a prefix (chosen and rejected on one prompt), with the prefix run once.

A decoder reward model reads its reward at the last non-pad token of each sequence (the rule of the Hugging
Face sequence classifiers). In a causal model the hidden states of a prefix do not depend on what follows it,
so two sequences with a common prefix can share its computation: ``group_sequences`` splits each group of
sequences into their longest common prefix and the G suffixes after it, and ``group_rewards`` runs them in one
of the layouts of ``modeling.logprobs``:

  packed  (default) each group as prefix, suffix 1, ..., suffix G in a row, several groups per row when they
          fit (``fill_rows``), a block mask letting each suffix see its prefix and itself (Prefix Grouper).
  shared  the prefixes as one batch, the suffixes on their KV cache (Hugging Face classifiers only: the
          backbone-and-head models run without a cache).
  plain   each sequence whole, right-padded: the prefix computed G times (the reference path).

All three give the plain rewards and gradients (tests compare them). The common prefix is found on the token
ids, not assumed to be the prompt, so it is exact whatever the chat template or the truncation did: a pair
whose two sequences were cut differently simply shares less.

The reward is read from the head's per-position output, captured by a forward hook on the head while the
model's own forward runs (so a DDP wrapper sees a normal forward); the head must be applied at every position
(``score`` of the Hugging Face decoder classifiers and of ``BackboneRewardModel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from rewardgauge.modeling.formatting import pad
from rewardgauge.modeling.logprobs import LAYOUTS, Layout, pack, shared_prefix_forward


@dataclass
class GroupedSequences:
    """B groups of G sequences each as prefix [B, P] (left-padded) + suffixes [B·G, S] (right-padded).

    read [B·G]: where the reward of each sequence is read, as an index into the whole sequence (prefix then
    suffix); rows [B]: the row of each group in the packed layout.
    """

    prefix_ids: torch.Tensor
    prefix_mask: torch.Tensor
    suffix_ids: torch.Tensor
    suffix_mask: torch.Tensor
    read: torch.Tensor
    rows: torch.Tensor
    group_size: int
    pad_id: int

    def to(self, device: torch.device | str) -> GroupedSequences:
        return GroupedSequences(*(getattr(self, f).to(device) for f in
                                  ("prefix_ids", "prefix_mask", "suffix_ids", "suffix_mask", "read", "rows")),
                                group_size=self.group_size, pad_id=self.pad_id)


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all ``sequences`` share, leaving each at least one token of its own (the reward
    of a sequence is read at a position of its own suffix or, when the suffix is only padding, of the prefix)."""
    n = min(len(s) for s in sequences) - 1
    first = sequences[0]
    for i in range(max(n, 0)):
        if any(s[i] != first[i] for s in sequences[1:]):
            return i
    return max(n, 0)


def read_position(sequence: Sequence[int], pad_id: int) -> int:
    """The index of the last token that is not ``pad_id`` (0 when there is none), where a Hugging Face decoder
    classifier reads its score (a trailing EOS that doubles as the pad token is skipped, as there)."""
    for i in range(len(sequence) - 1, -1, -1):
        if sequence[i] != pad_id:
            return i
    return 0


def fill_rows(lengths: Sequence[int], width: int | None = None) -> list[int]:
    """A row for each group: first-fit decreasing into rows of ``width`` tokens (default: the longest group, so
    no row is longer, nor any attention wider, than without filling)."""
    width = max(lengths, default=0) if width is None else width
    rows: list[int] = [0] * len(lengths)
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            row = len(room)
            room.append(width)
        room[row] -= lengths[i]
        rows[i] = row
    return rows


def group_sequences(groups: Sequence[Sequence[Sequence[int]]], pad_id: int, fill: bool = True) -> GroupedSequences:
    """Split each group of G sequences into their common prefix and G suffixes (``fill``: several groups per
    packed row where they fit, see ``fill_rows``)."""
    sizes = {len(g) for g in groups}
    if len(sizes) != 1:
        raise ValueError(f"every group needs the same number of sequences, got sizes {sorted(sizes)}")
    prefixes, suffixes, read = [], [], []
    for group in groups:
        n = common_prefix_length(group)
        prefixes.append(list(group[0][:n]))
        for seq in group:
            suffixes.append(list(seq[n:]))
            read.append(read_position(seq, pad_id))
    prefix_ids, prefix_mask = pad(prefixes, pad_id, side="left")
    suffix_ids, suffix_mask = pad(suffixes, pad_id)
    size = sizes.pop()
    lengths = [len(p) + sum(len(s) for s in suffixes[i * size:(i + 1) * size]) for i, p in enumerate(prefixes)]
    rows = fill_rows(lengths) if fill else list(range(len(groups)))
    return GroupedSequences(prefix_ids, prefix_mask, suffix_ids, suffix_mask, torch.tensor(read),
                            torch.tensor(rows), size, pad_id)


def reward_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The linear head a decoder reward model applies at every position (``score``), or None."""
    inner = getattr(model, "module", model)  # a DDP wrapper
    head = getattr(inner, "score", None)
    return head if isinstance(head, torch.nn.Module) else None


class _HeadOutputs:
    """Collects the head's per-position outputs [rows, T, C] during the model's forward calls."""

    def __init__(self, model: torch.nn.Module):
        head = reward_head(model)
        if head is None:
            raise ValueError(f"{type(getattr(model, 'module', model)).__name__} has no `score` head to read "
                             "per position: use layout 'plain'")
        self.head, self.outputs = head, []

    def __enter__(self) -> list[torch.Tensor]:
        self.handle = self.head.register_forward_hook(lambda module, args, out: self.outputs.append(out))
        return self.outputs

    def __exit__(self, *exc) -> None:
        self.handle.remove()
        for out in self.outputs:
            if out.dim() != 3:
                raise ValueError("the reward head was applied to pooled states, not at every position: use "
                                 "layout 'plain'")


def _last_layer_per_position_parts(model: torch.nn.Module) -> list[torch.nn.Module] | None:
    """The query projection, attention output projection and MLP of the last decoder layer, or None when the
    model is not laid out as ``<base>.layers[-1].self_attn.{q_proj,o_proj}`` and ``.mlp``."""
    inner = getattr(model, "module", model)
    base = getattr(inner, "backbone", None)  # BackboneRewardModel; else the HF model's base (e.g. LlamaModel)
    base = getattr(inner, "base_model", None) if base is None else base
    layers = getattr(base, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
        return None
    last = layers[-1]
    attn = getattr(last, "self_attn", None)
    parts = [getattr(attn, "q_proj", None), getattr(attn, "o_proj", None), getattr(last, "mlp", None)]
    return parts if all(isinstance(p, torch.nn.Module) for p in parts) else None


@contextmanager
def last_layer_at(model: torch.nn.Module, at: torch.Tensor):
    """Run the position-wise parts of the last decoder layer only at the distinct flat positions ``at``
    (row · T + column) where rewards are read: the last layer's output at a position is read by nothing but the head at that
    position, and its query projection, attention output projection and MLP act on that position alone. Other
    positions get zeros from them (their outputs are never read, so no gradient reaches them); keys and values
    still come from every position. For a 4-layer model this skips about a fifth of the matmuls, exactly.
    Models laid out otherwise run unchanged."""
    parts = _last_layer_per_position_parts(model)
    if parts is None:
        yield
        return

    def at_only(forward):
        def run(x: torch.Tensor) -> torch.Tensor:
            out = forward(x.flatten(0, -2)[at])
            return out.new_zeros(x.shape[:-1].numel(), out.shape[-1]).index_copy(0, at, out).unflatten(
                0, x.shape[:-1])
        return run

    own = [part.__dict__.get("forward") for part in parts]  # a forward set on the instance (accelerate's hooks)
    for part in parts:
        part.forward = at_only(part.forward)
    try:
        yield
    finally:
        for part, forward in zip(parts, own):
            if forward is None:
                del part.forward  # the class's forward again
            else:
                part.forward = forward


def group_rewards(model: torch.nn.Module, batch: GroupedSequences, layout: Layout = "packed") -> torch.Tensor:
    """[B·G, C] rewards of the sequences of ``batch`` (in group order), read as a plain forward of each whole
    sequence would read them."""
    p_len = batch.prefix_mask.sum(-1)
    index = torch.arange(batch.suffix_ids.shape[0], device=p_len.device) // batch.group_size
    in_prefix = batch.read < p_len[index]  # the suffix is all padding ids: the reward sits in the prefix
    if layout == "packed":
        packed = pack(batch.prefix_ids, batch.prefix_mask, batch.suffix_ids, batch.suffix_mask, index,
                      batch.pad_id, batch.rows)
        at = torch.where(in_prefix, packed.prompt_start[index] + batch.read,
                         packed.response_start + batch.read - p_len[index])
        # Once per position: two rewards read at one prefix token (both suffixes only padding) would otherwise
        # have its last layer computed twice and its gradient counted twice.
        with _HeadOutputs(model) as outputs, last_layer_at(model, at.unique()):
            model(input_ids=packed.ids, attention_mask=packed.mask, position_ids=packed.positions, use_cache=False)
        return outputs[-1].flatten(0, 1)[at]
    if layout == "shared":
        with _HeadOutputs(model) as outputs:
            shared_prefix_forward(model, batch.prefix_ids, batch.prefix_mask, batch.suffix_ids, batch.suffix_mask,
                                  batch.group_size)
        prefix_out, suffix_out = outputs[0], outputs[-1]
        rows = torch.arange(len(index), device=index.device)
        # Prefixes are left-padded: token i of prefix b sits in column P - len_b + i.
        from_prefix = prefix_out[index, (prefix_out.shape[1] - p_len[index] + batch.read).clamp_max(
            prefix_out.shape[1] - 1)]
        from_suffix = suffix_out[rows, (batch.read - p_len[index]).clamp_min(0)]
        return torch.where(in_prefix[:, None], from_prefix, from_suffix)
    if layout != "plain":
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    ids, _ = whole_sequences(batch)
    # Right-padded decoder rows need no attention mask: a pad never precedes a real token.
    return model(input_ids=ids, use_cache=False).logits


def whole_sequences(batch: GroupedSequences) -> tuple[torch.Tensor, torch.Tensor]:
    """The [B·G, T] right-padded whole sequences (prefix + suffix) and their mask."""
    prefixes = [row[real].tolist() for row, real in zip(batch.prefix_ids, batch.prefix_mask.bool())]
    suffixes = [row[real].tolist() for row, real in zip(batch.suffix_ids, batch.suffix_mask.bool())]
    ids, mask = pad([prefixes[i // batch.group_size] + s for i, s in enumerate(suffixes)], batch.pad_id)
    return ids.to(batch.suffix_ids.device), mask.to(batch.suffix_ids.device)
