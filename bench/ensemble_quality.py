"""Quality and cost of each reward-model ensemble form, trained on the same lab data with the same budget and
evaluated on the same held-out gold-labelled pairs.

Setting: the quickstart's (a tiny Llama SFT'd on lab demonstrations as the starting model, the soft loss on
annotator vote fractions, lr 3e-4, batch 32; members on bootstrap subsets), scaled to a shared 2-core CPU:
per seed, lab data with ``--pairs`` training pairs (quickstart 20,000) and 2,000 held-out pairs labelled by
the gold reward (as the quickstart), SFT on ``--demos`` demonstrations (10,000) for ``--sft-epochs`` (6),
then every form with K = ``--k`` members for ``--epochs`` passes over the pairs. The seed changes
everything: lab data, SFT, initialisation, bootstrap draws.

Per form and seed:
  cost_ratio                   scoring time of the ensemble / that of one member (a single reward model of the
                               same backbone: the independent ensemble's m0), the same responses (both sides
                               of held-out pairs) and batch size; the sides take turns in shuffled order,
                               median of ``--repeats``. LoRA also as ``cost_ratio_mixed`` (one mixed-adapter
                               batch instead of one pass per adapter).
  disagreement                 mean over held-out pairs of the std across members of their margins (members
                               normalised on the reference set, as ``score`` returns them)
  disagreement_vs_independent  that / the independent ensemble's, same seed
  relative_disagreement        disagreement / mean |mean member margin| (needs no other ensemble; what
                               ``rm eval`` warns on)
  members_mean_accuracy        held-out accuracy (gold labels; ties count half), mean over members
  aggregate_accuracy           of the min and of the mean of the normalised member rewards
  sign_flip_auroc              AUROC of P(sign flip) = Phi(-|mean margin| / std) as a predictor of an error of
                               the min / the mean aggregate
Across seeds each is given as mean, min and max. ``acceptance`` checks issue 18's bar on the means:
cost_ratio <= 1.5, disagreement_vs_independent >= 0.5, aggregate accuracy (min and mean) within 0.5 points
of the independent ensemble's, sign_flip_auroc (min aggregate) >= 0.8.

Forms: names from ``rewardgauge.rewards.ensemble.FORMS``, optionally with training options, e.g.
``blocks:member_noise=0.5,member_layers=2`` or ``lora:lr=0.001`` (any ``rm train`` config field; the whole
text is the form's name in the output), separated by spaces.

``--work DIR`` keeps everything, and a rerun reuses what is finished there (lab data, SFT, each ensemble;
an interrupted ensemble resumes from its checkpoints); without it, a temporary folder. ``--quick``: a
minutes-long smoke run at toy size (the figures then mean nothing).

    .venv/bin/python bench/ensemble_quality.py --work runs/ensemble_quality [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _turns import median_seconds_in_turns  # bench/ is sys.path[0] when a benchmark runs

DEFAULT_FORMS = "independent shared lora:lr=0.002 blocks"
QUICK = dict(pairs=300, demos=300, heldout=200, sft_epochs=1, epochs=1, k=3, seeds="0,1", repeats=3,
             cost_responses=64)


def log(message: str) -> None:
    print(f"[ensemble_quality {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_form(text: str) -> tuple[str, str, dict]:
    """'blocks:member_noise=0.5,member_layers=2' -> ('blocks:member_noise=0.5,member_layers=2', 'blocks', {...})."""
    from rewardgauge.rewards.ensemble import FORMS
    from rewardgauge.train.config import RewardTrainConfig

    form, _, options = text.partition(":")
    if form not in FORMS:
        raise SystemExit(f"unknown form {form!r} (known: {', '.join(FORMS)})")
    fields = {f.name for f in dataclasses.fields(RewardTrainConfig)}
    overrides = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"form {text!r}: {key!r} is not an rm train option")
        overrides[key] = yaml.safe_load(value)
    return text, form, overrides


def stage(folder: Path, run) -> Path:
    """Run ``run(folder)`` unless ``folder`` holds the marker of an earlier finished run."""
    if not (folder / ".done").exists():
        run(folder)
        (folder / ".done").write_text("")
    return folder


def prepare(root: Path, seed: int, args) -> tuple[Path, Path, Path]:
    """Lab data and the SFT starting model of one seed: (sft folder, training pairs, held-out pairs)."""
    from rewardgauge.lab.dataset import LabDataConfig, generate
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.train.config import SFTConfig
    from rewardgauge.train.sft import run_sft

    lab = stage(root / "lab", lambda d: generate(LabDataConfig(
        out=str(d), seed=seed, pairs=args.pairs, heldout_pairs=args.heldout, demos=args.demos, rl_prompts=0),
        progress=False))
    stage(root / "policy", lambda d: init_model([lab / "train.jsonl", lab / "sft.jsonl", lab / "heldout.jsonl"], d,
                                                preset="tiny", seed=seed))
    sft = stage(root / "sft", lambda d: run_sft(SFTConfig(
        model=str(root / "policy"), data=str(lab / "sft.jsonl"), out=str(d), seed=seed, epochs=args.sft_epochs,
        batch_size=32, lr=2e-3, save_every=200, resume=True, progress=False)))
    return sft, lab / "train.jsonl", lab / "heldout.jsonl"


def train_form(out: Path, form: str, overrides: dict, sft: Path, data: Path, seed: int, args) -> float:
    """Train one ensemble into ``out`` (skipped when ``ensemble.json`` is there); its training seconds."""
    from rewardgauge.train.config import RewardTrainConfig
    from rewardgauge.train.ensemble import train_ensemble

    if (out / "ensemble.json").exists():
        return json.loads((out / "train_seconds.json").read_text())
    cfg = RewardTrainConfig(**{
        "model": str(sft), "data": str(data), "out": str(out), "seed": seed, "members": args.k,
        "ensemble_form": form, "subset": "bootstrap", "loss": "soft", "lr": 3e-4, "batch_size": 32,
        "epochs": args.epochs, "save_every": 200, "resume": True, "progress": False, **overrides})
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # training's progress lines; stdout is the one JSON line
        train_ensemble(cfg)
    seconds = round(time.perf_counter() - start, 1)
    (out / "train_seconds.json").write_text(json.dumps(seconds))
    return seconds


def quality(folder: Path, heldout) -> dict:
    """Accuracy, disagreement and sign-flip AUROC of one ensemble on the held-out pairs."""
    from rewardgauge.rewards.aggregators import get_aggregator
    from rewardgauge.rewards.ensemble import EnsembleRewardModel
    from rewardgauge.rewards.evaluation import auroc, flip_probability, pair_accuracy, relative_disagreement
    from rewardgauge.rewards.pairs import score_pairs

    scores = score_pairs(EnsembleRewardModel.from_pretrained(folder, device="cpu"), heldout)
    chosen, rejected = scores.chosen.members, scores.rejected.members  # [K, N], normalised
    member_margins = chosen - rejected
    flip = flip_probability(member_margins)
    out = {"members_mean_accuracy": statistics.fmean(pair_accuracy(m) for m in member_margins),
           "disagreement": member_margins.std(dim=0, unbiased=False).mean().item(),
           "relative_disagreement": relative_disagreement(member_margins),
           "aggregate_accuracy": {}, "sign_flip_auroc": {}}
    for name in ("min", "mean"):
        aggregate = get_aggregator(name)
        margins = aggregate(chosen) - aggregate(rejected)
        out["aggregate_accuracy"][name] = pair_accuracy(margins)
        out["sign_flip_auroc"][name] = auroc(flip, margins <= 0)
    return out


def cost(folders: dict[str, Path], single: Path, heldout, args) -> dict[str, float]:
    """Scoring time of each ensemble over that of one member: the same responses and batch size, the sides
    taking turns in shuffled order (load on this shared machine falls on all alike); median of the repeats."""
    from rewardgauge.rewards.ensemble import EnsembleRewardModel
    from rewardgauge.rewards.hf import HFRewardModel

    pairs = heldout[: args.cost_responses // 2]
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p.chosen, p.rejected)]
    sides = {"single": HFRewardModel.from_pretrained(single, device="cpu", batch_size=args.batch_size)}
    for name, folder in folders.items():
        sides[name] = EnsembleRewardModel.from_pretrained(folder, device="cpu", batch_size=args.batch_size)
        if sides[name].form == "lora":
            sides[f"{name}@mixed"] = EnsembleRewardModel.from_pretrained(
                folder, device="cpu", batch_size=args.batch_size, lora_batching="mixed")
    median = median_seconds_in_turns({side: (lambda rm=rm: rm.score(prompts, responses))
                                      for side, rm in sides.items()}, args.repeats)
    return {side: median[side] / median["single"] for side in sides if side != "single"}


def run_seed(root: Path, seed: int, forms: list[tuple[str, str, dict]], args) -> dict[str, dict]:
    from rewardgauge.data.io import load_pairs
    from rewardgauge.rewards.ensemble import MEMBERS_DIR

    log(f"seed {seed}: lab data and SFT")
    sft, data, heldout_path = prepare(root, seed, args)
    heldout = load_pairs(heldout_path)
    folders, results = {}, {}
    for name, form, overrides in forms:
        folders[name] = root / "forms" / name.replace(":", "@")
        log(f"seed {seed}: {name}: training")
        seconds = train_form(folders[name], form, overrides, sft, data, seed, args)
        results[name] = {**quality(folders[name], heldout), "train_seconds": seconds}
        log(f"seed {seed}: {name}: {json.dumps(results[name])}")
    log(f"seed {seed}: scoring cost")
    ratios = cost(folders, folders["independent"] / MEMBERS_DIR / "m0", heldout, args)
    for name in folders:
        results[name]["cost_ratio"] = ratios[name]
        if f"{name}@mixed" in ratios:
            results[name]["cost_ratio_mixed"] = ratios[f"{name}@mixed"]
    reference = results["independent"]["disagreement"]
    for row in results.values():
        row["disagreement_vs_independent"] = row["disagreement"] / reference
    return results


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def summarise(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per form, each metric's mean, min and max across seeds (nested metrics keep their keys)."""
    rows = list(per_seed.values())
    out = {}
    for name in rows[0]:
        out[name] = {}
        for metric, value in rows[0][name].items():
            if isinstance(value, dict):
                out[name][metric] = {k: spread([r[name][metric][k] for r in rows]) for k in value}
            else:
                out[name][metric] = spread([r[name][metric] for r in rows])
    return out


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def acceptance(forms: dict[str, dict]) -> dict[str, dict]:
    """Issue 18's bar, on the means across seeds."""
    independent = forms["independent"]["aggregate_accuracy"]
    out = {}
    for name, row in forms.items():
        gaps = {k: row["aggregate_accuracy"][k]["mean"] - independent[k]["mean"] for k in ("min", "mean")}
        checks = {"cost_ratio<=1.5": row["cost_ratio"]["mean"] <= 1.5,
                  "disagreement_vs_independent>=0.5": row["disagreement_vs_independent"]["mean"] >= 0.5,
                  "aggregate_accuracy_within_0.5_points": all(g >= -0.005 for g in gaps.values()),
                  "sign_flip_auroc>=0.8": row["sign_flip_auroc"]["min"]["mean"] >= 0.8}
        out[name] = {**checks, "aggregate_accuracy_gap_points": {k: round(100 * g, 2) for k, g in gaps.items()},
                     "passed": all(checks.values())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forms", default=DEFAULT_FORMS, help="space-separated forms, each with options after ':' "
                        "(comma-separated); the independent form is always measured (the reference)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=5, help="members")
    parser.add_argument("--pairs", type=int, default=8000, help="lab training pairs per seed (quickstart: 20000)")
    parser.add_argument("--heldout", type=int, default=2000, help="held-out gold-labelled pairs")
    parser.add_argument("--demos", type=int, default=4000, help="SFT demonstrations (quickstart: 10000)")
    parser.add_argument("--sft-epochs", type=int, default=4, help="quickstart: 6")
    parser.add_argument("--epochs", type=int, default=2, help="reward-model passes over the pairs")
    parser.add_argument("--cost-responses", type=int, default=512, help="responses scored per timed call")
    parser.add_argument("--batch-size", type=int, default=64, help="scoring batch size")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    parser.add_argument("--work", default=None, help="keep and reuse everything here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: a smoke run of a few minutes")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    forms = [parse_form(f) for f in args.forms.split()]
    if not forms or forms[0][0] != "independent":
        forms = [parse_form("independent")] + [f for f in forms if f[0] != "independent"]

    import torch

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_ensemble_quality_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        per_seed = {seed: run_seed(work / f"seed{seed}", seed, forms, args) for seed in seeds}
    summary = summarise(per_seed)
    print(json.dumps({
        "bench": "ensemble_quality", "quick": args.quick, "seeds": seeds, "k": args.k,
        "setting": {"data": "lab", "pairs": args.pairs, "heldout_pairs": args.heldout, "demos": args.demos,
                    "sft_epochs": args.sft_epochs, "epochs": args.epochs, "loss": "soft", "lr": 3e-4,
                    "batch_size": 32, "subset": "bootstrap", "preset": "tiny", "cost_responses": args.cost_responses,
                    "scoring_batch_size": args.batch_size, "threads": args.threads, "repeats": args.repeats},
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": round(load_before, 1),
                    "load_average_at_end": round(os.getloadavg()[0], 1)},
        "forms": summary, "acceptance": acceptance(summary),
        "per_seed": {str(s): _rounded(rows) for s, rows in per_seed.items()},
    }))


if __name__ == "__main__":
    main()
