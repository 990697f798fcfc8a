"""``rewardgauge sft``, ``rewardgauge rm train``, ``rewardgauge dpo`` and ``rewardgauge rl``."""

from __future__ import annotations

import argparse

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.monitor.commands import MonitoredRLConfig
from rewardgauge.train.config import DPOConfig
from rewardgauge.train.reward import RewardTrainConfig
from rewardgauge.train.rundir import held_outputs
from rewardgauge.train.sft import SFTConfig


def _last_step(metrics: dict) -> str:
    shown = " ".join(f"{k}={metrics[k]:.4g}" for k in ("loss", "accuracy", "eval_accuracy")
                     if isinstance(metrics.get(k), (int, float)))
    return f"; last step {shown}" if shown else ""


def _summary(result, out: str) -> str:
    rate = result.examples / result.seconds if result.seconds else 0.0
    return f"wrote {out}: {result.steps} steps, {rate:.1f} examples/s{_last_step(result.last_metrics)}"


def _rm_train(args: argparse.Namespace) -> int:
    from rewardgauge.train.reward import train_reward_model

    cfg = config_from_args(RewardTrainConfig, args)
    if cfg.members > 1:
        return _rm_train_ensemble(cfg)
    with held_outputs():
        result = train_reward_model(cfg)
    if result.model is not None and _is_main():
        print(_summary(result, cfg.out))
    return 0


def _rm_train_ensemble(cfg: RewardTrainConfig) -> int:
    from rewardgauge.train.ensemble import train_ensemble

    with held_outputs():
        run = train_ensemble(cfg)
    if run.spec is not None:
        for m in run.members:
            # Shared heads are one model trained once (one seed, one loss): a member has only its data.
            trained = "" if run.spec.form == "shared" else f"seed {m['seed']}, "
            print(f"member {m['name']}: {trained}{m['distinct_pairs']} distinct pairs, {m['steps']} steps, "
                  f"{m['seconds']:.1f} s{_last_step(m)}")
        print(f"wrote {run.out}: {run.spec.k}-member {run.spec.form} ensemble (default aggregator "
              f"{run.spec.aggregator}); load it as one reward model: rewardgauge rm eval --model {run.out} ...")
    return 0


def _sft(args: argparse.Namespace) -> int:
    from rewardgauge.train.sft import run_sft

    cfg = config_from_args(SFTConfig, args)
    with held_outputs():
        result = run_sft(cfg)
    if _is_main():
        print(_summary(result, cfg.out))
    return 0


def _dpo(args: argparse.Namespace) -> int:
    from rewardgauge.train.dpo import run_dpo

    cfg = config_from_args(DPOConfig, args)
    with held_outputs():
        result = run_dpo(cfg)
    if _is_main():
        print(_summary(result, cfg.out) + f"; load it as a reward model: rewardgauge rm eval --model {cfg.out} ...")
    return 0


def _rl(args: argparse.Namespace) -> int:
    from rewardgauge.monitor.commands import build_rl_monitor
    from rewardgauge.train.rl import build_reward, run_rl

    cfg = config_from_args(MonitoredRLConfig, args)
    callbacks, reward = [], None
    if cfg.monitor.enabled:  # the reward is built once, for the run and the monitor
        from accelerate import PartialState

        device = str(PartialState(cpu=cfg.cpu or cfg.device == "cpu").device)
        reward = build_reward(cfg, device)
        callbacks.append(build_rl_monitor(cfg, reward, device))
    with held_outputs():
        result = run_rl(cfg, callbacks, reward=reward)
    if _is_main():
        last = result.last_metrics
        shown = " ".join(f"{k}={last[k]:.4g}" for k in ("reward_mean", "gold_mean", "kl_k3", "response_length")
                         if last.get(k) is not None)
        rate = result.examples / result.seconds if result.seconds else 0.0
        print(f"wrote {cfg.out}: {result.steps} steps, {rate:.1f} samples/s; last step {shown}".rstrip())
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def register(sub: argparse._SubParsersAction) -> None:
    rm = group(sub, "rm", "reward models: train, evaluate, audit")
    p = rm.add_parser(
        "train", help="train a reward model on preference pairs",
        description="Train a reward model from any HF model folder or hub name (a causal LM, an encoder such "
                    "as MiniLM, or a reward model) on PreferencePair JSONL: AutoModelForSequenceClassification, "
                    "or the backbone with rewardgauge' head where transformers has no classifier class for "
                    "the architecture. Losses: bt, margin, soft "
                    "(vote fractions), multi (one output per aspect). Runs unchanged under torchrun / "
                    "accelerate launch. Writes the model (safetensors), rewardgauge.json, config.yaml, "
                    "metrics.jsonl and checkpoints/ to --out; --resume continues an interrupted run. "
                    "--members K > 1 trains an ensemble (forms: independent, shared heads, LoRA) on bootstrap "
                    "or disjoint subsets with one seed each, saved as one folder that loads as one reward "
                    "model (ensemble.json).")
    add_config_args(p, RewardTrainConfig)
    p.set_defaults(func=_rm_train)

    p = sub.add_parser(
        "sft", help="supervised fine-tuning on demonstrations",
        description="Fine-tune a causal LM on Demonstration JSONL (loss on response tokens only). Writes the "
                    "model and tokenizer (safetensors), config.yaml, metrics.jsonl and checkpoints/ to --out.")
    add_config_args(p, SFTConfig)
    p.set_defaults(func=_sft)

    p = sub.add_parser(
        "dpo", help="direct preference optimisation (DPO, IPO, conservative DPO)",
        description="Train a causal LM on PreferencePair JSONL against a frozen reference (default: its own "
                    "starting weights), whose log-probabilities are computed once before training. Losses: "
                    "sigmoid (DPO), ipo, conservative (label smoothing). Writes the policy (safetensors), "
                    "dpo.json, config.yaml, metrics.jsonl and checkpoints/ to --out; the folder loads as a "
                    "reward model (the implicit reward beta * log(pi / pi_ref)) wherever one is accepted. "
                    "Runs unchanged under torchrun.")
    add_config_args(p, DPOConfig)
    p.set_defaults(func=_dpo)

    p = sub.add_parser(
        "rl", help="optimise a policy against a reward: GRPO, Dr. GRPO, RLOO or PPO with KL control",
        description="Optimise a causal LM against any reward source (a reward-model, ensemble or DPO folder, "
                    "lab-gold, exec:TASKS.jsonl, or a weighted sum) on a prompt file, with KL to a frozen "
                    "reference (k1/k2/k3, in the loss or the reward, fixed or adaptive). Options are grouped "
                    "in sections: --policy.*, --generation.*, --kl.*, --reward.*, --value.* (PPO). Writes the "
                    "policy (safetensors), rl.json, config.yaml, metrics.jsonl (reward, each component, gold, "
                    "KL, entropy, length, clip fraction per step), samples.jsonl and checkpoints/ to --out; "
                    "--resume continues an interrupted run to the same metrics. Runs unchanged under torchrun. "
                    "--monitor.enabled runs the reward-model health monitor every step (--monitor.*: its "
                    "detectors, the on-policy evaluation on held-out prompts, each alarm's action: warn, "
                    "raise_kl, rollback, stop), writing monitor.jsonl and alarms.jsonl.")
    add_config_args(p, MonitoredRLConfig)
    p.set_defaults(func=_rl)
