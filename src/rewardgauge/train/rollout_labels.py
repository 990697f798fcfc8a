"""Step labels from Monte Carlo rollouts (Wang et al. 2024, Math-Shepherd), optionally filtered by a judge
(Zhang et al. 2025, Qwen2.5-Math-PRM: keep a label only where the judge agrees).

For a solution with steps s_1..s_n and each k < n, the policy completes the prefix s_1..s_k ``rollouts`` times
and a checker says whether each completion reaches the right answer; with c_k of N right:

    soft estimate  y_k = c_k / N          (how likely a solver continuing from step k is to succeed)
    hard estimate  y_k = [c_k > 0]        (some continuation from step k succeeds)

The last step is the whole solution, so its label is the checker's verdict on it. A label's source is
``rollout`` (``consensus`` once a judge agreed with it); ``meta["rollouts"]`` keeps c_k and N.

Records are sampled in fixed chunks of ``chunk_size`` (one batched call to the policy per chunk), chunk c
with seed (seed, c) alone; work is saved after every chunk (``progress.jsonl`` in the output folder, one line
per record, flushed). So a run interrupted and started again with ``resume`` redoes at most one chunk and
gives exactly the labels of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rewardgauge.data.records import Prompt
from rewardgauge.data.steps import StepRecord, is_correct, join_steps, save_step_records, step_spans
from rewardgauge.errors import InputError
from rewardgauge.io import append_jsonl, write_json_atomic, write_text_atomic
from rewardgauge.modeling.sampling import Sampler

# checker(prompt, full response, reference answer or None) -> is the final answer right?
Checker = Callable[[Prompt, str, "str | None"], bool]
# judge(prompt, steps) -> is each step correct?
Judge = Callable[[Prompt, Sequence[str]], list[bool]]

CONFIG_FILE = "label_config.json"
PROGRESS_FILE = "progress.jsonl"
LABELS_FILE = "labels.jsonl"


@dataclass
class RolloutConfig:
    rollouts: int = 8
    estimate: Literal["hard", "soft"] = "soft"
    seed: int = 0
    chunk_size: int = 32
    separator: str = "\n"
    # Free-form facts about the run (policy, checker, judge) that must match on resume.
    identity: dict = field(default_factory=dict)


def prefix_text(steps: Sequence[str], k: int, separator: str) -> str:
    """The solution up to and including step k (0-based) and what joins it to step k+1: where a rollout from
    step k starts."""
    text, ends = step_spans(list(steps), separator)
    return text[:ends[k + 1] - len(steps[k + 1])]


def rollout_counts(sampler: Sampler, checker: Checker, records: Sequence[StepRecord], rollouts: int,
                   separator: str, seed: int) -> list[list[int]]:
    """c_k for every step of every record, the policy called once for all their prefixes (the last step of
    each: the solution's own verdict, counted as all or none)."""
    jobs = [(r, prefix_text(r.steps, k, separator)) for r in records for k in range(len(r.steps) - 1)]
    completions = sampler([r.prompt for r, _ in jobs], [p for _, p in jobs], rollouts, seed) if jobs else []
    right = iter([sum(checker(r.prompt, p + c, r.reference) for c in cs) for (r, p), cs in zip(jobs, completions)])
    counts = []
    for r in records:
        whole = checker(r.prompt, join_steps(r.steps, separator), r.reference)
        counts.append([next(right) for _ in range(len(r.steps) - 1)] + [rollouts if whole else 0])
    return counts


def labelled(record: StepRecord, counts: list[int], rollouts: int, estimate: str) -> StepRecord:
    labels = [c > 0 if estimate == "hard" else c / rollouts for c in counts]
    return dataclasses.replace(record, labels=labels, sources=["rollout"] * len(labels),
                               meta={**record.meta, "rollouts": {"right": counts, "n": rollouts}})


def apply_consensus(record: StepRecord, verdicts: Sequence[bool]) -> tuple[StepRecord, int]:
    """Keep each rollout label where the judge's verdict agrees (source ``consensus``), unlabel the rest.
    Returns the record and how many labels were kept."""
    labels, sources, kept = [], [], 0
    for label, verdict in zip(record.labels, verdicts):
        agree = label is not None and is_correct(label) == bool(verdict)
        labels.append(label if agree else None)
        sources.append("consensus" if agree else None)
        kept += agree
    return dataclasses.replace(record, labels=labels, sources=sources), kept


def fingerprint(records: Sequence[StepRecord]) -> str:
    """A digest of what is labelled (prompts, steps, references): a resumed run must label the same records."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.prompt, r.steps, r.reference], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _start(out: Path, cfg: RolloutConfig, records: Sequence[StepRecord], resume: bool) -> dict[int, dict]:
    """Check or write the run's config; return the records already done (by index)."""
    now = json.loads(json.dumps({**dataclasses.asdict(cfg), "records": len(records),
                                 "records_fingerprint": fingerprint(records)}))
    config_path, progress = out / CONFIG_FILE, out / PROGRESS_FILE
    if resume and config_path.is_file():
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        for key in sorted(set(now) | set(saved)):
            if saved.get(key) != now.get(key):
                raise InputError(f"differs from the run being resumed ({saved.get(key)!r} there, {now.get(key)!r} now)",
                                 path=config_path, field=key)
        done = {}
        if progress.is_file():
            lines = progress.read_text(encoding="utf-8").splitlines()
            for text in lines:
                try:
                    row = json.loads(text)
                except json.JSONDecodeError:
                    break  # a line cut by the interruption: that record is done again
                done[row["index"]] = row
        return done
    out.mkdir(parents=True, exist_ok=True)
    progress.unlink(missing_ok=True)
    (out / LABELS_FILE).unlink(missing_ok=True)
    write_json_atomic(config_path, now)
    return {}


def label_with_rollouts(records: Sequence[StepRecord], sampler: Sampler, checker: Checker, out: str | Path,
                        cfg: RolloutConfig, *, judge: Judge | None = None, resume: bool = False,
                        progress: bool = True) -> dict:
    """Label every record's steps from rollouts (see the module docstring); write ``labels.jsonl`` to ``out``.
    Returns a summary (counts, mean label, consensus kept)."""
    from tqdm.auto import tqdm

    if cfg.chunk_size < 1 or cfg.rollouts < 1:
        raise InputError("chunk_size and rollouts must be at least 1")
    for i, record in enumerate(records):
        if not record.steps:
            raise InputError(f"record {i} has no steps", field="steps")
    out = Path(out)
    done = _start(out, cfg, records, resume)
    # Rewrite the kept progress without a cut last line, so appends start on a fresh line.
    if done:
        rows = [done[i] for i in sorted(done)]
        write_text_atomic(out / PROGRESS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    bar = tqdm(total=len(records), desc="prm label", disable=not progress, initial=len(done), unit="solution")
    for chunk, start in enumerate(range(0, len(records), cfg.chunk_size)):
        indices = range(start, min(start + cfg.chunk_size, len(records)))
        if all(i in done for i in indices):
            continue
        counts = rollout_counts(sampler, checker, [records[i] for i in indices], cfg.rollouts, cfg.separator,
                                seed=cfg.seed * 1_000_003 + chunk)
        for i, c in zip(indices, counts):
            if i not in done:
                append_jsonl(out / PROGRESS_FILE, {"index": i, "right": c})
                done[i] = {"index": i, "right": c}
        bar.update(len(indices))
    bar.close()
    results, kept, judged = [], 0, 0
    for index, record in enumerate(records):
        result = labelled(record, done[index]["right"], cfg.rollouts, cfg.estimate)
        if judge is not None:
            result, k = apply_consensus(result, judge(record.prompt, record.steps))
            kept, judged = kept + k, judged + len(record.steps)
        results.append(result)
    save_step_records(out / LABELS_FILE, results)
    steps = [label for r in results for label in r.labels if label is not None]
    summary = {"records": len(results), "steps": sum(len(r.steps) for r in results), "labelled_steps": len(steps),
               "mean_label": sum(float(x) for x in steps) / len(steps) if steps else None,
               "estimate": cfg.estimate, "rollouts": cfg.rollouts}
    if judge is not None:
        summary["consensus_kept"] = kept
        summary["consensus_judged"] = judged
    return summary
