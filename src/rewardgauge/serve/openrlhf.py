"""OpenRLHF's remote reward protocol (``--remote_rm_url http://host:port/get_reward``).

OpenRLHF (``openrlhf/utils/agent.py``, single-turn executor) posts ``{"query": [...], "prompts": [...],
"labels": [...]}`` where ``query[i]`` is the decoded prompt + response tokens (special tokens kept, so the
policy's end-of-sequence text such as ``<|im_end|>`` or ``</s>`` may end it), ``prompts[i]`` the prompt text
it generated from, and ``labels[i]`` the dataset's label (``--label_key``). It reads ``rewards`` (for the
advantage), ``scores`` (dynamic filtering; OpenRLHF's own reward server sends the rewards here too, as we
do) and ``extra_logs`` (``{name: one value per query}``, averaged into its logs).

Splitting: the response is ``query[i]`` with the prompt cut from its front (the query must start with the
prompt, as it does when the policy's tokenizer decodes the prompt back to the same text), then any of the
``strip_suffixes`` cut from its end. Without ``prompts`` (OpenRLHF before 0.5 sent only ``query``) there is
no way to tell prompt from response, and the request is refused with 422. The prompt goes to the reward
model as the text OpenRLHF sent (with ``--apply_chat_template``: the policy's templated prompt).

extra_logs carries what the scalar reward hides: ``member_k`` (ensemble member k's reward), ``uncertainty``,
and ``aspect_<name>`` for multi-objective models, each one float per query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SplitError(ValueError):
    """A query that cannot be split into prompt and response."""


def split_queries(queries: Sequence[str], prompts: Sequence[str] | None,
                  strip_suffixes: Sequence[str] = ()) -> list[str]:
    """The response part of each query."""
    if prompts is None:
        raise SplitError("'prompts' is required: without it a query cannot be split into prompt and response")
    if len(prompts) != len(queries):
        raise SplitError(f"'query' has {len(queries)} entries but 'prompts' has {len(prompts)}")
    responses = []
    for i, (query, prompt) in enumerate(zip(queries, prompts)):
        if not query.startswith(prompt):
            raise SplitError(f"query[{i}] does not start with prompts[{i}] ({_clip(prompt)!r}), "
                             "so its response cannot be found")
        responses.append(strip_end(query[len(prompt):], strip_suffixes))
    return responses


def strip_end(text: str, suffixes: Sequence[str]) -> str:
    """Cut any of ``suffixes`` (e.g. end-of-sequence and padding texts) from the end, repeatedly."""
    cut = True
    while cut:
        cut = False
        for s in suffixes:
            if s and text.endswith(s):
                text, cut = text[:-len(s)], True
    return text


def answer(scores: dict[str, Any]) -> dict[str, Any]:
    """OpenRLHF's answer from a request's ``Scores.to_dict()``."""
    reward = scores["reward"]
    logs: dict[str, list[float]] = {}
    for k, member in enumerate(scores.get("members") or []):
        logs[f"member_{k}"] = member
    if scores.get("uncertainty") is not None:
        logs["uncertainty"] = scores["uncertainty"]
    for name, values in (scores.get("aspects") or {}).items():
        logs[f"aspect_{name}"] = values
    return {"rewards": reward, "scores": reward, "extra_logs": logs}


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."
