"""``rewardgauge prm train | eval | label | review``: process reward models, from step labels to evaluation."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.data.steps import DEFAULT_SEPARATOR, StepAggregation
from rewardgauge.errors import InputError
from rewardgauge.train.config import PRMTrainConfig

LAB_GOLD = ("lab-gold", "gold")


@dataclass
class PRMEvalConfig:
    model: str = field(metadata={"help": "a folder written by `rewardgauge prm train`"})
    data: str = field(metadata={"help": "step records with labels (steps) and/or outcomes (JSONL of StepRecord)"})
    aggregation: StepAggregation | None = field(default=None, metadata={
        "help": "aggregate of step scores for the outcome metrics (default: the one in prm.json)"})
    threshold: float = field(default=0.5, metadata={"help": "a step scored below this is flagged incorrect"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a table"})
    out: str | None = field(default=None, metadata={"help": "also write the JSON report here"})
    batch_size: int = field(default=64, metadata={"help": "scoring batch size"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0 <= self.threshold <= 1:  # NaN fails too
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


@dataclass
class PRMLabelConfig:
    data: str = field(metadata={"help": "step records to label (JSONL of StepRecord; existing labels are replaced)"})
    out: str = field(metadata={"help": "output folder: labels.jsonl, and for rollouts progress.jsonl"})
    method: Literal["rollouts", "propose"] = field(default="rollouts", metadata={
        "help": "rollouts: Monte Carlo completions from every step (Math-Shepherd); propose: pre-label every "
                "step with --proposer for review (source 'proposed')"})
    policy: str | None = field(default=None, metadata={"help": "rollouts: the causal LM that completes prefixes"})
    checker: Literal["lab", "numeric"] = field(default="numeric", metadata={
        "help": "rollouts: lab (the lab's gold answer) or numeric (the final number equals the record's "
                "'reference')"})
    rollouts: int = field(default=8, metadata={"help": "rollouts: completions per step prefix"})
    estimate: Literal["hard", "soft"] = field(default="soft", metadata={
        "help": "rollouts: soft (fraction of completions that reach the right answer) or hard (any does)"})
    consensus: str | None = field(default=None, metadata={
        "help": "rollouts: a judge (a PRM folder, or lab-gold); keep a label only where the judge agrees"})
    proposer: str | None = field(default=None, metadata={"help": "propose: a PRM folder, or lab-gold"})
    separator: str = field(default=DEFAULT_SEPARATOR, metadata={"help": "step separator of 'solution' texts"})
    seed: int = field(default=0, metadata={"help": "sampling seed (record i uses (seed, i))"})
    max_new_tokens: int = field(default=64, metadata={"help": "rollouts: longest completion"})
    temperature: float = field(default=1.0, metadata={"help": "rollouts: sampling temperature"})
    chunk_size: int = field(default=32, metadata={
        "help": "rollouts: solutions whose prefixes are sampled in one batch (and saved together)"})
    resume: bool = field(default=False, metadata={"help": "rollouts: continue an interrupted run in --out"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})

    def validate(self) -> None:
        if self.method == "rollouts" and not self.policy:
            raise ValueError("--method rollouts needs --policy")
        if self.method == "propose" and not self.proposer:
            raise ValueError("--method propose needs --proposer")
        if self.rollouts < 1 or self.max_new_tokens < 1 or self.chunk_size < 1 or not 0 < self.temperature < 1e6:
            raise ValueError("rollouts, max_new_tokens and chunk_size must be at least 1, temperature positive")
        if not self.separator:
            raise ValueError("separator must not be empty")


@dataclass
class PRMReviewConfig:
    data: str = field(metadata={"help": "step records with proposed labels (e.g. from `prm label --method propose`)"})
    out: str = field(metadata={"help": "queue folder: annotations.jsonl, verified.jsonl, drafts.json (resumes)"})
    per_item: int = field(default=1, metadata={"help": "annotators per item (2+ measures their agreement)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind; beyond loopback needs --token"})
    port: int = field(default=8765, metadata={"help": "port to serve on"})
    token: str | None = field(default=None, metadata={"help": "shared secret: open the page as /?token=..."})
    lease_seconds: float = field(default=600.0, metadata={
        "help": "an item shown to a session is kept for it this long (no other session gets it meanwhile)"})
    separator: str = field(default=DEFAULT_SEPARATOR, metadata={"help": "step separator of 'solution' texts"})
    stats: bool = field(default=False, metadata={
        "help": "print agreement and proposal-change statistics of the queue as JSON, and exit"})

    def validate(self) -> None:
        if self.per_item < 1:
            raise ValueError(f"per_item must be at least 1, got {self.per_item}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not 0 < self.lease_seconds < 1e9:
            raise ValueError(f"lease_seconds must be positive, got {self.lease_seconds}")
        if not self.separator:
            raise ValueError("separator must not be empty")


@dataclass
class BonConfig:
    out: str = field(metadata={"help": "output folder: bon.json (and samples.jsonl when sampled here)"})
    samples: str | None = field(default=None, metadata={
        "help": "K responses per prompt: JSONL {prompt, responses: [...], reference?}; or sample them with "
                "--policy and --prompts"})
    policy: str | None = field(default=None, metadata={"help": "causal LM to sample --n responses per prompt"})
    prompts: str | None = field(default=None, metadata={"help": "JSONL with 'prompt' (and 'reference') per line"})
    n: int = field(default=16, metadata={"help": "responses sampled per prompt (K) with --policy"})
    rewards: list[str] = field(default_factory=list, metadata={
        "help": "reward models to rerank with, comma-separated: RM, ensemble or PRM folders, or lab-gold"})
    aggregations: list[StepAggregation] = field(default_factory=lambda: ["min", "product", "last", "mean"],
                                                metadata={"help": "step aggregations each PRM is reranked with"})
    majority: bool = field(default=True, metadata={"help": "also rerank by majority vote over final answers"})
    checker: Literal["lab", "lab-steps", "numeric"] = field(default="numeric", metadata={
        "help": "what counts as right: lab (the lab's gold answer), lab-steps (the answer and every step right), "
                "numeric (the final number equals 'reference')"})
    ns: list[int] = field(default_factory=list, metadata={"help": "values of N (default 1, 2, 4, ... up to K)"})
    draws: int = field(default=200, metadata={"help": "random subsets of N drawn per prompt"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and of the subsets"})
    separator: str = field(default=DEFAULT_SEPARATOR, metadata={"help": "lab-steps: step separator (lab: ' . ')"})
    max_new_tokens: int = field(default=64, metadata={"help": "--policy: longest response"})
    temperature: float = field(default=1.0, metadata={"help": "--policy: sampling temperature"})
    batch_size: int = field(default=64, metadata={"help": "scoring batch size"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})

    def validate(self) -> None:
        if (self.samples is None) == (self.policy is None):
            raise ValueError("give either --samples or --policy with --prompts")
        if self.policy and not self.prompts:
            raise ValueError("--policy needs --prompts")
        if not self.rewards and not self.majority:
            raise ValueError("nothing to compare: give --rewards and/or --majority")
        if self.n < 1 or self.draws < 1 or self.batch_size < 1 or any(n < 1 for n in self.ns):
            raise ValueError("n, draws, batch_size and every N must be at least 1")
        if self.max_new_tokens < 1 or not 0 < self.temperature < 1e6:
            raise ValueError("max_new_tokens must be at least 1, temperature positive")


def step_judge(spec: str, device: str | None = None, threshold: float = 0.5):
    """judge(prompt, steps) -> [correct?]: the lab's gold step check, or a PRM's scores >= threshold."""
    if spec in LAB_GOLD:
        from rewardgauge.lab.steps import gold_step_labels
        return gold_step_labels
    from rewardgauge.rewards.process import ProcessRewardModel
    prm = ProcessRewardModel.from_pretrained(spec, device=device)

    def judge(prompt, steps: Sequence[str]) -> list[bool]:
        return [bool(x >= threshold) for x in prm.step_scores([prompt], [steps])[0].tolist()]
    return judge


def answer_checker(kind: str, separator: str = DEFAULT_SEPARATOR):
    """checker(prompt, response, reference) -> bool."""
    if kind == "lab":
        from rewardgauge.lab.steps import answer_is_right
        return lambda prompt, response, reference: answer_is_right(prompt, response)
    if kind == "lab-steps":
        from rewardgauge.data.steps import split_steps
        from rewardgauge.lab.steps import answer_is_right, gold_step_labels
        return lambda prompt, response, reference: answer_is_right(prompt, response) and all(
            gold_step_labels(prompt, split_steps(response, separator)))
    from rewardgauge.data.steps import extract_answer, numeric_match
    return lambda prompt, response, reference: numeric_match(extract_answer(response), reference)


def _train(args: argparse.Namespace) -> int:
    from rewardgauge.train.prm import train_prm

    cfg = config_from_args(PRMTrainConfig, args)
    result = train_prm(cfg)
    metrics = " ".join(f"{k}={v:.4g}" for k, v in result.last_metrics.items()
                       if k in ("loss", "step_accuracy") or k.startswith("eval_"))
    print(f"wrote {cfg.out}: {result.steps} steps; last step {metrics}".rstrip())
    return 0


def format_prm_report(report: dict, title: str) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f} %"

    def num(x):
        return "-" if x is None else f"{x:.3f}"

    lines = [title,
             f"  steps      {report['steps']} labelled ({report['incorrect_steps']} incorrect): accuracy "
             f"{pct(report['step_accuracy'])}, finding incorrect steps: precision {pct(report['step_precision'])}, "
             f"recall {pct(report['step_recall'])}, F1 {num(report['step_f1'])}; AUROC {num(report['step_auroc'])}",
             f"  earliest error (ProcessBench): F1 {num(report['earliest_error_f1'])} = harmonic mean of "
             f"{pct(report['acc_erroneous'])} on {report['erroneous_solutions']} solutions with an error and "
             f"{pct(report['acc_correct'])} on {report['correct_solutions']} correct ones",
             f"  outcome ({report['aggregation']} of steps): accuracy {pct(report['outcome_accuracy'])}, "
             f"AUROC {num(report['outcome_auroc'])} on {report['outcomes']} solutions"]
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    from rewardgauge.data.steps import load_step_records
    from rewardgauge.io import check_output, write_json_atomic
    from rewardgauge.modeling.loading import resolve_device
    from rewardgauge.rewards.process import ProcessRewardModel
    from rewardgauge.rewards.step_evaluation import evaluate_steps

    cfg = config_from_args(PRMEvalConfig, args)
    if cfg.out:
        check_output(cfg.out, "file")  # before the scoring run, not after it
    prm = ProcessRewardModel.from_pretrained(cfg.model, device=resolve_device(cfg.device), batch_size=cfg.batch_size,
                                             aggregation=cfg.aggregation)
    records = load_step_records(cfg.data, prm.info.separator)
    report = {"model": cfg.model, "data": cfg.data, **evaluate_steps(prm, records, cfg.threshold)}
    if cfg.out:
        write_json_atomic(cfg.out, report)
    print(json.dumps(report, sort_keys=True) if cfg.json else format_prm_report(report, f"{cfg.model} on {cfg.data}"))
    return 0


def _label(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from rewardgauge.data.steps import load_step_records, save_step_records, unescape_separator
    from rewardgauge.io import check_output, output_lock
    from rewardgauge.modeling.loading import resolve_device

    cfg = config_from_args(PRMLabelConfig, args)
    separator = unescape_separator(cfg.separator)
    check_output(cfg.out, "dir")
    records = load_step_records(cfg.data, separator)
    if not records:
        raise InputError("no step records", path=cfg.data, field="data")
    device = resolve_device(cfg.device)
    # Models are loaded before the output is locked: a bad policy or judge leaves nothing behind.
    if cfg.method == "propose":
        judge = step_judge(cfg.proposer, device)
        with output_lock(cfg.out):  # a second labeller of the same folder stops at once
            proposed = []
            for r in records:
                labels = list(judge(r.prompt, r.steps))
                proposed.append(dataclasses.replace(r, labels=labels, sources=["proposed"] * len(labels)))
            path = Path(cfg.out) / "labels.jsonl"
            save_step_records(path, proposed)
        summary = {"records": len(proposed), "steps": sum(len(r.steps) for r in proposed),
                   "proposed_incorrect": sum(not x for r in proposed for x in r.labels), "out": str(path)}
    else:
        from rewardgauge.modeling.sampling import HFSampler
        from rewardgauge.train.rollout_labels import RolloutConfig, label_with_rollouts

        if cfg.checker == "numeric":
            missing = next((i for i, r in enumerate(records) if r.reference is None), None)
            if missing is not None:
                raise InputError("the numeric checker needs each record's 'reference' answer", path=cfg.data,
                                 line=missing + 1, field="reference")
        sampler = HFSampler.from_pretrained(cfg.policy, device=device, max_new_tokens=cfg.max_new_tokens,
                                            temperature=cfg.temperature)
        judge = step_judge(cfg.consensus, device) if cfg.consensus else None
        run = RolloutConfig(rollouts=cfg.rollouts, estimate=cfg.estimate, seed=cfg.seed, separator=separator,
                            chunk_size=cfg.chunk_size,
                            identity={"data": cfg.data, "policy": cfg.policy, "checker": cfg.checker,
                                      "consensus": cfg.consensus, "max_new_tokens": cfg.max_new_tokens,
                                      "temperature": cfg.temperature})
        with output_lock(cfg.out):
            summary = label_with_rollouts(records, sampler, answer_checker(cfg.checker), cfg.out, run, judge=judge,
                                          resume=cfg.resume, progress=cfg.progress)
    print(json.dumps(summary, sort_keys=True))
    return 0


def _review(args: argparse.Namespace) -> int:
    from rewardgauge.data.steps import load_step_records, unescape_separator
    from rewardgauge.io import check_output, output_lock
    from rewardgauge.review.queue import ReviewQueue

    cfg = config_from_args(PRMReviewConfig, args)
    items = load_step_records(cfg.data, unescape_separator(cfg.separator))
    if cfg.stats:
        print(json.dumps(ReviewQueue(items, cfg.out, per_item=cfg.per_item).stats(), sort_keys=True))
        return 0
    check_output(cfg.out, "dir")
    try:
        from rewardgauge.review.app import check_bind, make_server
    except ModuleNotFoundError as e:
        raise InputError(f"the review page needs the 'serve' extra ({e.name} is missing): "
                         "pip install 'rewardgauge[serve]'") from None
    check_bind(cfg.host, cfg.token)
    # One server per queue folder: two would each lease the same items to their own sessions.
    with output_lock(cfg.out):
        queue = ReviewQueue(items, cfg.out, per_item=cfg.per_item, lease_seconds=cfg.lease_seconds)
        server = make_server(queue, cfg.host, cfg.port, cfg.token)
        query = f"?token={cfg.token}" if cfg.token else ""
        print(f"reviewing {len(queue.items)} items at http://{cfg.host}:{cfg.port}/{query} "
              f"(verified labels go to {cfg.out}/verified.jsonl; Ctrl-C stops)")
        server.run()
    print(json.dumps(queue.stats(), sort_keys=True))
    return 0


def _bon(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from rewardgauge.data.steps import extract_answer, unescape_separator
    from rewardgauge.io import check_output, iter_jsonl, output_lock, write_json_atomic, write_jsonl_atomic
    from rewardgauge.modeling.loading import resolve_device
    from rewardgauge.rewards.best_of_n import SampleSet, compare, load_samples, method_scores, powers_of_two
    from rewardgauge.rewards.loading import load_reward_model

    cfg = config_from_args(BonConfig, args)
    check_output(cfg.out, "dir")
    device = resolve_device(cfg.device)
    # Inputs and models first, then the output is locked: bad input leaves nothing behind.
    if cfg.samples:
        sets, rows = load_samples(cfg.samples), None
        references = [s.reference for s in sets]
    else:
        from rewardgauge.modeling.sampling import HFSampler

        rows = list(iter_jsonl(cfg.prompts))
        for line, row in rows:
            if not isinstance(row.get("prompt"), (str, list)):
                raise InputError("missing or not a prompt", path=cfg.prompts, line=line, field="prompt")
        references = [None if row.get("reference") is None else str(row["reference"]) for _, row in rows]
        sampler = HFSampler.from_pretrained(cfg.policy, device=device, max_new_tokens=cfg.max_new_tokens,
                                            temperature=cfg.temperature)
    if cfg.checker == "numeric" and any(r is None for r in references):
        raise InputError("the numeric checker needs a 'reference' answer for every prompt", field="reference")
    models = {Path(spec).name or spec: load_reward_model(spec, device=device, batch_size=cfg.batch_size)
              for spec in cfg.rewards}
    with output_lock(cfg.out):
        if rows is not None:
            prompts = [row["prompt"] for _, row in rows]
            responses = sampler(prompts, [""] * len(prompts), cfg.n, cfg.seed)
            sets = [SampleSet(p, rs, ref) for p, rs, ref in zip(prompts, responses, references)]
            write_jsonl_atomic(Path(cfg.out) / "samples.jsonl", (s.to_dict() for s in sets))
        k = len(sets[0].responses)
        check = answer_checker(cfg.checker, unescape_separator(cfg.separator))
        correct = np.array([[check(s.prompt, r, s.reference) for r in s.responses] for s in sets], dtype=bool)
        scores = {}
        for name, rm in models.items():
            scores.update(method_scores(rm, sets, name, cfg.aggregations))
        answers = [[extract_answer(r) for r in s.responses] for s in sets] if cfg.majority else None
        ns = [n for n in (cfg.ns or powers_of_two(k)) if n <= k]
        result = compare(scores, correct, answers, ns, cfg.draws, cfg.seed)
        result["checker"] = cfg.checker
        write_json_atomic(Path(cfg.out) / "bon.json", result)
    width = max(len(m) for m in [*result["methods"], "oracle"])
    print(f"best-of-N accuracy ({cfg.checker}) over {result['prompts']} prompts x {k} samples, "
          f"{cfg.draws} draws per N; one sample at random: {100 * result['random']:.1f} %")
    print(" " * width + "".join(f"{'N=' + str(n):>9}" for n in ns))
    for name, curve in [*result["methods"].items(), ("oracle", result["oracle"])]:
        print(f"{name:<{width}}" + "".join(f"{100 * curve[n]:>8.1f}%" for n in ns))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    prm = group(sub, "prm", "process reward models: step labels, training, evaluation, review")
    p = prm.add_parser(
        "train", help="train a process reward model on step-labelled solutions",
        description="A head predicting each step's correctness at the step's last token, on any HF backbone "
                    "(a decoder such as the SFT policy, or an encoder such as MiniLM), trained with binary "
                    "cross-entropy on hard (true/false) or soft (Monte Carlo fraction) labels; --target "
                    "outcome trains an outcome verifier on the final answer's correctness instead. Writes the "
                    "model, prm.json, config.yaml, metrics.jsonl and checkpoints/ to --out; --resume continues.")
    add_config_args(p, PRMTrainConfig)
    p.set_defaults(func=_train)

    p = prm.add_parser(
        "eval", help="step accuracy and F1, ProcessBench earliest-error F1, outcome accuracy and AUROC",
        description="Evaluate a process reward model on labelled steps: accuracy, and precision / recall / F1 "
                    "of finding incorrect steps; ProcessBench's earliest-error F1 (harmonic mean of the share "
                    "of erroneous solutions whose first wrong step is found exactly and of correct solutions "
                    "with no step flagged); and, where records carry an outcome, the aggregate reward's "
                    "accuracy and AUROC for it.")
    add_config_args(p, PRMEvalConfig)
    p.set_defaults(func=_eval)

    p = prm.add_parser(
        "label", help="label steps from Monte Carlo rollouts, or propose labels for review",
        description="--method rollouts: for each step prefix, a policy samples --rollouts completions and a "
                    "checker says which reach the right answer; the step's label is the fraction (soft) or "
                    "whether any did (hard), source 'rollout'. --consensus JUDGE keeps a label only where the "
                    "judge (a PRM, or lab-gold) agrees (source 'consensus'). Progress is saved per record; "
                    "--resume continues an interrupted run to the same labels. --method propose: a proposer "
                    "pre-labels every step (source 'proposed') for `rewardgauge prm review`.")
    add_config_args(p, PRMLabelConfig)
    p.set_defaults(func=_label)

    p = prm.add_parser(
        "review", help="serve a local page on which annotators accept or flip proposed step labels",
        description="Propose-then-verify: annotators see each problem and its steps with the proposed labels, "
                    "accept or flip each with the keyboard and move on. Verified labels are saved atomically "
                    "after every item (verified.jsonl: the annotators' majority per step); the queue resumes "
                    "where it stopped; several annotators can share it (--per-item N each, an item shown to "
                    "one session at a time). --stats reports agreement between annotators (per-step, Cohen's "
                    "kappa) and how often proposals were changed. Binds 127.0.0.1 unless given --token.")
    add_config_args(p, PRMReviewConfig)
    p.set_defaults(func=_review)

    p = sub.add_parser(
        "bon", help="best-of-N: rerank N samples per prompt by reward models or majority vote",
        description="From K samples per prompt (a file, or sampled here from --policy), the accuracy of "
                    "picking the best of N by each reward model (a PRM once per step aggregation; an ORM; an "
                    "ensemble; lab-gold) and by majority vote over final answers, for N = 1, 2, 4, ... K, "
                    "averaged over random N-subsets (the same subsets for every method). Writes bon.json.")
    add_config_args(p, BonConfig)
    p.set_defaults(func=_bon)
