"""Prompts and responses of the lab world.

``sample_prompt`` draws a prompt of a family; ``sample_response`` draws a response whose content quality and
surface style vary (``ContentMix`` / ``StyleRates`` set how), rendered as plain lab-language text. Nothing here
scores anything: the gold reward (``gold.py``) reads the text back, so the text is the single source of truth.
Both write and read through ``language.py`` (templates, arithmetic, claims), and neither imports the other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rewardgauge.lab import language as L
from rewardgauge.lab.language import arithmetic_steps

FAMILIES = ("arithmetic", "premise", "safety", "open")


# --- prompts -----------------------------------------------------------------------------------------------

def sample_arithmetic_prompt(rng: random.Random) -> str:
    while True:
        n_ops = rng.choice((1, 2, 2))
        expr = [str(rng.randint(1, L.MAX_OPERAND))]
        for _ in range(n_ops):
            expr += [rng.choice(L.OPS), str(rng.randint(1, L.MAX_OPERAND))]
        steps = arithmetic_steps(expr)
        if all(z <= L.MAX_NUMBER for *_, z in steps):
            return L.ARITHMETIC_TEMPLATE.format(" ".join(expr))


def sample_premise_prompt(rng: random.Random) -> str:
    """``i think <claim> . right ?`` with a true or a false claim (about arithmetic or a fact)."""
    true_claim = rng.random() < 0.5
    if rng.random() < 0.5:
        a, b, op = rng.randint(1, L.MAX_OPERAND), rng.randint(1, L.MAX_OPERAND), rng.choice(L.OPS)
        value = L.apply_op(a, op, b)
        if not true_claim:
            value = _wrong_number(rng, value)
        claim = f"{a} {op} {b} is {value}"
    else:
        entity = rng.choice(sorted(L.FACTS))
        attribute = rng.choice(L.ATTRIBUTES)
        value = L.FACTS[entity][L.ATTRIBUTES.index(attribute)]
        if not true_claim:
            value = rng.choice([v for v in L.attribute_values(attribute) if v != value])
        claim = L.fact_sentence(entity, attribute, value)[:-2]
    return L.PREMISE_TEMPLATE.format(claim)


def sample_safety_prompt(rng: random.Random) -> str:
    cls = rng.choice(("harmful", "harmful", "benign", "benign", "borderline"))
    request = rng.choice(sorted(L.SAFETY_CLASSES[cls]))
    return rng.choice(L.SAFETY_TEMPLATES).format(request)


def sample_open_prompt(rng: random.Random) -> str:
    entity = rng.choice(sorted(L.FACTS))
    attribute = rng.choice(list(L.ATTRIBUTES) + [None])
    return L.OPEN_TEMPLATES[attribute].format(entity)


PROMPT_SAMPLERS = {
    "arithmetic": sample_arithmetic_prompt,
    "premise": sample_premise_prompt,
    "safety": sample_safety_prompt,
    "open": sample_open_prompt,
}


def sample_prompt(rng: random.Random, family: str) -> str:
    return PROMPT_SAMPLERS[family](rng)


def _wrong_number(rng: random.Random, value: int) -> int:
    candidates = [v for v in range(value - 3, value + 4) if v != value and 0 <= v <= L.MAX_NUMBER]
    return rng.choice(candidates)


# --- responses ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleRates:
    """How often each surface feature appears. Style is gold-neutral; filler costs gold a little per token."""

    opener: float = 0.25
    restate: float = 0.2
    numbered_list: float = 0.25
    filler_mean: float = 0.6  # mean number of filler units (a filler sentence or a hedge prefix)


@dataclass(frozen=True)
class ContentMix:
    """Probability that a response's content is the best variant; otherwise a variant is drawn uniformly."""

    best: float = 0.3


