"""Write a lab dataset: annotator-labelled training pairs, gold-labelled held-out pairs, SFT demonstrations
and RL prompts. The same config and seed give byte-identical files.

Prompts are split by a hash of their text (not by seed): about 10 % of the prompt space is held out, so no
prompt is on both sides and every seed shares one held-out prompt space.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

from tqdm import tqdm

from rewardgauge.data.records import UNLABELLED, Demonstration, PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.io import atomic_dir, write_json_atomic, write_jsonl_atomic
from rewardgauge.lab import gold
from rewardgauge.lab.annotators import PRESETS, Annotator, make_pool, pool_summary
from rewardgauge.lab.gold import DIMENSIONS, analyse, parse_prompt
from rewardgauge.lab.world import (
    FAMILIES,
    ContentMix,
    StyleRates,
    sample_pair,
    sample_prompt,
    sample_response,
)

LabelSource = Literal["annotators", "gold"]
# |gold gap| thresholds: easy >= 1.5 > medium >= 0.6 > hard >= 0.15 > tie (no gold preference).
EASY_GAP, MEDIUM_GAP, TIE_GAP = 1.5, 0.6, 0.15
HELDOUT_PROMPT_FRACTION = 0.1
# SFT demonstrations: mostly good content, some style, so that RL has something to amplify.
DEMO_CONTENT = ContentMix(best=0.8)
DEMO_STYLE = StyleRates(opener=0.15, restate=0.1, numbered_list=0.15, filler_mean=0.3)


@dataclass
class LabDataConfig:
    out: str = field(metadata={"help": "output folder (created; an earlier lab folder there is replaced)"})
    seed: int = field(default=0, metadata={"help": "random seed; the same seed gives byte-identical files"})
    pairs: int = field(default=20000, metadata={"help": "training pairs labelled by annotator votes"})
    heldout_pairs: int = field(default=2000, metadata={"help": "held-out pairs labelled by the gold reward"})
    demos: int = field(default=10000, metadata={"help": "SFT demonstrations"})
    rl_prompts: int = field(default=512, metadata={"help": "prompts for RL (train side) and for evaluation"})
    votes: int = field(default=5, metadata={"help": "annotator votes per pair (odd avoids ties)"})
    annotators: int = field(default=16, metadata={"help": "annotators in the pool"})
    pool: str = field(default="default", metadata={"help": f"annotator preset: {', '.join(PRESETS)}"})
    labels: LabelSource = field(default="annotators", metadata={
        "help": "who labels the training pairs: annotators (majority of votes, with their biases) or gold (the "
                "gold-better side; ties dropped; no votes kept, so every loss trains on the gold label)"})
    label_flip: float = field(default=0.0, metadata={
        "help": "with labels gold: the share of training labels flipped at random (noise without bias)"})
    share_style: float = field(default=0.7, metadata={
        "help": "probability that the two responses of a pair share their surface style"})
    families: dict[str, float] = field(
        default_factory=lambda: {"arithmetic": 0.35, "premise": 0.2, "safety": 0.15, "open": 0.3},
        metadata={"help": "prompt family weights, JSON, e.g. '{\"arithmetic\": 1}'"})

    def validate(self) -> None:
        if self.pool not in PRESETS:
            raise ValueError(f"pool must be one of {list(PRESETS)}, got '{self.pool}'")
        unknown = set(self.families) - set(FAMILIES)
        weights = list(self.families.values())
        if unknown or not any(w > 0 for w in weights) or not all(0 <= w < math.inf for w in weights):
            raise ValueError(f"families must map some of {list(FAMILIES)} to finite weights >= 0, one of them > 0")
        if self.labels not in get_args(LabelSource):
            raise ValueError(f"labels must be one of {list(get_args(LabelSource))}, got '{self.labels}'")
        if not 0 <= self.label_flip <= 0.5 or (self.label_flip and self.labels != "gold"):
            raise ValueError(f"label_flip is a share in [0, 0.5] of gold labels (labels gold), got {self.label_flip}")
        if not 0 <= self.share_style <= 1:
            raise ValueError(f"share_style is a probability in [0, 1], got {self.share_style}")
        if self.votes < 1 or self.annotators < self.votes:
            raise ValueError("need votes >= 1 and annotators >= votes")
        if min(self.pairs, self.heldout_pairs, self.demos, self.rl_prompts) < 0:
            raise ValueError("counts must be >= 0")


def is_heldout_prompt(prompt: str) -> bool:
    digest = hashlib.blake2b(prompt.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 1000 < HELDOUT_PROMPT_FRACTION * 1000


def difficulty_of(gap: float) -> str | None:
    gap = abs(gap)
    if gap >= EASY_GAP:
        return "easy"
    if gap >= MEDIUM_GAP:
        return "medium"
    if gap >= TIE_GAP:
        return "hard"
    return None


class _PromptSource:
    """Draws prompts of weighted families from one side of the held-out split."""

    def __init__(self, rng: random.Random, families: dict[str, float], heldout: bool):
        self.rng, self.heldout = rng, heldout
        self.names = [f for f in FAMILIES if families.get(f, 0) > 0]
        self.weights = [families[f] for f in self.names]

    def draw(self) -> tuple[str, str]:
        family = self.rng.choices(self.names, self.weights)[0]
        while True:
            prompt = sample_prompt(self.rng, family)
            if is_heldout_prompt(prompt) == self.heldout:
                return family, prompt


def _label_pair(prompt: str, a_text: str, b_text: str, voters: list[Annotator], rng: random.Random,
                by_gold: bool, strict: bool = True) -> tuple[PreferencePair, float] | None:
    """Votes (and per-aspect judgements) of ``voters`` on one pair; chosen = majority, or gold-better.
    ``strict=False`` accepts text outside the lab language (a policy's samples), scored leniently."""
    info = parse_prompt(prompt)
    a, b = analyse(info, a_text, strict=strict), analyse(info, b_text, strict=strict)
    borderline = info.safety_class == "borderline"
    votes_a = [int(rng.random() < v.p_prefers(a, b, borderline)) for v in voters]
    aspect_votes = {d: [int(rng.random() < v.p_prefers_on(d, a, b)) for v in voters] if a.dims[d] != b.dims[d]
                    else None for d in DIMENSIONS}
    gap = a.utility - b.utility
    if by_gold:
        if difficulty_of(gap) is None:
            return None
        a_first = gap > 0
    else:
        a_first = 2 * sum(votes_a) > len(votes_a) or (2 * sum(votes_a) == len(votes_a) and rng.random() < 0.5)
    if not a_first:
        a, b, a_text, b_text = b, a, b_text, a_text
        votes_a = [1 - x for x in votes_a]
        aspect_votes = {d: None if v is None else [1 - x for x in v] for d, v in aspect_votes.items()}
    aspects = {d: (0.5 if v is None else sum(v) / len(v)) for d, v in aspect_votes.items()}
    pair = PreferencePair(
        prompt=prompt, chosen=a_text, rejected=b_text, votes=votes_a, annotators=[v.id for v in voters],
        aspects=aspects, difficulty=difficulty_of(a.utility - b.utility), source="lab",
        meta={"family": info.family, "gold": [round(a.utility, 4), round(b.utility, 4)],
              **({"safety_class": info.safety_class} if info.safety_class else {})})
    return pair, gap


def _as_gold_label(pair: PreferencePair, rng: random.Random, flip: float) -> None:
    """Make a gold-ordered pair a training pair labelled by gold alone: no votes (they would bring the
    annotators' biases back), the order flipped with probability ``flip`` (noise without bias)."""
    pair.votes = pair.annotators = None
    if rng.random() < flip:
        pair.chosen, pair.rejected = pair.rejected, pair.chosen
        pair.meta["gold"] = pair.meta["gold"][::-1]
        pair.aspects = {d: 1.0 - v for d, v in (pair.aspects or {}).items()}
        pair.meta["flipped"] = True


def label_policy_pairs(prompts: Sequence[str], first: Sequence[str], second: Sequence[str], *,
                       labels: LabelSource = "annotators", label_flip: float = 0.0, seed: int = 0,
                       annotators: int = 16, votes: int = 5, pool: str = "default") -> list[PreferencePair]:
    """Preference pairs of responses written elsewhere (two samples of a policy per prompt), labelled as
    ``lab data`` labels its training pairs: by the votes of ``votes`` annotators drawn from the pool that
    ``lab data`` makes with this seed (with their biases), or by gold with ``label_flip`` of the labels flipped.
    This is how proxies are trained on the policy's own distribution (InstructGPT's loop; the protocol of Gao
    et al. 2022), where pairs written by the lab are off-policy for a trained policy.

    Text outside the lab language is scored leniently (gold's coherence penalty, which the annotators share).
    Pairs with an empty or identical response are left out, and with gold labels so are pairs gold cannot
    tell apart (as in ``lab data``). Each pair's ``meta.source_index`` is the position of its prompt."""
    if labels not in get_args(LabelSource):
        raise ValueError(f"labels must be one of {list(get_args(LabelSource))}, got '{labels}'")
    if not 0 <= label_flip <= 0.5 or (label_flip and labels != "gold"):
        raise ValueError(f"label_flip is a share in [0, 0.5] of gold labels (labels gold), got {label_flip}")
    if not len(prompts) == len(first) == len(second):
        raise ValueError(f"prompts, first and second differ in length: {len(prompts)}, {len(first)}, {len(second)}")
    voters_pool = make_pool(annotators, seed, pool)
    rng = random.Random(f"{seed}-policy-pairs")
    out = []
    for i, (prompt, a_text, b_text) in enumerate(zip(prompts, first, second)):
        if not a_text.strip() or not b_text.strip() or a_text == b_text:
            continue
        voters = rng.sample(voters_pool, votes)
        labelled = _label_pair(prompt, a_text, b_text, voters, rng, by_gold=labels == "gold", strict=False)
        if labelled is None:
            continue
        pair = labelled[0]
        if labels == "gold":
            _as_gold_label(pair, rng, label_flip)
        pair.source = "lab-policy"
        pair.meta["source_index"] = i
        out.append(pair)
    return out


def check_replaceable(out: str | Path) -> None:
    """``out`` may receive a lab dataset: it is absent, empty, or an earlier lab dataset (which is replaced)."""
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "world.json").exists():
        raise InputError("refusing to replace a non-empty folder that is not a lab dataset", path=out)


