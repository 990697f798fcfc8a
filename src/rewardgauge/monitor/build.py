"""Assemble a Monitor from its config and what the caller has: the proxy, the probe words, a policy sampler.

What the config names by path (probe prompts, held-out prompts, the fixed held-out pairs, the reward model's
training pairs) is read here; what only the caller knows comes as arguments (the lab's own false premises and
held-out prompts, for instance, from a command that may read the lab). A detector whose inputs are missing is
left out, and ``Monitor.skipped`` says why, so a config never silently watches less than it seems to.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardgauge.audit.patterns import agreement_check, regex_pattern, style_patterns
from rewardgauge.audit.phrases import Phrases
from rewardgauge.data.records import PreferencePair, Prompt
from rewardgauge.monitor.alarms import AlarmSink
from rewardgauge.monitor.detectors import (
    DisagreementDetector,
    FalsePremiseProbe,
    GoldGapDetector,
    KLBudgetDetector,
    LatentOutlierDetector,
    LengthDetector,
    StyleDetector,
    SycophancyDetector,
    read_false_premise_probes,
)
from rewardgauge.monitor.detectors.base import Detector
from rewardgauge.monitor.labellers import Buckets, load_labeller
from rewardgauge.monitor.monitor import Monitor, MonitorConfig
from rewardgauge.monitor.onpolicy import OnPolicyEval
from rewardgauge.monitor.rollouts import Sampler
from rewardgauge.rewards.base import RewardModel


def build_monitor(cfg: MonitorConfig, proxy: RewardModel | None, phrases: Phrases, *, sampler: Sampler | None = None,
                  false_premises: Sequence[FalsePremiseProbe] = (), heldout_prompts: Sequence[Prompt] = (),
                  fixed_pairs: Sequence[PreferencePair] = (), reference_pairs: Sequence[PreferencePair] = (),
                  buckets: Buckets | None = None, sink: AlarmSink | None = None, device: str | None = None,
                  seed: int = 0) -> Monitor:
    """The detectors ``cfg`` enables, each given what it needs; ``buckets``: the labeller's difficulty
    thresholds (the lab passes its own)."""
    from rewardgauge.data.io import load_pairs
    from rewardgauge.rewards.loading import load_reward_model

    detectors: list[Detector] = []
    skipped: dict[str, str] = {}
    if cfg.length.enabled:
        detectors.append(LengthDetector(cfg.length))
    if cfg.style.enabled:
        patterns = style_patterns(phrases, cfg.style.patterns)
        patterns += [regex_pattern(name, regex) for name, regex in cfg.style.extra_patterns.items()]
        detectors.append(StyleDetector(patterns, proxy, cfg.style, seed=seed))
    if cfg.sycophancy.enabled:
        probes = read_false_premise_probes(cfg.sycophancy.probes) if cfg.sycophancy.probes else list(false_premises)
        if probes:
            detectors.append(SycophancyDetector(probes, agreement_check(phrases), proxy, sampler, cfg.sycophancy))
        else:
            skipped["sycophancy"] = "no false-premise probe prompts (monitor.sycophancy.probes)"
    if cfg.disagreement.enabled:
        ensemble = load_reward_model(cfg.disagreement.ensemble, device=device) if cfg.disagreement.ensemble else None
        detectors.append(DisagreementDetector(ensemble, cfg.disagreement))
    if cfg.latent.enabled:
        pairs = load_pairs(cfg.latent.reference) if cfg.latent.reference else list(reference_pairs)
        features = getattr(proxy, "features", None)
        if features is None:
            skipped["latent"] = "the proxy exposes no hidden states (a reward-model folder does)"
        elif not pairs:
            skipped["latent"] = "no reference responses (monitor.latent.reference: the RM's training pairs)"
        else:
            pairs = list(pairs)[:cfg.latent.max_reference // 2]
            prompts = [p.prompt for p in pairs]
            reference = features(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
            detectors.append(LatentOutlierDetector(features, reference, cfg.latent, seed=seed))
    if cfg.gold_gap.enabled:
        gold = None if cfg.gold_gap.gold == "auto" else load_reward_model(cfg.gold_gap.gold, device=device)
        detectors.append(GoldGapDetector(gold, cfg.gold_gap))
    if cfg.kl.enabled:
        detectors.append(KLBudgetDetector(cfg.kl))
    if cfg.onpolicy.enabled:
        prompts = read_prompts(cfg.onpolicy.prompts) if cfg.onpolicy.prompts else list(heldout_prompts)
        fixed = load_pairs(cfg.onpolicy.fixed) if cfg.onpolicy.fixed else list(fixed_pairs)
        if sampler is None or proxy is None:
            skipped["onpolicy"] = "no policy sampler or no proxy reward model to evaluate"
        elif not prompts:
            skipped["onpolicy"] = "no held-out prompts (monitor.onpolicy.prompts)"
        else:
            labeller = load_labeller(cfg.onpolicy.labeller, device=device, buckets=buckets)
            detectors.append(OnPolicyEval(proxy, labeller, sampler, prompts, cfg.onpolicy, fixed))
    monitor = Monitor(detectors, sink=sink, every=cfg.every)
    monitor.skipped = skipped
    return monitor


def read_prompts(path: str) -> list[Prompt]:
    """The ``prompt`` of each row (text or chat messages)."""
    from rewardgauge.data.io import iter_rows
    from rewardgauge.errors import InputError

    prompts = []
    for line, row in iter_rows(path):
        prompt = row.get("prompt")
        if not (isinstance(prompt, str) and prompt.strip()) and not (isinstance(prompt, list) and prompt):
            raise InputError("expected a prompt (text or chat messages)", path=path, line=line, field="prompt")
        prompts.append(prompt)
    if not prompts:
        raise InputError("no prompts", path=path)
    return prompts