def _arithmetic_content(info: L.PromptInfo, rng: random.Random, best: bool) -> list[str]:
    steps = arithmetic_steps(info.expr)
    truth = steps[-1][3]
    variant = "correct" if best else rng.choice(
        ("correct", "process_error", "slip", "slip", "bad_answer", "answer_only", "answer_only_wrong"))
    if variant == "answer_only":
        return [f"answer {truth} ."]
    if variant == "answer_only_wrong":
        return [f"answer {_wrong_number(rng, truth)} ."]
    lines: list[tuple[int, str, int, int]] = []
    if variant == "slip":  # one step is off and the error is carried forward: a wrong final answer
        k = rng.randrange(len(steps))
        lines = arithmetic_steps(info.expr, slip=(k, _wrong_number(rng, steps[k][3])))
        answer = lines[-1][3]
    elif variant == "process_error":  # a wrong step, yet the right final answer (the lucky chain)
        k = rng.randrange(len(steps))
        lines = [(x, op, y, _wrong_number(rng, z) if i == k else z) for i, (x, op, y, z) in enumerate(steps)]
        answer = truth
    else:
        lines = list(steps)
        answer = truth if variant == "correct" else _wrong_number(rng, truth)
    return [f"{x} {op} {y} = {z} ." for x, op, y, z in lines] + [f"answer {answer} ."]


def _premise_content(info: L.PromptInfo, rng: random.Random, best: bool) -> list[str]:
    truth_value = info.true_value
    if info.claim_true:
        variant = "confirm" if best else rng.choice(("agree", "confirm", "deny", "deny_wrong"))
    else:
        variant = "correct" if best else rng.choice(
            ("agree", "agree", "agree_restate", "deny", "correct", "deny_wrong"))
    if variant == "agree":
        return [L.AGREE]
    if variant == "deny":
        return [L.DISAGREE]
    if variant in ("confirm", "agree_restate"):
        return [f"yes , {L.claim_text(info.subject, info.claimed_value)} ."]
    if variant == "correct":
        return [f"no , {L.claim_text(info.subject, truth_value)} ."]
    wrong = _wrong_value(info, rng)
    return [f"no , {L.claim_text(info.subject, wrong)} ."]


def _wrong_value(info: L.PromptInfo, rng: random.Random) -> str:
    if info.attribute is None:  # arithmetic claim
        avoid = {int(info.true_value), int(info.claimed_value)}
        while True:
            v = _wrong_number(rng, int(info.true_value))
            if v not in avoid:
                return str(v)
    options = [v for v in L.attribute_values(info.attribute) if v not in (info.true_value, info.claimed_value)]
    return rng.choice(options)


def _safety_content(info: L.PromptInfo, rng: random.Random, best: bool) -> list[str]:
    steps = L.request_steps(info.request)
    if best:
        variant = "refuse" if info.safety_class == "harmful" else "comply"
        if info.safety_class == "borderline":
            variant = rng.choice(("refuse", "comply"))
    else:
        variant = rng.choice(("refuse", "refuse_reason", "comply", "comply", "partial"))
    if variant == "refuse":
        return [L.REFUSAL]
    if variant == "refuse_reason":
        return [L.REFUSAL_WITH_REASON]
    n = 3 if variant == "comply" else rng.randint(1, 2)
    return [f"{L.STEP_WORDS[i] if n == 3 else ('first' if i == 0 else 'then')} {steps[i]} ." for i in range(n)]


def _open_content(info: L.PromptInfo, rng: random.Random, best: bool) -> list[str]:
    entity = info.entity
    truth = dict(zip(L.ATTRIBUTES, L.FACTS[entity]))

    def fact(attr: str, correct: bool) -> str:
        value = truth[attr] if correct else rng.choice([v for v in L.attribute_values(attr) if v != truth[attr]])
        return L.fact_sentence(entity, attr, value)

    others = [a for a in L.ATTRIBUTES if a != info.attribute]
    if info.attribute is None:  # "tell me about X": facts, some maybe wrong
        if best:
            return [fact(a, True) for a in L.ATTRIBUTES]
        k = rng.randint(1, 3)
        return [fact(a, rng.random() < 0.7) for a in rng.sample(list(L.ATTRIBUTES), k)]
    if best:  # the asked fact, then the rest of what is known
        return [fact(info.attribute, True)] + [fact(a, True) for a in others]
    variant = rng.choice(("right", "right_extra", "wrong", "wrong", "right_wrong_extra"))
    if variant == "right":
        return [fact(info.attribute, True)]
    if variant == "wrong":
        return [fact(info.attribute, False)]
    extra = fact(rng.choice(others), variant == "right_extra")
    return [fact(info.attribute, True), extra]


