"""A reward server as verl's custom reward function.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`` once per
response (its naive reward manager) or ``compute_score_batch(data_sources, solution_strs, ground_truths,
extra_infos, **reward_kwargs)`` once per batch (``reward_model.reward_manager=batch``). It passes no prompt, so
the prompt comes from ``extra_info[prompt_key]`` (put it there when you write the parquet files; verl's own
data scripts keep the question under ``extra_info``). Both return a dict: ``score`` is the reward, and the
other keys (``member_k``, ``uncertainty``, ``aspect_<name>``) go to verl's ``reward_extra_info`` logs, so a run
shows the ensemble's disagreement next to its reward.

verl config (Hydra)::

    reward_model:
      reward_manager: batch          # or naive, with name: compute_score
    custom_reward_function:          # under `reward:` in newer verl versions
      path: /path/to/site-packages/rewardgauge/integrations/verl.py
      name: compute_score_batch
      reward_kwargs:
        url: http://10.0.0.5:8000,http://10.0.0.6:8000   # replicas, round-robin with failover
        prompt_key: prompt

The token comes from the ``REWARDGAUGE_TOKEN`` environment variable of the reward workers (or ``token`` in
reward_kwargs, which puts it into the config file). One client per process and server list is kept and reused.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rewardgauge.rewards.remote import RemoteRewardModel

_clients: dict[tuple[str, str | None], RemoteRewardModel] = {}
_lock = threading.Lock()


def _client(url: str, token: str | None) -> RemoteRewardModel:
    with _lock:
        if (url, token) not in _clients:
            _clients[(url, token)] = RemoteRewardModel(url, token=token)
        return _clients[(url, token)]


def _prompt(extra_info: dict | None, prompt_key: str) -> Any:
    if not extra_info or prompt_key not in extra_info:
        raise KeyError(f"extra_info has no {prompt_key!r}: verl passes no prompt to a reward function, so put the "
                       f"prompt into each row's extra_info['{prompt_key}'] (or set reward_kwargs.prompt_key)")
    prompt = extra_info[prompt_key]
    if not isinstance(prompt, str):  # chat messages, possibly a numpy array of dicts from parquet
        prompt = [dict(m) for m in prompt]
    return prompt


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[dict | None], *, url: str, token: str | None = None,
                        prompt_key: str = "prompt", **_: Any) -> list[dict[str, float]]:
    """One dict per response: ``{"score": reward, "member_0": ..., "uncertainty": ..., "aspect_x": ...}``."""
    prompts = [_prompt(info, prompt_key) for info in extra_infos]
    meta = [{"data_source": d, "ground_truth": g} for d, g in zip(data_sources, ground_truths)]
    scores = _client(url, token).score(prompts, list(solution_strs), meta=_json_safe(meta))
    rows = [{"score": float(r)} for r in scores.reward.tolist()]
    if scores.members is not None:
        for k, member in enumerate(scores.members.tolist()):
            for row, value in zip(rows, member):
                row[f"member_{k}"] = value
    if scores.uncertainty is not None:
        for row, value in zip(rows, scores.uncertainty.tolist()):
            row["uncertainty"] = value
    for name, values in (scores.aspects or {}).items():
        for row, value in zip(rows, values.tolist()):
            row[f"aspect_{name}"] = value
    return rows


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, *,
                  url: str, token: str | None = None, prompt_key: str = "prompt", **_: Any) -> dict[str, float]:
    """verl's per-response form; concurrent calls are batched together by the server."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], url=url, token=token,
                               prompt_key=prompt_key)[0]


def _json_safe(meta: list[dict]) -> list[dict]:
    """Ground truths from parquet may be numpy values; the wire format is JSON."""
    out = []
    for m in meta:
        row = {}
        for k, v in m.items():
            row[k] = v.tolist() if hasattr(v, "tolist") else v
        out.append(row)
    return out
