"""Overoptimisation in the lab (issue 10): proxy reward models against the lab's gold reward, as Gao et al.
(2022) measured it with a synthetic gold model.

For each seed (the lab data, the models and the sampling all follow it):
  lab data       two annotator settings for the proxy reward models' training labels:
                   noise  labels from the gold reward, 25 % flipped at random (no systematic bias)
                   bias   the lab's annotators (length, openers, lists, agreeing with the user)
                 the held-out pairs are gold-labelled in both
  policy         a tiny Llama built from config, fine-tuned on the lab's demonstrations (SFT)
  proxy data     per setting, the proxies' training pairs: by default two samples of the SFT policy per lab
                 training prompt, labelled by the setting's labeller (Gao et al.'s protocol: a proxy trained on the
                 policy's own distribution; ``--proxy-data lab`` trains on the lab's own pairs, which are
                 off-policy for the SFT policy); also gold-labelled pairs of its samples on held-out prompts
  proxies        per setting, ``rm train --members 5`` (independent members, bootstrap subsets, all fine-tuned
                 from the SFT model): member m0 is the single RM; the ensemble is aggregated by min and by
                 mean - lambda * std; WARM (Rame et al. 2024) is the members' weights averaged (one init)
  main runs      GRPO against each of the four proxies at the weak KL coefficient; the gold reward of every
                 step's samples is logged beside the proxy (``rl`` logs gold_* for lab prompts)
  KL sweep       single RM and min-ensemble at every fixed coefficient and every adaptive KL target
  DPO            on each setting's training pairs from SFT; every few steps the implicit reward's accuracy on
                 gold-labelled pairs sampled from the DPO policy itself (held-out prompts), and on the fixed
                 held-out pairs
  hybrid         GRPO against the single RM from the DPO policy (KL to the SFT model) against the same run
                 from SFT, compared on gold reward at equal KL

Per run: d = sqrt(KL(pi || pi_sft)) (k3 estimate, summed over a response's tokens); gold gain R = gold -
gold_start (the first window's mean, near the SFT policy); Gao's R(d) = d (alpha - beta log d) fitted by least
squares; the peak and the final gold after a moving average of ``smooth`` steps; ``gold_drop_from_peak`` the share of the peak gain lost
by the end. Means and std over seeds in every table and plot.

Everything goes under ``--work`` (default ``runs/overopt``): a unit that finished (a ``bench.json`` in its
folder) is not run again, so a stopped run resumes where it was; an unfinished unit is redone from scratch.
``--out`` receives results.json and report.html (self-contained: inline SVG plots). Prints one JSON line.

    .venv/bin/python bench/overoptimization.py [--seeds 3] [--steps 160] [--proxy-data policy|lab] [--work DIR]
                                                [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

SETTINGS = ("noise", "bias")
FORMS = ("single", "ens_min", "ens_mean_std", "warm")
SWEEP_FORMS = ("single", "ens_min")
DONE = "bench.json"
BON_SAMPLES = 16  # best-of-N: samples of the SFT policy per held-out prompt; N = 1, 2, 4, ..., BON_SAMPLES
MAIN_KEYS = ("gold_start", "gold_peak", "gold_final", "gold_drop_from_peak", "gold_peak_step", "gold_gain_se",
             "proxy_start", "proxy_final", "kl_final", "gao_alpha", "gao_beta", "gao_r2")


@dataclass
class BenchConfig:
    """Every knob of the benchmark; ``--quick`` replaces some (``QUICK``)."""

    seeds: int = 3
    steps: int = 160  # RL steps per run: one seed at 300 steps peaked near step 90 against the noise proxy
    settings: tuple[str, ...] = SETTINGS
    preset: str = "tiny"
    # where the proxies' (and DPO's) training pairs come from: "policy" = two samples of the SFT policy per lab
    # training prompt, labelled per setting (Gao et al.'s protocol: the proxy starts on the policy's own
    # distribution); "lab" = the lab's own pairs (written by the lab's response generator: off-policy)
    proxy_data: str = "policy"
    pairs: int = 8000  # proxy training pairs per setting ("policy": prompts sampled; ties and empties dropped)
    heldout_pairs: int = 300
    demos: int = 6000
    rl_prompts: int = 512
    label_flip: float = 0.25
    # a weak SFT policy (gold of its samples about -2.5) leaves RL things a small proxy can see (format, refusals,
    # filler), so gold can rise before it falls; after 800 SFT steps gold fell from the first RL step (README)
    sft_steps: int = 150
    rm_epochs: int = 2
    rm_lr: float = 3e-4
    members: int = 5
    lam: float = 1.0  # mean - lam * std
    prompts_per_step: int = 4
    group_size: int = 8
    max_new_tokens: int = 32
    rl_lr: float = 1e-4
    weak_kl: float = 0.01  # the main runs' coefficient (one of kl_fixed)
    kl_fixed: tuple[float, ...] = (0.01, 0.05, 0.2, 1.0)
    kl_targets: tuple[float, ...] = (4.0,)  # adaptive: nats of response KL
    kl_adaptive_init: float = 0.05
    kl_horizon: int = 10  # rl updates the controller once a step: beta moves by up to 2 % a step
    dpo_steps: int = 60
    dpo_beta: float = 0.1
    dpo_lr: float = 5e-4
    dpo_eval_every: int = 10
    dpo_eval_prompts: int = 32  # held-out prompts, 2 samples each, per evaluation
    smooth: int = 10  # moving-average window (steps) for peak and final


QUICK = dict(seeds=1, steps=6, pairs=300, heldout_pairs=60, demos=600, rl_prompts=64, sft_steps=30,
             members=5, rm_epochs=1, prompts_per_step=4, group_size=4, max_new_tokens=24,
             kl_targets=(4.0,), dpo_steps=6, dpo_eval_every=3, dpo_eval_prompts=8, smooth=2)


# --- pure parts: curves, Gao's fit, peak and drop, spread over seeds -----------------------------------------

def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (the first values average what there is)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def gao_fit(d: Sequence[float], gain: Sequence[float]) -> dict[str, float | None]:
    """Least squares of Gao et al.'s R(d) = d (alpha - beta log d) (their eq. for RL, d = sqrt(KL)): linear in
    (alpha, beta) with features d and -d log d, no intercept (R(0) = 0). Points with d <= 0 carry no
    information (d log d -> 0) and are dropped. R^2 against the gain's mean."""
    x = np.asarray(d, dtype=float)
    y = np.asarray(gain, dtype=float)
    keep = x > 1e-9
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return {"alpha": None, "beta": None, "r2": None}
    features = np.stack([x, -x * np.log(x)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(features, y, rcond=None)
    residual = y - features @ np.array([alpha, beta])
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else None
    return {"alpha": float(alpha), "beta": float(beta), "r2": r2}


def peak_and_drop(gold: Sequence[float], window: int) -> dict[str, float | None]:
    """Start, peak and final gold of a run as means over ``window`` consecutive steps (start = the first window,
    the SFT policy's neighbourhood; peak = the best window; final = the last), the share of the peak's gain over
    the start lost by the end (None when the run never gained: nothing to lose; above 1 when it ends below where
    it started), the peak window's middle step, and ``gold_gain_se``: the standard error of a difference of two
    window means, from the step-to-step noise (sigma = std of first differences / sqrt 2). Only full windows
    count: a trailing mean over the first few steps averages one or two noisy steps, and its maximum would
    report a peak that is only noise."""
    w = max(1, min(window, len(gold)))
    means = [statistics.fmean(gold[i:i + w]) for i in range(len(gold) - w + 1)]
    best = max(range(len(means)), key=means.__getitem__)
    start, peak, final = means[0], means[best], means[-1]
    gain = peak - start
    sigma = float(np.std(np.diff(gold), ddof=1)) / math.sqrt(2) if len(gold) > 2 else 0.0
    return {"gold_start": start, "gold_peak": peak, "gold_final": final,
            "gold_drop_from_peak": (peak - final) / gain if gain > 0 else None,
            "gold_peak_step": float(best + 1 + (w - 1) / 2), "gold_gain_se": sigma * math.sqrt(2 / w)}


def bon_summary(bon: dict, form: str) -> dict[str, float | None]:
    """One seed's best-of-N curve of a proxy form in the keys of an RL run: start = N 1, peak over N, final = the
    largest N, the share of the peak's gain lost by then, the N of the peak, and the proxy at the largest N."""
    gold = bon["gold"][form]
    peak = max(range(len(gold)), key=gold.__getitem__)
    gain = gold[peak] - gold[0]
    return {"gold_start": gold[0], "gold_peak": gold[peak], "gold_final": gold[-1],
            "gold_drop_from_peak": (gold[peak] - gold[-1]) / gain if gain > 0 else None,
            "peak_n": float(bon["n"][peak]), "proxy_start": bon["proxy"][form][0],
            "proxy_final": bon["proxy"][form][-1], "oracle_final": bon["oracle"][-1]}


BON_KEYS = ("gold_start", "gold_peak", "gold_final", "gold_drop_from_peak", "peak_n", "proxy_start", "proxy_final",
            "oracle_final")


def run_summary(rows: Sequence[dict], window: int) -> dict[str, float | None]:
    """One RL run's keys (``MAIN_KEYS``) from its per-step rows (gold, proxy, kl)."""
    gold = [r["gold"] for r in rows]
    d = [math.sqrt(max(r["kl"], 0.0)) for r in rows]
    out = peak_and_drop(gold, window)
    fit = gao_fit(d, [g - out["gold_start"] for g in gold])
    proxy = moving_average([r["proxy"] for r in rows], window)
    out.update(proxy_start=rows[0]["proxy"], proxy_final=proxy[-1],
               kl_final=moving_average([r["kl"] for r in rows], window)[-1],
               gao_alpha=fit["alpha"], gao_beta=fit["beta"], gao_r2=fit["r2"])
    return out


def spread(per_seed: Sequence[dict], keys: Sequence[str]) -> dict[str, float | None]:
    """Mean and std (``KEY_std``, sample std; 0 for one seed) over seeds; seeds where a key is None are left
    out of it, and ``KEY_n`` says how many counted when some were."""
    out: dict[str, float | None] = {}
    for key in keys:
        values = [s[key] for s in per_seed if s.get(key) is not None]
        out[key] = statistics.fmean(values) if values else None
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        if len(values) != len(per_seed):
            out[f"{key}_n"] = len(values)
    return out


def best_of_n_expected(proxy: np.ndarray, gold: np.ndarray, n: int) -> tuple[float, float]:
    """Expected gold and proxy reward of the sample the proxy ranks first among ``n`` drawn without
    replacement from each row's K samples, averaged over rows (the exact estimator over all n-subsets: the
    sample of proxy rank r (1 = lowest) is the best of a random n-subset with probability C(r-1, n-1) / C(K, n);
    Gao et al. 2022, best-of-n). Rows are prompts; ties in the proxy are broken by position."""
    k = proxy.shape[1]
    weights = np.array([math.comb(r - 1, n - 1) for r in range(1, k + 1)], dtype=float) / math.comb(k, n)
    order = np.argsort(proxy, axis=1, kind="stable")
    gold_sorted = np.take_along_axis(gold, order, axis=1)
    proxy_sorted = np.take_along_axis(proxy, order, axis=1)
    return float((gold_sorted @ weights).mean()), float((proxy_sorted @ weights).mean())


def bon_kl(n: int) -> float:
    """KL(best-of-n || policy) = log n - (n - 1) / n (Stiennon et al. 2020; Gao et al. 2022)."""
    return math.log(n) - (n - 1) / n


def value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """ys at x by linear interpolation along a curve sorted by x (held flat beyond its ends)."""
    order = np.argsort(xs)
    return float(np.interp(x, np.asarray(xs, float)[order], np.asarray(ys, float)[order]))


def kl_label(coef: float | None = None, target: float | None = None) -> str:
    return f"target{target:g}" if target is not None else f"fixed{coef:g}"


# --- the work folder: units that run once --------------------------------------------------------------------

def once(folder: Path, work: Callable[[Path], dict]) -> dict:
    """``work(folder)``'s result, computed once: a finished unit keeps its ``bench.json``; an unfinished one
    (a crash or a stop) is cleared and redone."""
    from rewardgauge.io import write_json_atomic

    done = folder / DONE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = work(folder)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 1)  # this process's CPU time, load-independent
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(done, result)
    return result


def lab_data(cfg: BenchConfig, setting: str, seed: int, folder: Path) -> dict:
    from rewardgauge.lab.dataset import LabDataConfig, generate

    labels = {"labels": "gold", "label_flip": cfg.label_flip} if setting == "noise" else {}
    return generate(LabDataConfig(out=str(folder), pairs=cfg.pairs, heldout_pairs=cfg.heldout_pairs,
                                  demos=cfg.demos, rl_prompts=cfg.rl_prompts, seed=seed, **labels), progress=False)


def sft_policy(cfg: BenchConfig, labs: dict[str, Path], seed: int, folder: Path) -> dict:
    """A fresh tiny Llama whose tokenizer covers every setting's text, fine-tuned on the demonstrations."""
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.train.config import SFTConfig
    from rewardgauge.train.sft import run_sft

    corpus = [p / f for p in labs.values() for f in ("train.jsonl", "heldout.jsonl", "sft.jsonl")]
    init_model(corpus, folder / "init", preset=cfg.preset, seed=seed)
    first = next(iter(labs.values()))
    result = run_sft(SFTConfig(model=str(folder / "init"), data=str(first / "sft.jsonl"),
                               out=str(folder / "model"), max_steps=cfg.sft_steps, batch_size=32, lr=2e-3,
                               save_every=0, progress=False, seed=seed))
    shutil.rmtree(folder / "init")
    return {"sft_loss": result.last_metrics.get("loss")}


def proxy_pairs(cfg: BenchConfig, lab: Path, sft: Path, setting: str, seed: int, folder: Path) -> dict:
    """The setting's training pairs for the proxies and DPO. "policy": two samples of the SFT policy for each of
    the first ``pairs`` lab training prompts, labelled by the setting's labeller (``label_policy_pairs``); and
    gold-labelled pairs of its samples on the held-out prompts (the proxies' on-policy accuracy at the start).
    "lab": the lab's own training pairs."""
    from _lab import policy_pairs  # bench/ is sys.path[0] when a benchmark runs

    from rewardgauge.io import read_jsonl, write_jsonl_atomic

    folder.mkdir(parents=True, exist_ok=True)
    if cfg.proxy_data == "lab":
        shutil.copy2(lab / "train.jsonl", folder / "train.jsonl")
        return {"train_pairs": sum(1 for _ in read_jsonl(folder / "train.jsonl"))}
    labels = {"labels": "gold", "label_flip": cfg.label_flip} if setting == "noise" else {"labels": "annotators"}
    out = {}
    for name, source, labelling in (("train", lab / "train.jsonl", labels),
                                    ("heldout", lab / "eval_prompts.jsonl", {"labels": "gold"})):
        prompts = [r["prompt"] for r in read_jsonl(source)][: cfg.pairs]
        pairs = policy_pairs(sft, prompts, cfg.max_new_tokens, seed, **labelling)
        write_jsonl_atomic(folder / f"{name}.jsonl", [p.to_dict() for p in pairs])
        out[f"{name}_pairs"] = len(pairs)
    return out


def proxies(cfg: BenchConfig, lab: Path, data: Path, sft: Path, seed: int, folder: Path) -> dict:
    """The ensemble (members from the SFT model, trained on ``data``/train.jsonl), its held-out accuracy (the lab's
    gold-labelled pairs, and gold-labelled pairs of the SFT policy's samples when there are some), and WARM: the
    members averaged."""
    from rewardgauge.train.config import RewardTrainConfig
    from rewardgauge.train.ensemble import train_ensemble

    run = train_ensemble(RewardTrainConfig(
        model=str(sft), data=str(data / "train.jsonl"), eval_data=str(lab / "heldout.jsonl"),
        out=str(folder / "ensemble"), members=cfg.members, ensemble_form="independent", subset="bootstrap",
        epochs=cfg.rm_epochs, batch_size=16, lr=cfg.rm_lr, max_length=128, save_every=0, progress=False,
        seed=seed))
    members = sorted((folder / "ensemble" / "members").iterdir())
    average_weights(members, folder / "warm")
    accuracy = {"member_heldout_accuracy": [m.get("eval_accuracy") for m in run.members]}
    forms = {"single": str(members[0]), "ens_min": str(folder / "ensemble"), "warm": str(folder / "warm")}
    accuracy.update(heldout_accuracy(lab / "heldout.jsonl", forms))
    if (data / "heldout.jsonl").is_file():
        accuracy.update({f"policy_{k}": v for k, v in heldout_accuracy(data / "heldout.jsonl", forms).items()})
    return accuracy


def average_weights(members: Sequence[Path], out: Path) -> None:
    """WARM: the element-wise mean of the members' weights, saved as a reward-model folder beside them (the
    members share one initialisation, so their weights lie in one basin and average well)."""
    from safetensors.torch import load_file, save_file

    from rewardgauge.io import atomic_dir

    states = [load_file(str(m / "model.safetensors")) for m in members]
    mean = {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    with atomic_dir(out) as tmp:
        for f in members[0].iterdir():
            if f.is_file() and f.name != "model.safetensors":
                shutil.copy2(f, tmp / f.name)
        save_file(mean, str(tmp / "model.safetensors"), metadata={"format": "pt"})


def heldout_accuracy(pairs_path: Path, models: dict[str, str]) -> dict[str, float]:
    """Each proxy's accuracy on the gold-labelled held-out pairs."""
    from rewardgauge.data.io import load_pairs
    from rewardgauge.rewards.loading import load_reward_model
    from rewardgauge.rewards.pairs import score_pairs

    pairs = load_pairs(pairs_path)
    out = {}
    for name, spec in models.items():
        margins = score_pairs(load_reward_model(spec, device="cpu"), pairs).margins
        out[f"{name}_heldout_accuracy"] = float((margins > 0).float().mean())
    return out


def best_of_n(cfg: BenchConfig, lab: Path, sft: Path, rms: Path, seed: int, folder: Path) -> dict:
    """Best-of-N against each proxy form, Gao et al.'s other optimiser: BON_SAMPLES samples of the SFT policy per
    held-out prompt, scored by gold and by every proxy; per form the expected gold and proxy reward of the
    proxy's pick for N = 1, 2, 4, ..., BON_SAMPLES, with the oracle (gold picks) beside them."""
    from _lab import sample  # bench/ is sys.path[0] when a benchmark runs

    from rewardgauge.io import read_jsonl
    from rewardgauge.lab.gold import GoldReward
    from rewardgauge.rewards.loading import load_reward_model

    prompts = [r["prompt"] for r in read_jsonl(lab / "eval_prompts.jsonl")]
    texts = sample(sft, prompts, BON_SAMPLES, cfg.max_new_tokens, seed + 7919)
    flat_prompts = [p for p in prompts for _ in range(BON_SAMPLES)]
    flat_texts = [t for group in texts for t in group]
    shape = (len(prompts), BON_SAMPLES)
    gold = GoldReward(strict=False).score(flat_prompts, flat_texts).reward.numpy().reshape(shape)
    ns = [2 ** i for i in range(int(math.log2(BON_SAMPLES)) + 1)]
    out: dict = {"n": ns, "kl": [bon_kl(n) for n in ns], "prompts": len(prompts),
                 "oracle": [best_of_n_expected(gold, gold, n)[0] for n in ns], "gold": {}, "proxy": {}}
    for form in FORMS:
        reward = reward_of(form, rms)
        rm = load_reward_model(reward["reward.models"], device="cpu", aggregator=reward.get("reward.aggregator"))
        proxy = rm.score(flat_prompts, flat_texts).reward.numpy().reshape(shape)
        picked = [best_of_n_expected(proxy, gold, n) for n in ns]
        out["gold"][form] = [g for g, _ in picked]
        out["proxy"][form] = [q for _, q in picked]
    return out


def reward_of(form: str, rms: Path) -> dict:
    """The ``reward.*`` settings of one proxy form."""
    return {"single": {"reward.models": str(rms / "ensemble" / "members" / "m0")},
            "ens_min": {"reward.models": str(rms / "ensemble"), "reward.aggregator": "min"},
            "ens_mean_std": {"reward.models": str(rms / "ensemble"), "reward.aggregator": "mean_minus_std"},
            "warm": {"reward.models": str(rms / "warm")}}[form]


def rl_run(cfg: BenchConfig, lab: Path, start: Path, reward: dict, seed: int, coef: float,
           target: float | None, reference: Path | None, folder: Path) -> dict:
    """GRPO from ``start`` against ``reward``; the per-step rows (proxy, gold, kl to the reference)."""
    from rewardgauge.config import load_config
    from rewardgauge.io import read_jsonl
    from rewardgauge.train.config import RLConfig
    from rewardgauge.train.rl import run_rl

    overrides = {
        "algo": "grpo", "prompts": str(lab / "rl_prompts.jsonl"), "out": str(folder / "run"),
        "policy.model": str(start), "reward.gold": "lab-gold", "seed": seed, "steps": cfg.steps,
        "prompts_per_step": cfg.prompts_per_step, "generation.group_size": cfg.group_size,
        "generation.max_new_tokens": cfg.max_new_tokens, "policy.lr": cfg.rl_lr, "kl.coef": coef,
        "kl.estimator": "k3", "save_every": 0, "samples_every": max(1, cfg.steps // 10), "progress": False,
        **reward}
    if reference is not None:
        overrides["policy.ref_model"] = str(reference)
    if target is not None:
        overrides.update({"kl.target": target, "kl.horizon": cfg.kl_horizon})
    run_rl(load_config(RLConfig, None, overrides))
    rows = [{"step": r["step"], "proxy": r["reward_mean"], "gold": r["gold_mean"], "kl": r["kl_k3"],
             "kl_coef": r["kl_coef"], "length": r["response_length"]}
            for r in read_jsonl(folder / "run" / "metrics.jsonl")]
    for f in (folder / "run").glob("model.safetensors"):
        f.unlink()  # the policy is not needed again; the metrics and samples stay
    return {"rows": rows}


def dpo_run(cfg: BenchConfig, lab: Path, data: Path, sft: Path, seed: int, folder: Path) -> dict:
    """DPO from SFT on the setting's pairs; every ``dpo_eval_every`` steps, the implicit reward's accuracy on
    pairs sampled from the policy itself (labelled by gold) and on the fixed held-out pairs."""
    from rewardgauge.train.config import DPOConfig
    from rewardgauge.train.dpo import run_dpo

    probe = ImplicitRewardProbe(cfg, lab, sft, seed)
    evals = [probe(0, None)]

    def callback(state):
        if state.step % cfg.dpo_eval_every == 0 or state.step == state.total_steps:
            evals.append(probe(state.step, state.accelerator.unwrap_model(state.model)))

    run_dpo(DPOConfig(model=str(sft), data=str(data / "train.jsonl"), out=str(folder / "policy"),
                      max_steps=cfg.dpo_steps, batch_size=16, lr=cfg.dpo_lr, beta=cfg.dpo_beta,
                      max_length=128, max_prompt_length=64, save_every=0, progress=False, seed=seed),
            callbacks=[callback])
    return {"evals": evals}


class ImplicitRewardProbe:
    """The DPO policy's implicit reward beta * (log pi - log pi_sft), checked against gold on two sets: pairs
    of its own samples (two per held-out prompt, pairs gold cannot tell apart (gap < 0.15) left out) and the
    fixed gold-labelled held-out pairs. Step 0 is the SFT policy (implicit reward 0 everywhere: accuracy is
    the share of strict wins, 0)."""

    TIE = 0.15

    def __init__(self, cfg: BenchConfig, lab: Path, sft: Path, seed: int):
        from rewardgauge.data.io import load_pairs
        from rewardgauge.io import read_jsonl
        from rewardgauge.lab.gold import GoldReward
        from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer

        self.cfg, self.seed = cfg, seed
        self.tokenizer = load_tokenizer(sft)
        self.reference = load_causal_lm(sft).eval().requires_grad_(False)
        self.heldout = load_pairs(lab / "heldout.jsonl")
        self.prompts = [r["prompt"] for r in read_jsonl(lab / "eval_prompts.jsonl")][: cfg.dpo_eval_prompts]
        self.gold = GoldReward(strict=False)  # a policy may write outside the lab language

    def __call__(self, step: int, policy) -> dict:
        import copy

        import torch

        from rewardgauge.modeling.formatting import encode_prompts, ensure_pad_token
        from rewardgauge.modeling.generation import SamplingParams, TorchBackend, eos_token_ids_of
        from rewardgauge.rewards.dpo import DPOImplicitReward
        from rewardgauge.rewards.pairs import score_pairs
        from rewardgauge.train.rollout import decode_responses

        model = copy.deepcopy(policy if policy is not None else self.reference)  # the live policy keeps training
        implicit = DPOImplicitReward(model, self.reference, self.tokenizer, self.cfg.dpo_beta, device="cpu")
        pad = ensure_pad_token(self.tokenizer)
        backend = TorchBackend(model, eos_token_ids_of(self.tokenizer), pad)
        gen = backend.generate(encode_prompts(self.tokenizer, self.prompts, 64),
                               SamplingParams(self.cfg.max_new_tokens), 2, seed=self.seed * 1000 + step)
        texts = decode_responses(self.tokenizer, gen)
        prompts = [p for p in self.prompts for _ in range(2)]
        gold = self.gold.score(prompts, texts).reward
        implicit_own = implicit.score(prompts, texts).reward
        wins = []
        for i in range(0, len(texts), 2):
            gap = float(gold[i] - gold[i + 1])
            if abs(gap) >= self.TIE:
                wins.append(float((implicit_own[i] - implicit_own[i + 1]) * math.copysign(1, gap) > 0))
        with torch.inference_mode():
            margins = score_pairs(implicit, self.heldout).margins
        return {"step": step, "own_accuracy": statistics.fmean(wins) if wins else None, "own_pairs": len(wins),
                "heldout_accuracy": float((margins > 0).float().mean()), "own_gold": float(gold.mean())}


# --- the plan -----------------------------------------------------------------------------------------------

class Runner:
    """Runs units (folder, work) with ``once``: in this process, or on ``jobs`` worker processes (spawned, each
    with ``threads`` torch threads), the results in the order given."""

    def __init__(self, jobs: int, threads: int):
        self.pool = None
        self.units: list[dict] = []  # every unit's result: its seconds and cpu_seconds (those of an earlier run
        # when it was done then)
        if jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=set_threads, initargs=(threads,))

    def run(self, units: Sequence[tuple[Path, Callable[[Path], dict]]]) -> list[dict]:
        if self.pool is None:
            results = [once(folder, work) for folder, work in units]
        else:
            results = [f.result() for f in [self.pool.submit(once, folder, work) for folder, work in units]]
        self.units += results
        return results

    def totals(self) -> dict[str, float]:
        """Wall and CPU seconds of all units, summed (with --jobs 2 the wall time is about half the first)."""
        return {key: round(sum(u.get(key, 0.0) for u in self.units), 1) for key in ("seconds", "cpu_seconds")}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def set_threads(threads: int) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    import torch

    torch.set_num_threads(threads)


def run_all(cfg: BenchConfig, work: Path, runner: Runner, log: Callable[[str], None]) -> list[dict]:
    """Every unit of every seed, in phases whose units are independent: lab data, SFT, proxies, the RL runs
    and DPO, then DPO -> RL. Returns per seed, per setting: proxies' accuracy, each run's rows, DPO's evals."""
    seeds = range(cfg.seeds)
    keys = [(seed, s) for seed in seeds for s in cfg.settings]
    lab = {(seed, s): work / f"seed{seed}" / f"lab-{s}" for seed, s in keys}
    sft = {seed: work / f"seed{seed}" / "sft" for seed in seeds}
    rms = {(seed, s): work / f"seed{seed}" / f"rm-{s}" for seed, s in keys}
    data = {(seed, s): work / f"seed{seed}" / f"pairs-{s}" for seed, s in keys}
    runner.run([(lab[k], partial(lab_data, cfg, k[1], k[0])) for k in keys])
    runner.run([(sft[seed], partial(sft_policy, cfg, {s: lab[seed, s] for s in cfg.settings}, seed))
                for seed in seeds])
    log("lab data and SFT")
    made = runner.run([(data[k], partial(proxy_pairs, cfg, lab[k], sft[k[0]] / "model", k[1], k[0])) for k in keys])
    log(f"proxy training pairs ({cfg.proxy_data}): {json.dumps({f'{k[0]}/{k[1]}': v for k, v in zip(keys, made)})}")
    accuracy = dict(zip(keys, runner.run([(rms[k], partial(proxies, cfg, lab[k], data[k], sft[k[0]] / "model", k[0]))
                                          for k in keys])))
    for k, m in zip(keys, made):
        accuracy[k].update({key: v for key, v in m.items() if key.endswith("_pairs")})
    log(f"proxies: {json.dumps({f'{k[0]}/{k[1]}': v for k, v in accuracy.items()})}")
    bon = dict(zip(keys, runner.run([(work / f"seed{seed}" / f"bon-{s}",
                                      partial(best_of_n, cfg, lab[seed, s], sft[seed] / "model", rms[seed, s], seed))
                                     for seed, s in keys])))
    log("best-of-N")
    units, names = [], []
    for seed, s in keys:
        for form in FORMS:
            labels = [(c, None) for c in cfg.kl_fixed] + [(cfg.kl_adaptive_init, t) for t in cfg.kl_targets]
            for coef, target in labels if form in SWEEP_FORMS else [(cfg.weak_kl, None)]:
                names.append((seed, s, form, kl_label(coef, target)))
                units.append((work / f"seed{seed}" / "rl" / s / form / names[-1][-1],
                              partial(rl_run, cfg, lab[seed, s], sft[seed] / "model", reward_of(form, rms[seed, s]),
                                      seed, coef, target, None)))
        names.append((seed, s, "dpo", ""))
        units.append((work / f"seed{seed}" / f"dpo-{s}", partial(dpo_run, cfg, lab[seed, s], data[seed, s],
                                                                 sft[seed] / "model", seed)))
    results = runner.run(units)
    log(f"{len(units)} RL and DPO runs: {sum(r['seconds'] for r in results):.0f} s of work")
    hybrid = dict(zip(keys, runner.run([
        (work / f"seed{seed}" / "rl" / s / "dpo_then_rl",
         partial(rl_run, cfg, lab[seed, s], work / f"seed{seed}" / f"dpo-{s}" / "policy",
                 reward_of("single", rms[seed, s]), seed, cfg.weak_kl, None, sft[seed] / "model"))
        for seed, s in keys])))
    log("DPO -> RL")
    out = [{"seed": seed, "settings": {s: {"proxies": accuracy[seed, s], "runs": {}, "dpo": None,
                                           "hybrid": hybrid[seed, s]["rows"], "bon": bon[seed, s]}
                                       for s in cfg.settings}}
           for seed in seeds]
    for (seed, s, form, name), result in zip(names, results):
        place = out[seed]["settings"][s]
        if form == "dpo":
            place["dpo"] = result["evals"]
        else:
            place["runs"].setdefault(form, {})[name] = result["rows"]
    return out


# --- aggregation over seeds ---------------------------------------------------------------------------------

def summarise(cfg: BenchConfig, seeds: list[dict]) -> dict:
    weak = kl_label(cfg.weak_kl)
    summary: dict = {"main": {}, "bon": {}, "kl_sweep": {}, "dpo": {}, "hybrid": {}, "proxies": {},
                     "seeds_visible": {}}
    for s in cfg.settings:
        per = [x["settings"][s] for x in seeds]
        main = {f: [run_summary(p["runs"][f][weak], cfg.smooth) for p in per] for f in FORMS}
        summary["main"][s] = {f: spread(runs, MAIN_KEYS) for f, runs in main.items()}
        summary["seeds_visible"][s] = sum(overoptimised(run) for run in main["single"])
        summary["bon"][s] = {f: spread([bon_summary(p["bon"], f) for p in per], BON_KEYS) for f in FORMS}
        summary["kl_sweep"][s] = {
            f: {name: spread([run_summary(p["runs"][f][name], cfg.smooth) for p in per],
                             ("gold_peak", "gold_final", "kl_final", "gold_drop_from_peak"))
                for name in per[0]["runs"][f]} for f in SWEEP_FORMS}
        acc_keys = [k for k in per[0]["proxies"]
                    if k.endswith(("heldout_accuracy", "_pairs")) and not k.startswith("member")]
        summary["proxies"][s] = spread([p["proxies"] for p in per], acc_keys)
        first, last = ([p["dpo"][i] for p in per] for i in (1, -1))
        summary["dpo"][s] = {
            **{f"first_{k}": v for k, v in spread(first, ("own_accuracy", "heldout_accuracy")).items()},
            **{f"last_{k}": v for k, v in spread(last, ("own_accuracy", "heldout_accuracy", "own_gold")).items()},
            "first_step": per[0]["dpo"][1]["step"], "last_step": per[0]["dpo"][-1]["step"]}
        summary["hybrid"][s] = spread([equal_kl(p["runs"]["single"][weak], p["hybrid"], cfg.smooth) for p in per],
                                      ("kl", "gold_rl_from_sft", "gold_dpo_then_rl", "gold_dpo_start"))
    summary["claims"] = claims(cfg, summary)
    return summary


def equal_kl(from_sft: list[dict], from_dpo: list[dict], window: int) -> dict:
    """Gold of both runs at one KL to SFT: the smaller of their final (smoothed) KLs, read off each run's
    smoothed gold-against-KL curve."""
    curves = []
    for rows in (from_sft, from_dpo):
        curves.append((moving_average([r["kl"] for r in rows], window),
                       moving_average([r["gold"] for r in rows], window)))
    kl = min(curves[0][0][-1], curves[1][0][-1])
    return {"kl": kl, "gold_rl_from_sft": value_at(*curves[0], kl), "gold_dpo_then_rl": value_at(*curves[1], kl),
            "gold_dpo_start": from_dpo[0]["gold"]}


def overoptimised(run: dict) -> bool:
    """The issue's bar for overoptimisation in one run's keys (or their means over seeds): gold rose beyond twice
    its standard error, then lost at least 20 % of that gain by the end, while the proxy rose."""
    drop = run["gold_drop_from_peak"]
    return (drop is not None and drop >= 0.2 and run["gold_peak"] - run["gold_start"] > 2 * run["gold_gain_se"]
            and run["proxy_final"] > run["proxy_start"])


def claims(cfg: BenchConfig, summary: dict) -> dict:
    """The article's claims, each as the numbers that test it (means over seeds) and whether they agree."""
    out: dict = {}
    for s in cfg.settings:
        main, sweep = summary["main"][s], summary["kl_sweep"][s]
        single_fixed = {k: v for k, v in sweep["single"].items() if k.startswith("fixed")}
        best_peak = max(v["gold_peak"] for v in single_fixed.values())
        best_final_name = max(single_fixed, key=lambda k: single_fixed[k]["gold_final"])
        drop = main["single"]["gold_drop_from_peak"]
        out[s] = {
            # overoptimisation visible: single RM, weak KL, >= 20 % of the gain lost while the proxy rose
            "single_weak_kl_drop": drop,
            # the gain the drop is a share of: a peak within noise of the start makes the drop meaningless
            "single_weak_kl_peak_gain": main["single"]["gold_peak"] - main["single"]["gold_start"],
            "single_weak_kl_proxy_rise": main["single"]["proxy_final"] - main["single"]["proxy_start"],
            # its noise: a gain within 2 standard errors of the start is no rise
            "single_weak_kl_gain_se": main["single"]["gold_gain_se"],
            "overoptimisation_visible": overoptimised(main["single"]),
            # the same bar seed by seed: a mean can pass it on one seed's collapse while the others still rise
            "single_weak_kl_seeds_visible": summary["seeds_visible"][s],
            "seeds": cfg.seeds,
            # the same with best-of-N against the single RM (N up to BON_SAMPLES, KL up to log N - (N-1)/N)
            "bon_single_peak_gain": summary["bon"][s]["single"]["gold_peak"] - summary["bon"][s]["single"]["gold_start"],
            "bon_single_drop": summary["bon"][s]["single"]["gold_drop_from_peak"],
            "bon_overoptimisation_visible": (summary["bon"][s]["single"]["gold_drop_from_peak"] or 0) >= 0.2
                                            and summary["bon"][s]["single"]["proxy_final"]
                                            > summary["bon"][s]["single"]["proxy_start"],
            # KL alone throttles: no fixed coefficient ends where the best run peaked
            "single_best_peak_any_kl": best_peak,
            "single_best_final_any_kl": single_fixed[best_final_name]["gold_final"],
            "single_best_final_kl": best_final_name,
            "kl_alone_throttles": single_fixed[best_final_name]["gold_final"] < best_peak,
            # ensemble + KL does better: best final gold over the sweep, min-ensemble against single
            "ens_min_best_final_any_kl": max(v["gold_final"] for v in sweep["ens_min"].values()),
            "single_best_final_any_kl_incl_adaptive": max(v["gold_final"] for v in sweep["single"].values()),
            "ensemble_gain_weak_kl": {f: main[f]["gold_final"] - main["single"]["gold_final"] for f in FORMS[1:]},
        }
        out[s]["ensemble_with_kl_better"] = (out[s]["ens_min_best_final_any_kl"]
                                            > out[s]["single_best_final_any_kl_incl_adaptive"])
        dpo = summary["dpo"][s]
        own, held = dpo["last_own_accuracy"], dpo["last_heldout_accuracy"]
        out[s]["dpo_own_minus_heldout_accuracy"] = own - held if own is not None and held is not None else None
        out[s]["dpo_implicit_worse_on_own_samples"] = own is not None and held is not None and own < held
        hybrid = summary["hybrid"][s]
        out[s]["hybrid_minus_rl_gold_at_equal_kl"] = hybrid["gold_dpo_then_rl"] - hybrid["gold_rl_from_sft"]
    if "noise" in cfg.settings and "bias" in cfg.settings:
        gain = {s: out[s]["ensemble_gain_weak_kl"]["ens_min"] for s in ("noise", "bias")}
        out["ensemble_gain_noise_minus_bias"] = gain["noise"] - gain["bias"]
        out["ensembles_help_more_against_noise"] = gain["noise"] > gain["bias"]
    return out


# --- report -------------------------------------------------------------------------------------------------

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def mean_band(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean, mean - std and mean + std per step over seeds (cut to the shortest)."""
    n = min(len(c) for c in curves)
    a = np.array([c[:n] for c in curves], dtype=float)
    m, sd = a.mean(0), (a.std(0, ddof=1) if len(a) > 1 else np.zeros(n))
    return m.tolist(), (m - sd).tolist(), (m + sd).tolist()


def svg_plot(title: str, xlabel: str, ylabel: str, series: Sequence[dict], scatter: bool = False) -> str:
    """An inline SVG: each series {label, x, y, lo?, hi?} as a line with a shaded mean +- std band (or
    points with error bars when ``scatter``)."""
    w, h, left, right, top, bottom = 520, 300, 58, 130, 26, 40
    xs = [v for s in series for v in s["x"]]
    ys = [v for s in series for v in (s.get("lo") or s["y"]) + (s.get("hi") or s["y"])]
    if not xs or not ys:
        return ""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y):
        return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)

    parts = [f'<text x="{w / 2:.0f}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#444"/>',
             f'<text x="{(left + w - right) / 2:.0f}" y="{h - 6}" text-anchor="middle">{html.escape(xlabel)}</text>',
             f'<text x="14" y="{(top + h - bottom) / 2:.0f}" text-anchor="middle" '
             f'transform="rotate(-90 14 {(top + h - bottom) / 2:.0f})">{html.escape(ylabel)}</text>']
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{sx(xv):.1f}" y="{h - bottom + 14}" text-anchor="middle" font-size="10">{xv:.3g}</text>')
        parts.append(f'<text x="{left - 4}" y="{sy(yv) + 3:.1f}" text-anchor="end" font-size="10">{yv:.3g}</text>')
    for k, s in enumerate(series):
        c = s.get("colour", COLOURS[k % len(COLOURS)])
        pts = list(zip(s["x"], s["y"]))
        if scatter:
            for j, (x, y) in enumerate(pts):
                if s.get("lo"):
                    parts.append(f'<line x1="{sx(x):.1f}" y1="{sy(s["lo"][j]):.1f}" x2="{sx(x):.1f}" '
                                 f'y2="{sy(s["hi"][j]):.1f}" stroke="{c}"/>')
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{c}"/>')
                if s.get("names"):
                    parts.append(f'<text x="{sx(x) + 5:.1f}" y="{sy(y) - 4:.1f}" font-size="9" fill="{c}">'
                                 f'{html.escape(s["names"][j])}</text>')
        else:
            if s.get("lo"):
                band = [f"{sx(x):.1f},{sy(v):.1f}" for x, v in zip(s["x"], s["hi"])]
                band += [f"{sx(x):.1f},{sy(v):.1f}" for x, v in reversed(list(zip(s["x"], s["lo"])))]
                parts.append(f'<polygon points="{" ".join(band)}" fill="{c}" fill-opacity="0.15" stroke="none"/>')
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            dash = ' stroke-dasharray="5,3"' if s.get("dashed") else ""
            parts.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="1.6"{dash}/>')
        parts.append(f'<rect x="{w - right + 8}" y="{top + 14 * k}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{w - right + 22}" y="{top + 9 + 14 * k}" font-size="11">{html.escape(s["label"])}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def curve(per_seed_rows: Sequence[list[dict]], key: str, window: int) -> dict:
    """Mean +- std over seeds of a per-step series against the mean sqrt(KL)."""
    d = mean_band([[math.sqrt(max(k, 0.0)) for k in moving_average([r["kl"] for r in rows], window)]
                   for rows in per_seed_rows])[0]
    m, lo, hi = mean_band([moving_average([r[key] for r in rows], window) for rows in per_seed_rows])
    return {"x": d, "y": m, "lo": lo, "hi": hi}


def fmt(v) -> str:
    return "–" if v is None else f"{v:.3g}" if isinstance(v, float) else html.escape(str(v))


def table(rows: dict[str, dict], keys: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = ""
    for name, vals in rows.items():
        cells = "".join(f"<td>{fmt(vals.get(k))}{' ± ' + fmt(vals.get(k + '_std')) if k + '_std' in vals else ''}</td>"
                        for k in keys)
        body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def report_html(cfg: BenchConfig, seeds: list[dict], summary: dict, seconds: float) -> str:
    weak = kl_label(cfg.weak_kl)
    parts = [f"<h1>Overoptimisation in the lab</h1><p>{len(seeds)} seed(s), {cfg.steps} GRPO steps per run, "
             f"{seconds:.0f} s in all. Means ± std over seeds; curves smoothed over {cfg.smooth} steps; "
             f"d = sqrt(KL to the SFT policy), k3 estimate.</p>",
             f"<pre>{html.escape(json.dumps(dataclasses.asdict(cfg)))}</pre>"]
    for s in cfg.settings:
        per = [x["settings"][s] for x in seeds]
        parts.append(f"<h2>Setting: {s}</h2><h3>Proxies' held-out accuracy (gold labels)</h3>"
                     + table({"accuracy": summary["proxies"][s]}, [k for k in summary["proxies"][s]
                                                                     if not k.endswith(("_std", "_n"))]))
        parts.append(f"<h3>Main runs (KL coefficient {cfg.weak_kl:g})</h3>" + table(summary["main"][s], MAIN_KEYS))
        for f in FORMS:
            rows = [p["runs"][f][weak] for p in per]
            gold, proxy = curve(rows, "gold", cfg.smooth), curve(rows, "proxy", cfg.smooth)
            spread_ = summary["main"][s][f]
            series = [{**gold, "label": "gold"}]
            if spread_["gao_alpha"] is not None:
                fit_x = sorted(gold["x"])
                base = spread_["gold_start"]  # the fit is of the gain over the first window, as run_summary's
                series.append({"x": fit_x, "y": [base + x * (spread_["gao_alpha"] - spread_["gao_beta"] * math.log(x))
                                                  if x > 0 else base for x in fit_x],
                               "label": "Gao fit (mean α, β)", "dashed": True})
            parts.append(svg_plot(f"{s}: {f}, gold", "d = sqrt(KL)", "gold reward", series))
            parts.append(svg_plot(f"{s}: {f}, proxy", "d = sqrt(KL)", "proxy reward", [{**proxy, "label": "proxy"}]))
        bon_rows = [p["bon"] for p in per]
        parts.append(f"<h3>Best-of-N from the SFT policy ({BON_SAMPLES} samples per held-out prompt)</h3>"
                     + table(summary["bon"][s], BON_KEYS))
        bon_series = []
        for f in (*FORMS, "oracle"):
            curves = [b["oracle"] if f == "oracle" else b["gold"][f] for b in bon_rows]
            m, lo, hi = mean_band(curves)
            bon_series.append({"x": [math.sqrt(k) for k in bon_rows[0]["kl"]], "y": m, "lo": lo, "hi": hi,
                               "label": f, "dashed": f == "oracle"})
        parts.append(svg_plot(f"{s}: best-of-N, gold of the proxy's pick", "d = sqrt(KL_bon)", "gold reward",
                              bon_series))
        sweep = summary["kl_sweep"][s]
        parts.append("<h3>KL sweep</h3>" + "".join(
            f"<h4>{f}</h4>" + table(sweep[f], ("gold_peak", "gold_final", "kl_final", "gold_drop_from_peak"))
            for f in SWEEP_FORMS))
        frontier = []
        for f in SWEEP_FORMS:
            names = list(sweep[f])
            for key in ("gold_peak", "gold_final"):
                frontier.append({"x": [sweep[f][n]["kl_final"] for n in names], "y": [sweep[f][n][key] for n in names],
                                 "lo": [sweep[f][n][key] - sweep[f][n][key + "_std"] for n in names],
                                 "hi": [sweep[f][n][key] + sweep[f][n][key + "_std"] for n in names],
                                 "names": names, "label": f"{f} {key.split('_')[1]}"})
        parts.append(svg_plot(f"{s}: KL frontier", "final KL (nats)", "gold reward", frontier, scatter=True))
        parts.append(svg_plot(f"{s}: gold against d, KL sweep (single RM)", "d = sqrt(KL)", "gold reward",
                              [{**curve([p["runs"]["single"][n] for p in per], "gold", cfg.smooth), "label": n}
                               for n in per[0]["runs"]["single"]]))
        steps = [e["step"] for e in per[0]["dpo"][1:]]
        dpo_series = []
        for key in ("own_accuracy", "heldout_accuracy"):
            vals = [[e[key] if e[key] is not None else float("nan") for e in p["dpo"][1:]] for p in per]
            m, lo, hi = mean_band(vals)
            dpo_series.append({"x": steps, "y": m, "lo": lo, "hi": hi, "label": key})
        parts.append("<h3>DPO implicit reward</h3>" + table({"dpo": summary["dpo"][s]}, [
            k for k in summary["dpo"][s] if not k.endswith(("_std", "_n"))]))
        parts.append(svg_plot(f"{s}: DPO implicit reward accuracy", "DPO step", "accuracy vs gold", dpo_series))
        parts.append("<h3>DPO then RL against RL from SFT (single RM)</h3>" + table({"equal KL": summary["hybrid"][s]},
                     ("kl", "gold_rl_from_sft", "gold_dpo_then_rl", "gold_dpo_start")))
        parts.append(svg_plot(f"{s}: gold at equal KL", "d = sqrt(KL to SFT)", "gold reward", [
            {**curve([p["runs"]["single"][weak] for p in per], "gold", cfg.smooth), "label": "RL from SFT"},
            {**curve([p["hybrid"] for p in per], "gold", cfg.smooth), "label": "DPO then RL"}]))
    parts.append(f"<h2>Claims</h2><pre>{html.escape(json.dumps(summary['claims'], indent=1))}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:6px 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}svg{margin:4px}pre{white-space:pre-wrap}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>overoptimisation</title><style>{style}</style>" \
           f"</head><body>{''.join(parts)}</body></html>"


def one_line(cfg: BenchConfig, summary: dict, seconds: float) -> dict:
    """The printed JSON: per setting and form the main keys (means, with std), the claims, the time."""
    def rounded(x):
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return round(x, 4) if isinstance(x, float) else x

    return rounded({"bench": "overoptimization", "seeds": cfg.seeds, "steps": cfg.steps, "seconds": seconds,
                    "main": summary["main"], "bon": summary["bon"], "kl_sweep": {s: {f: {n: {k: v[k] for k in ("gold_peak", "gold_final",
                                                                                         "kl_final")}
                                                                  for n, v in runs.items()}
                                                              for f, runs in sweep.items()}
                                                          for s, sweep in summary["kl_sweep"].items()},
                    "dpo": summary["dpo"], "hybrid": summary["hybrid"], "proxies": summary["proxies"],
                    "claims": summary["claims"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps per run (default 160; quick 6)")
    parser.add_argument("--settings", default=None, help="comma-separated subset of noise,bias")
    parser.add_argument("--proxy-data", choices=("policy", "lab"), default=None,
                        help="the proxies' training pairs: the SFT policy's samples labelled per setting (default), "
                             "or the lab's own pairs (off-policy)")
    parser.add_argument("--sft-steps", type=int, default=None,
                        help="SFT steps of the policy (default 150; more leaves less for RL to gain)")
    parser.add_argument("--work", default=None, help="folder of the runs, reused on a rerun (default "
                                                     "runs/overopt, or runs/overopt-quick)")
    parser.add_argument("--out", default=None, help="folder for results.json and report.html (default: --work)")
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes that exercises every part")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=2, help="units run at once, each in its own process "
                                                           "(1: all in this process)")
    parser.add_argument("--verbose", action="store_true", help="a line on stderr per finished unit")
    args = parser.parse_args()
    cfg = BenchConfig(**(QUICK if args.quick else {}))
    for name in ("seeds", "steps", "proxy_data", "sft_steps"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.settings:
        cfg.settings = tuple(s for s in args.settings.split(",") if s)
        if not cfg.settings or set(cfg.settings) - set(SETTINGS):
            parser.error(f"--settings takes some of {','.join(SETTINGS)}")
    set_threads(args.threads)
    work = Path(args.work or ("runs/overopt-quick" if args.quick else "runs/overopt"))
    out = Path(args.out) if args.out else work
    config_file = work / "bench-config.json"
    work.mkdir(parents=True, exist_ok=True)
    def same_units(a: dict, b: dict) -> bool:  # a unit depends on everything but the number of seeds
        return {k: v for k, v in a.items() if k != "seeds"} == {k: v for k, v in b.items() if k != "seeds"}

    if config_file.is_file() and not same_units(json.loads(config_file.read_text()),
                                                json.loads(json.dumps(dataclasses.asdict(cfg)))):
        parser.error(f"{work} holds runs of another configuration ({config_file}): give another --work")
    config_file.write_text(json.dumps(dataclasses.asdict(cfg)))

    def log(message: str) -> None:
        if args.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    runner = Runner(args.jobs, args.threads)
    try:
        seeds = run_all(cfg, work, runner, log)
    finally:
        runner.close()
    units = {f"unit_{k}": v for k, v in runner.totals().items()}
    seconds = round(time.perf_counter() - t0, 1)
    summary = summarise(cfg, seeds)
    from rewardgauge.io import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", {"config": dataclasses.asdict(cfg), "seconds": seconds, **units,
                                             "summary": summary, "seeds": seeds})
    write_text_atomic(out / "report.html", report_html(cfg, seeds, summary, seconds))
    print(json.dumps({**one_line(cfg, summary, seconds), **units}))


if __name__ == "__main__":
    main()