CONTENT = {"arithmetic": _arithmetic_content, "premise": _premise_content,
           "safety": _safety_content, "open": _open_content}


@dataclass(frozen=True)
class StylePlan:
    """The surface decisions for one response, separate from its content so two responses can share them."""

    opener: str | None = None
    restate: bool = False
    numbered_list: bool = False
    hedges: tuple[tuple[int, str], ...] = ()        # (content sentence index, hedge phrase)
    fillers: tuple[tuple[bool, str], ...] = ()      # (before the content?, filler sentence)


def sample_style(rng: random.Random, style: StyleRates) -> StylePlan:
    n_filler = 0
    while rng.random() < style.filler_mean / (1.0 + style.filler_mean) and n_filler < 4:  # geometric
        n_filler += 1
    hedges, fillers = [], []
    for _ in range(n_filler):
        if rng.random() < 0.5:
            hedges.append((rng.randrange(3), rng.choice(L.HEDGES)))
        else:
            fillers.append((rng.random() < 0.3, rng.choice(L.FILLER_SENTENCES)))
    return StylePlan(
        opener=rng.choice(L.OPENERS) if rng.random() < style.opener else None,
        restate=rng.random() < style.restate,
        numbered_list=rng.random() < style.numbered_list,
        hedges=tuple(hedges), fillers=tuple(fillers))


def render(content: list[str], info: L.PromptInfo, plan: StylePlan) -> str:
    """Dress content sentences with an opener, a restatement, numbering, hedges and filler sentences."""
    body = list(content)
    for index, hedge in plan.hedges:
        i = index % len(body)
        if not any(body[i].startswith(h) for h in L.HEDGES):
            body[i] = f"{hedge} {body[i]}"
    if len(body) >= 2 and plan.numbered_list:
        body = [f"{i + 1} ) {s}" for i, s in enumerate(body)]
    before = [f for first, f in plan.fillers if first]
    after = [f for first, f in plan.fillers if not first]
    head = ([plan.opener] if plan.opener else []) + ([L.restatement(info)] if plan.restate else [])
    return " ".join(head + before + body + after)


def sample_response(prompt: str, rng: random.Random, content: ContentMix = ContentMix(),
                    style: StyleRates = StyleRates()) -> str:
    """A response to ``prompt`` in the lab language, with random content quality and style."""
    info = L.parse_prompt(prompt)
    sentences = CONTENT[info.family](info, rng, rng.random() < content.best)
    return render(sentences, info, sample_style(rng, style))


def sample_pair(prompt: str, rng: random.Random, content: ContentMix = ContentMix(),
                style: StyleRates = StyleRates(), share_style: float = 0.7) -> tuple[str, str]:
    """Two different responses to one prompt. With probability ``share_style`` they share their surface
    style (as two samples of one writer do), so most comparisons are decided by content."""
    info = L.parse_prompt(prompt)
    for _ in range(100):
        texts = []
        shared = sample_style(rng, style) if rng.random() < share_style else None
        for _ in range(2):
            sentences = CONTENT[info.family](info, rng, rng.random() < content.best)
            texts.append(render(sentences, info, shared or sample_style(rng, style)))
        if texts[0] != texts[1]:
            return texts[0], texts[1]
    raise RuntimeError(f"could not draw two different responses to '{prompt}'")


def best_response(prompt: str, rng: random.Random | None = None) -> str:
    """The gold-best plain answer (no style, no filler)."""
    info = L.parse_prompt(prompt)
    return " ".join(CONTENT[info.family](info, rng or random.Random(0), True))
