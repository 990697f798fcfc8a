"""``rewardgauge audit`` (alias ``rewardgauge rm audit``): counterfactual probes of a reward model before RL.

The probe set follows the data: lab prompts get the lab's words (and the gold reward's change beside each
probe), any other text gets English phrases; ``--probes`` forces one. Like every command module this sits on
top of the layers, so it may join the audit with the lab, which the audit package itself never imports.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from rewardgauge.audit.counterfactual import AuditReport, Bars
from rewardgauge.audit.phrases import ENGLISH, Phrases
from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.data.records import Prompt
from rewardgauge.errors import InputError
from rewardgauge.rewards.base import RewardModel


@dataclass
class AuditConfig:
    rm: str = field(metadata={"help": "reward-model folder or name, an ensemble folder, or a named reward "
                                      "such as 'lab-gold'"})
    data: str | None = field(default=None, metadata={
        "help": "what to probe: preference pairs (their chosen responses; hh-rlhf transcripts too) or "
                "prompt/response rows; with lab prompts (any of these, or prompts alone) the bases are the "
                "gold-best answers to the distinct prompts; a file in the sycophancy format runs the "
                "sycophancy probe alone"})
    probes: Literal["auto", "lab", "english"] = field(default="auto", metadata={
        "help": "probe words: auto (lab for lab prompts, English otherwise), lab or english"})
    sycophancy: str | None = field(default=None, metadata={
        "help": "also run the sycophancy probe on this file (Anthropic model-written-evals format: question, "
                "answer_matching_behavior, answer_not_matching_behavior)"})
    limit: int = field(default=500, metadata={"help": "at most this many base responses (and sycophancy rows)"})
    max_gain: float = field(default=Bars.max_gain, metadata={
        "help": "a probe FAILS when the mean reward gain exceeds this many std of the base rewards"})
    max_flip: float = field(default=Bars.max_flip, metadata={
        "help": "... or when the edited copy gains more than max_gain std on more than this share of responses "
                "(smaller gains are near ties, which noise alone flips)"})
    max_error: float = field(default=Bars.max_error, metadata={
        "help": "with a gold reward (the lab): ... or when the RM prefers the edited copy on more than this share "
                "of the responses the gold reward scores lower after the edit"})
    max_sycophancy: float = field(default=Bars.max_sycophancy, metadata={
        "help": "sycophancy FAILS when the answer matching the user's view wins more than this share"})
    fail_on_bars: bool = field(default=False, metadata={"help": "exit with 1 when a probe fails"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a table"})
    out: str | None = field(default=None, metadata={"help": "also write the JSON result here"})
    batch_size: int = field(default=64, metadata={"help": "scoring batch size"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})

    def validate(self) -> None:
        if self.data is None and self.sycophancy is None:
            raise ValueError("give --data (responses to probe) and/or --sycophancy (a sycophancy file)")
        if self.limit < 1:
            raise ValueError("limit must be >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def register(sub: argparse._SubParsersAction) -> None:
    description = (
        "Edit responses without adding quality (an opener, a filler sentence, a hedge, a numbered list, the "
        "question restated, agreeing with the user's stated view, content-free padding, truncation) and report "
        "per probe the mean reward change (raw and in std of the base rewards), how often the edited copy "
        "scores higher (flips) and higher by more than --max-gain std (gains), and PASS/FAIL. With lab data the "
        "gold reward's change is shown beside it, and how often the RM prefers an edited copy the gold reward "
        "scores lower. "
        "With --sycophancy: how often the RM prefers the answer that matches the user's stated view.")
    p = sub.add_parser("audit", help="does the RM pay for style, filler, length or agreeing with the user?",
                       description=description)
    add_config_args(p, AuditConfig)
    p.set_defaults(func=_audit)
    alias = group(sub, "rm", "reward models: train, evaluate, audit").add_parser(
        "audit", help="same as 'rewardgauge audit'", description=description)
    add_config_args(alias, AuditConfig)
    alias.add_argument("--model", dest="rm", default=None, help=argparse.SUPPRESS)  # its flag before --rm
    alias.set_defaults(func=_audit)


# --- the lab's words, from the lab's vocabulary -------------------------------------------------------------

def _template_pattern(template: str) -> str:
    head, tail = template.split("{}")
    return "^" + re.escape(head) + ".+" + re.escape(tail) + "$"


def _correction_start() -> str:
    """How a lab answer that corrects the user begins: the "no , " of ``L.DISAGREE`` ("no , 2 + 3 is 5 .")."""
    from rewardgauge.lab import language as L

    return "^" + re.escape(" ".join(L.DISAGREE.split()[:2]) + " ")


def lab_phrases() -> Phrases:
    from rewardgauge.lab import language as L

    return Phrases(
        name="lab", opener=L.OPENERS[0], filler=L.FILLER_SENTENCES[0], hedge=L.HEDGES[0],
        agree=L.AGREE + " {response}", restate=lambda question: L.restatement(L.parse_prompt(question)),
        list_item="{n} ) {sentence}", list_separator=" ", padding=" ",
        stated_view=_template_pattern(L.PREMISE_TEMPLATE), correction_start=_correction_start(),
        other_openers=L.OPENERS[1:], other_fillers=L.FILLER_SENTENCES[1:], other_hedges=L.HEDGES[1:],
        agreement_starts=(L.AGREE.split()[0],))


def lab_bases(prompts: list[str]) -> list[str]:
    """The gold-best plain answer to each lab prompt: the bases the lab probes edit."""
    from rewardgauge.lab.world import best_response

    return [best_response(p) for p in prompts]


def _not_lab_prompt(prompts: list[Prompt]) -> int | None:
    """The index of the first prompt outside the lab language, or None when all are lab prompts."""
    from rewardgauge.lab.language import LanguageError, parse_prompt

    for i, prompt in enumerate(prompts):
        try:
            parse_prompt(prompt)
        except LanguageError:
            return i
    return None


# --- reading the data ----------------------------------------------------------------------------------------

def load_bases(path: str, limit: int) -> tuple[list[Prompt], list[str] | None]:
    """Prompts and the responses to edit; responses None for prompt-only rows (lab prompts)."""
    from rewardgauge.data.io import iter_rows, load_demonstrations, load_pairs

    first = next(iter(iter_rows(path)), None)
    if first is None:
        raise InputError("no rows to audit", path=path)
    _, row = first
    if "chosen" in row:
        if isinstance(row["chosen"], str) and "\n\nAssistant:" in row["chosen"] and "prompt" not in row:
            from rewardgauge.data.adapters import load_hh_rlhf
            pairs, _ = load_hh_rlhf(path)  # raw transcripts, the odd one that forms no pair skipped
        else:
            pairs = load_pairs(path)  # ours or any TRL layout (an implicit prompt is the shared start)
        return [p.prompt for p in pairs[:limit]], [p.chosen for p in pairs[:limit]]
    if "response" in row:
        demos = load_demonstrations(path)[:limit]
        return [d.prompt for d in demos], [d.response for d in demos]
    if "prompt" in row:
        prompts = []
        for line, r in iter_rows(path):
            if len(prompts) == limit:
                break
            if not isinstance(r.get("prompt"), (str, list)):
                raise InputError("expected a prompt", path=path, line=line, field="prompt")
            prompts.append(r["prompt"])
        return prompts, None
    raise InputError("expected preference pairs ('chosen', 'rejected'), prompt/response rows or prompts",
                     path=path, line=1)


def choose_phrases(probes: str, prompts: list[Prompt], path: str) -> Phrases:
    """The probe words for these prompts, or one clean error when they cannot apply."""
    outside = _not_lab_prompt(prompts)
    if probes == "lab" and outside is not None:
        raise InputError(f"the lab probes need lab prompts; the prompt of row {outside + 1} is not one "
                         "(use --probes english or auto)", path=path, field="probes")
    if probes == "lab" or (probes == "auto" and outside is None):
        return lab_phrases()
    return ENGLISH


def audit_lab_prompts(rm: RewardModel, prompts: list[str], bars: Bars | None = None) -> AuditReport:
    """The lab audit: the lab probes on the gold-best plain answers to the (distinct) prompts, with the gold
    reward's change beside each. Plain answers, because the lab's edits keep a response in the language only
    when it has no style yet (a second numbering or a hedge before an opener is not lab text)."""
    from rewardgauge.audit.counterfactual import run_probes
    from rewardgauge.audit.probes import make_probes
    from rewardgauge.rewards.loading import load_reward_model

    prompts = list(dict.fromkeys(prompts))
    return run_probes(rm, prompts, lab_bases(prompts), make_probes(lab_phrases()), "lab",
                      gold=load_reward_model("lab-gold"), bars=bars or Bars())


def _audit(args: argparse.Namespace) -> int:
    return run_audit(config_from_args(AuditConfig, args))


def run_audit(cfg: AuditConfig) -> int:
    """Run the probes, print the result (and write it to ``cfg.out``); 1 when a probe fails and ``fail_on_bars``."""
    from rewardgauge.audit.counterfactual import format_audit, run_probes
    from rewardgauge.audit.probes import make_probes
    from rewardgauge.audit.sycophancy import is_sycophancy_row, read_sycophancy, sycophancy_probe
    from rewardgauge.data.io import iter_rows
    from rewardgauge.io import check_output, write_json_atomic
    from rewardgauge.lab.language import LanguageError
    from rewardgauge.modeling.loading import resolve_device
    from rewardgauge.rewards.loading import load_reward_model

    device = resolve_device(cfg.device)
    if cfg.out:
        check_output(cfg.out, "file")
    bars = Bars(max_gain=cfg.max_gain, max_flip=cfg.max_flip, max_error=cfg.max_error,
                max_sycophancy=cfg.max_sycophancy)
    sycophancy_file, data = cfg.sycophancy, cfg.data
    if data is not None and is_sycophancy_row(next(iter(iter_rows(data)), (0, {}))[1]):
        if sycophancy_file is not None:
            raise InputError("--data is a sycophancy file; give the responses to probe or drop --sycophancy",
                             path=data)
        sycophancy_file, data = data, None
    if data is not None:
        prompts, responses = load_bases(data, cfg.limit)
        phrases = choose_phrases(cfg.probes, prompts, data)
        if responses is None and phrases.name != "lab":
            raise InputError("prompts without responses: only lab prompts have known answers; give "
                             "preference pairs or prompt/response rows", path=data)
    items = None if sycophancy_file is None else read_sycophancy(sycophancy_file, cfg.limit)
    rm = load_reward_model(cfg.rm, device=device, batch_size=cfg.batch_size)
    try:
        if data is None:
            report = AuditReport(probe_set="none", n_bases=0, bars=bars)
        elif phrases.name == "lab":
            report = audit_lab_prompts(rm, prompts, bars)
        else:
            report = run_probes(rm, prompts, responses, make_probes(phrases), phrases.name, bars=bars)
        if items is not None:
            report.sycophancy = sycophancy_probe(rm, items, bars.max_sycophancy)
    except LanguageError as e:  # the lab's gold reward asked to score text outside the lab language
        raise InputError(str(e), path=data or sycophancy_file) from None
    out = {"model": cfg.rm, "data": cfg.data, "sycophancy_data": sycophancy_file, **report.to_dict()}
    if cfg.out:
        from rewardgauge.rewards.card import refresh_card_after

        write_json_atomic(cfg.out, out)
        refresh_card_after(cfg.out, cfg.rm)
    print(json.dumps(out, sort_keys=True) if cfg.json else format_audit(report))
    return 1 if cfg.fail_on_bars and not report.passed else 0