def generate(cfg: LabDataConfig, progress: bool = True) -> dict:
    """Generate every lab file into ``cfg.out`` (atomically) and return a summary."""
    cfg.validate()
    out = Path(cfg.out)
    check_replaceable(out)
    pool = make_pool(cfg.annotators, cfg.seed, cfg.pool)
    # The output path is left out so that the same seed gives byte-identical files wherever they are written.
    # The labelling options are recorded only when set, so that a seed's default data stays byte-identical to
    # that of the versions before they existed (tests/lab/test_language.py pins it).
    config = {k: v for k, v in asdict(cfg).items()
              if k != "out" and not (k in ("labels", "label_flip") and v == type(cfg).__dataclass_fields__[k].default)}
    summary: dict = {"config": config, "files": {}}

    def pairs(n: int, heldout: bool, stream: str) -> list[dict]:
        rng = random.Random(f"{cfg.seed}-{stream}")
        prompts = _PromptSource(rng, cfg.families, heldout)
        rows: list[dict] = []
        bar = tqdm(total=n, desc=f"lab {stream}", disable=not progress, unit="pair")
        while len(rows) < n:
            _, prompt = prompts.draw()
            a_text, b_text = sample_pair(prompt, rng, share_style=cfg.share_style)
            voters = rng.sample(pool, cfg.votes)
            labelled = _label_pair(prompt, a_text, b_text, voters, rng, by_gold=heldout or cfg.labels == "gold")
            if labelled is None:
                continue
            pair = labelled[0]
            if not heldout and cfg.labels == "gold":
                _as_gold_label(pair, rng, cfg.label_flip)
            pair.id = f"lab-{stream}-{len(rows):06d}"
            rows.append(pair.to_dict())
            bar.update(1)
        bar.close()
        return rows

    def demos(n: int) -> list[dict]:
        rng = random.Random(f"{cfg.seed}-sft")
        prompts = _PromptSource(rng, cfg.families, heldout=False)
        rows = []
        for i in range(n):
            family, prompt = prompts.draw()
            response = sample_response(prompt, rng, DEMO_CONTENT, DEMO_STYLE)
            rows.append(Demonstration(prompt=prompt, response=response, id=f"lab-sft-{i:06d}", source="lab",
                                      meta={"family": family}).to_dict())
        return rows

    def prompt_rows(n: int, heldout: bool, stream: str) -> list[dict]:
        rng = random.Random(f"{cfg.seed}-{stream}")
        prompts = _PromptSource(rng, cfg.families, heldout)
        rows, seen = [], set()
        for _ in range(50 * n):
            if len(rows) == n:
                break
            family, prompt = prompts.draw()
            if prompt not in seen:
                seen.add(prompt)
                rows.append({"id": f"lab-{stream}-{len(rows):06d}", "prompt": prompt, "family": family})
        return rows

    files = {
        "train.jsonl": pairs(cfg.pairs, heldout=False, stream="train"),
        "heldout.jsonl": pairs(cfg.heldout_pairs, heldout=True, stream="heldout"),
        "sft.jsonl": demos(cfg.demos),
        "rl_prompts.jsonl": prompt_rows(cfg.rl_prompts, heldout=False, stream="rl"),
        "eval_prompts.jsonl": prompt_rows(cfg.rl_prompts, heldout=True, stream="eval"),
    }
    with atomic_dir(out) as tmp:
        for name, rows in files.items():
            write_jsonl_atomic(tmp / name, rows)
            summary["files"][name] = len(rows)
        for name in ("train.jsonl", "heldout.jsonl"):
            counts: dict[str, int] = {}
            for row in files[name]:
                key = row.get("difficulty") or UNLABELLED  # a gold gap below TIE_GAP: no gold preference
                counts[key] = counts.get(key, 0) + 1
            summary[f"difficulty_{name.split('.')[0]}"] = dict(sorted(counts.items()))
        world = {
            **summary,
            "gold_reward": gold.__doc__.strip(),
            "difficulty_gaps": {"easy": EASY_GAP, "medium": MEDIUM_GAP, "hard": TIE_GAP},
            "heldout_prompt_fraction": HELDOUT_PROMPT_FRACTION,
            "annotators": pool_summary(pool),
        }
        write_json_atomic(tmp / "world.json", json.loads(json.dumps(world)))
    return summary
