"""The RewardModel interface. Evaluation, audit, monitor, report, serving and RL treat every reward source
alike through it: ``score(prompts, responses, *, meta=None) -> Scores``."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardgauge.data.records import Prompt

Meta = Mapping[str, Any]


@dataclass
class Scores:
    """What a reward source says about B responses.

    reward:      [B] what RL optimises (for an ensemble: the aggregate).
    members:     [K, B] each ensemble member's reward, where there are members.
    aspects:     {aspect: [B]} per-aspect rewards, for multi-objective models.
    uncertainty: [B] disagreement or predicted spread (ensemble std, distributional head), where known.
    steps:       B tensors, response i's [n_steps_i] step scores, for process reward models.
    extras:      {name: B JSON-safe values}, per-response facts that are not scores (e.g. the execution
                 reward's ``"outcome"``: status, tests passed, first error).

    Every field is per response, so ``select`` and ``cat`` keep all of them aligned.
    """

    reward: torch.Tensor
    members: torch.Tensor | None = None
    aspects: dict[str, torch.Tensor] | None = None
    uncertainty: torch.Tensor | None = None
    steps: list[torch.Tensor] | None = None
    extras: dict[str, list] | None = None

    def __post_init__(self) -> None:
        n = self.reward.shape[0] if self.reward.dim() == 1 else -1
        if n < 0:
            raise ValueError(f"Scores.reward must be [B], got shape {tuple(self.reward.shape)}")
        wrong = []
        if self.members is not None and (self.members.dim() != 2 or self.members.shape[1] != n):
            wrong.append(f"members {tuple(self.members.shape)} (want [K, {n}])")
        for name, t in (self.aspects or {}).items():
            if t.shape != (n,):
                wrong.append(f"aspects[{name!r}] {tuple(t.shape)} (want [{n}])")
        if self.uncertainty is not None and self.uncertainty.shape != (n,):
            wrong.append(f"uncertainty {tuple(self.uncertainty.shape)} (want [{n}])")
        if self.steps is not None and len(self.steps) != n:
            wrong.append(f"steps for {len(self.steps)} responses (want {n})")
        for name, values in (self.extras or {}).items():
            if len(values) != n:
                wrong.append(f"extras[{name!r}] with {len(values)} values (want {n})")
        if wrong:
            raise ValueError(f"Scores for {n} responses with " + ", ".join(wrong))

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def to(self, device: str | torch.device) -> Scores:
        """The same scores with every tensor on ``device`` (extras are plain values and stay as they are)."""
        return Scores(
            reward=self.reward.to(device),
            members=None if self.members is None else self.members.to(device),
            aspects=None if self.aspects is None else {k: v.to(device) for k, v in self.aspects.items()},
            uncertainty=None if self.uncertainty is None else self.uncertainty.to(device),
            steps=None if self.steps is None else [s.to(device) for s in self.steps],
            extras=self.extras,
        )

    def select(self, indices: Sequence[int] | torch.Tensor) -> Scores:
        """The scores of responses ``indices`` (in that order, repeats allowed), every field kept."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        rows = idx.tolist()

        def take(t: torch.Tensor) -> torch.Tensor:
            return t[..., idx.to(t.device)]

        return Scores(
            reward=take(self.reward),
            members=None if self.members is None else take(self.members),
            aspects=None if self.aspects is None else {k: take(v) for k, v in self.aspects.items()},
            uncertainty=None if self.uncertainty is None else take(self.uncertainty),
            steps=None if self.steps is None else [self.steps[i] for i in rows],
            extras=None if self.extras is None else {k: [v[i] for i in rows] for k, v in self.extras.items()},
        )

    @staticmethod
    def cat(parts: Sequence[Scores]) -> Scores:
        """Concatenate the scores of consecutive batches along B; every part must have the same fields."""
        if not parts:
            raise ValueError("Scores.cat needs at least one part")
        first = parts[0]
        shape = _fields_present(first)
        for p in parts[1:]:
            if _fields_present(p) != shape:
                raise ValueError(f"Scores.cat: parts differ in their fields: {shape} vs {_fields_present(p)}")
        return Scores(
            reward=torch.cat([p.reward for p in parts]),
            members=None if first.members is None else torch.cat([p.members for p in parts], dim=1),
            aspects=None if first.aspects is None else {
                k: torch.cat([p.aspects[k] for p in parts]) for k in first.aspects},
            uncertainty=None if first.uncertainty is None else torch.cat([p.uncertainty for p in parts]),
            steps=None if first.steps is None else [s for p in parts for s in p.steps],
            extras=None if first.extras is None else {k: [x for p in parts for x in p.extras[k]] for k in first.extras},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, the wire format of the reward server. Fields that are None are left out::

            {"reward":      [r_0, ..., r_{B-1}],                 # floats
             "members":     [[...B floats...], ...K lists...],   # ensembles
             "aspects":     {"name": [...B floats...], ...},     # multi-objective models
             "uncertainty": [...B floats...],
             "steps":       [[...n_0 floats...], ..., [...n_{B-1} floats...]],  # process reward models
             "extras":      {"name": [...B JSON values...], ...}}

        Floats are Python floats (doubles), so a float32 tensor comes back bit for bit from ``from_dict``.
        Non-finite values are written by ``json.dumps`` as NaN / Infinity (not strict JSON).
        """
        out: dict[str, Any] = {"reward": _floats(self.reward)}
        if self.members is not None:
            out["members"] = _floats(self.members)
        if self.aspects is not None:
            out["aspects"] = {k: _floats(v) for k, v in self.aspects.items()}
        if self.uncertainty is not None:
            out["uncertainty"] = _floats(self.uncertainty)
        if self.steps is not None:
            out["steps"] = [_floats(s) for s in self.steps]
        if self.extras is not None:
            out["extras"] = {k: list(v) for k, v in self.extras.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scores:
        """Inverse of ``to_dict``: float32 CPU tensors. A malformed field raises ValueError naming it."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Scores: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"reward", "members", "aspects", "uncertainty", "steps", "extras"})
        if unknown:
            raise ValueError(f"Scores: unknown fields {unknown}")
        if "reward" not in data:
            raise ValueError("Scores: missing field 'reward'")

        def tensor(name: str, value: Any, dim: int) -> torch.Tensor:
            try:
                t = torch.tensor(value, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError) as e:
                raise ValueError(f"Scores field {name!r}: {e}") from None
            if t.dim() != dim:
                raise ValueError(f"Scores field {name!r}: expected {dim} dimension(s), got shape {tuple(t.shape)}")
            return t

        def mapping(name: str) -> dict:
            value = data[name]
            if not isinstance(value, Mapping):
                raise ValueError(f"Scores field {name!r}: expected an object, got {type(value).__name__}")
            return dict(value)

        reward = tensor("reward", data["reward"], 1)
        members = data.get("members")
        if members is not None:
            members = tensor("members", members, 2)
        steps = data.get("steps")
        if steps is not None:
            if not isinstance(steps, list):
                raise ValueError(f"Scores field 'steps': expected a list, got {type(steps).__name__}")
            steps = [tensor(f"steps[{i}]", s, 1) for i, s in enumerate(steps)]
        return cls(
            reward=reward, members=members, steps=steps,
            aspects=None if data.get("aspects") is None else {
                str(k): tensor(f"aspects.{k}", v, 1) for k, v in mapping("aspects").items()},
            uncertainty=None if data.get("uncertainty") is None else tensor("uncertainty", data["uncertainty"], 1),
            extras=None if data.get("extras") is None else {str(k): list(v) for k, v in mapping("extras").items()},
        )


def _floats(t: torch.Tensor) -> list:
    return t.detach().cpu().tolist()


def _fields_present(s: Scores) -> tuple:
    return (s.members is not None, None if s.aspects is None else sorted(s.aspects), s.uncertainty is not None,
            s.steps is not None, None if s.extras is None else sorted(s.extras))


class RewardModel(abc.ABC):
    """Scores responses to prompts. A subclass implements ``score_batch`` on one batch; ``score`` is the one
    batching path.

    batch_size: responses per ``score_batch`` call; None scores a whole ``score`` call as one batch.
    sort_key:   optional ``sort_key(prompt, response) -> int`` (e.g. token length). When given, ``score``
                orders the whole input by it, longest first (ties keep input order), so that batches hold
                sequences of similar length and pad less; results always come back in input order.

    ``score`` may be called from several threads at once. A subclass therefore keeps no per-call state on
    the instance and changes nothing shared (a model's train/eval mode, an active adapter) while scoring;
    where a library forces shared state on it, it holds a lock for that part.
    """

    name: str = "reward"
    batch_size: int | None = 64
    sort_key: Callable[[Prompt, str], int] | None = None

    @abc.abstractmethod
    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        """Score one batch: three lists of equal length; ``meta[i]`` is ``{}`` where the caller gave none."""

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str], *,
              meta: Sequence[Meta | None] | None = None) -> Scores:
        """Score any number of (prompt, response) pairs.

        meta: optional per-response facts (``{"task_id": ..., "group_id": ...}``) for sources that need them,
        e.g. the execution reward finds a response's task by ``meta[i]["task_id"]``.
        """
        n = len(prompts)
        if len(responses) != n or (meta is not None and len(meta) != n):
            given = f"{n} prompts, {len(responses)} responses" + ("" if meta is None else f", {len(meta)} meta")
            raise ValueError(f"prompts, responses and meta must have one entry per response; got {given}")
        if n == 0:
            return Scores(reward=torch.zeros(0))
        prompts, responses = list(prompts), list(responses)
        metas: list[Meta] = [{} for _ in range(n)] if meta is None else [m if m is not None else {} for m in meta]
        order = list(range(n))
        sort = self.sort_key is not None
        if sort:
            keys = [self.sort_key(p, r) for p, r in zip(prompts, responses)]
            order.sort(key=lambda i: -keys[i])
        size = self.batch_size or n
        parts = []
        for start in range(0, n, size):
            idx = order[start:start + size]
            part = self.score_batch([prompts[i] for i in idx], [responses[i] for i in idx], [metas[i] for i in idx])
            if len(part) != len(idx):
                raise RuntimeError(f"{type(self).__name__}.score_batch gave {len(part)} scores for {len(idx)} responses")
            parts.append(part)
        scores = parts[0] if len(parts) == 1 else Scores.cat(parts)
        if sort:  # back to input order
            position = [0] * n
            for pos, i in enumerate(order):
                position[i] = pos
            scores = scores.select(position)
        return scores

    def __call__(self, prompts: Sequence[Prompt], responses: Sequence[str], *,
                 meta: Sequence[Meta | None] | None = None) -> torch.Tensor:
        return self.score(prompts, responses, meta=meta).reward
