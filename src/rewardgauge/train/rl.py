"""``rewardgauge rl``: GRPO, Dr. GRPO, RLOO and PPO against any reward source, with KL control.

One step, top to bottom (``run_rl``):

    1. generation    B prompts (the same after a resume), G responses each, from the live policy
    2. scoring       the reward (any RewardModel: a reward model, an ensemble, a DPO policy, execution, a sum),
                     every component kept; the gold reward of the same samples where there is one (lab)
    3. reference     log-probabilities under the reference (KL) and, where needed, the sampling policy (old)
                     and the value model (PPO), each in one no-grad forward, prompts shared by their group
    4. advantage     grpo / dr_grpo: group-normalised; rloo: leave-one-out; ppo: GAE on per-token rewards
    5. loss          PPO's clipped surrogate (optionally clip-higher), + β·KL in the loss, + the value loss
                     (PPO), aggregated over tokens; one optimizer step per minibatch and epoch
    6. run directory metrics.jsonl (one line per step), samples.jsonl (capped), checkpoints, callbacks

Under ``torchrun`` each process takes its share of the step's prompts; gradients are averaged by DDP and
token-mean losses are normalised by the token count of all processes, so the update is the full batch's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardgauge import losses
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_prompts, ensure_pad_token
from rewardgauge.modeling.generation import SamplingParams, TorchBackend, eos_token_ids_of
from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer
from rewardgauge.modeling.logprobs import response_logprobs, response_position_logits
from rewardgauge.modeling.value import load_value_model
from rewardgauge.rewards.base import RewardModel
from rewardgauge.rewards.combine import WeightedSumReward
from rewardgauge.rewards.loading import load_reward_model
from rewardgauge.rewards.process import ProcessRewardModel
from rewardgauge.train.config import RLConfig
from rewardgauge.train.loop import LoopResult, lr_lambda, make_accelerator, make_optimizer, save_model
from rewardgauge.train.rollout import (
    RLPrompt,
    decode_responses,
    dense_step_rewards,
    load_rl_prompts,
    prompts_for_step,
    sample_rows,
    score_components,
)
from rewardgauge.train.rundir import SAMPLES, Callback, Control, RunDir, StepState, notify

RL_FILE = "rl.json"


def run_rl(cfg: RLConfig, callbacks: Sequence[Callback] = ()) -> LoopResult:
    """Optimise ``cfg.policy.model`` against ``cfg.reward``; the policy is saved to ``cfg.out``. Every input
    is checked before ``cfg.out`` is created or changed."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    acc = make_accelerator(cfg)
    world, rank = acc.num_processes, acc.process_index
    run = RunDir(cfg.out, cfg, acc, inputs={"prompts": cfg.prompts, "policy.model": cfg.policy.model,
                                            "policy.ref_model": cfg.policy.ref_model})
    if cfg.prompts_per_step % (world * cfg.minibatches):
        raise InputError(f"prompts_per_step ({cfg.prompts_per_step}) must divide into {world} process(es) x "
                         f"{cfg.minibatches} minibatch(es)", field="prompts_per_step")
    per_rank = cfg.prompts_per_step // world
    G = cfg.generation.group_size

    # Inputs, all checked before the run directory is written.
    prompts = load_rl_prompts(cfg.prompts)
    tokenizer = load_tokenizer(cfg.policy.model, field="policy.model")
    pad_id = ensure_pad_token(tokenizer)
    eos_ids = eos_token_ids_of(tokenizer)
    prompt_ids = encode_prompts(tokenizer, [p.prompt for p in prompts], cfg.policy.max_prompt_length)
    reward = build_reward(cfg, acc.device)
    check_reward_reads_policy(reward, tokenizer, cfg.reward.models)
    if cfg.reward.dense and not isinstance(reward, ProcessRewardModel):
        raise InputError("reward.dense needs one process reward model (a folder written by `prm train`) as the "
                         "reward", field="reward.dense")
    gold = build_gold(cfg.reward.gold, prompts, acc.device)
    backend_check(cfg.generation.backend)
    set_seed(cfg.seed)
    policy = load_causal_lm(cfg.policy.model, field="policy.model")
    reference = None
    if needs_reference(cfg):
        reference = load_causal_lm(cfg.policy.ref_model or cfg.policy.model, field="policy.ref_model")
        reference.to(acc.device).eval().requires_grad_(False)
    value_model = load_value_model(cfg.value.model or cfg.policy.model) if cfg.algo == "ppo" else None
    run.begin()

    # Optimizer, processes, resume.
    updates = cfg.steps * cfg.epochs_per_step * cfg.minibatches
    trained = [policy] + ([value_model] if value_model is not None else [])
    optimizer = make_optimizer(torch.nn.ModuleList(trained), cfg.policy.lr, cfg.policy.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.policy.schedule, int(cfg.policy.warmup_ratio * updates), updates))
    if value_model is not None:
        policy, value_model, optimizer = acc.prepare(policy, value_model, optimizer)
    else:
        policy, optimizer = acc.prepare(policy, optimizer)
    acc.register_for_checkpointing(scheduler)
    params = [p for m in (policy, value_model) if m is not None for p in m.parameters() if p.requires_grad]
    kl_ctl = losses.AdaptiveKLController(cfg.kl.coef, cfg.kl.target, cfg.kl.horizon)
    step, state = run.checkpoints.restore()
    if "kl" in state:
        kl_ctl.load_state_dict(state["kl"])
    backend = TorchBackend(acc.unwrap_model(policy), eos_ids, pad_id)
    sampling = SamplingParams(cfg.generation.max_new_tokens, cfg.generation.temperature, cfg.generation.top_p,
                              cfg.generation.top_k)
    samples = run.log(SAMPLES)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"rl {cfg.algo}",
               disable=not (cfg.progress and acc.is_main_process), dynamic_ncols=True)
    start, first_step, stopped = time.perf_counter(), step, False
    temperature = cfg.generation.temperature  # log-probabilities are those of the sampling distribution
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            # 1. generation
            chosen = prompts_for_step(len(prompts), step, cfg.prompts_per_step, cfg.seed)[rank * per_rank:
                                                                                             (rank + 1) * per_rank]
            batch = [prompts[i] for i in chosen]
            gen = backend.generate([prompt_ids[i] for i in chosen], sampling, G, seed=step_seed(cfg.seed, step, rank))
            texts = decode_responses(tokenizer, gen)
            t1 = time.perf_counter()

            # 2. scoring
            flat_prompts = [p.prompt for p in batch for _ in range(G)]
            meta = [{**p.meta, "group_id": int(i)} for i, p in zip(chosen, batch) for _ in range(G)]
            scores = reward.score(flat_prompts, texts, meta=meta).to(acc.device)
            scores_gold = gold.score(flat_prompts, texts, meta=meta).to(acc.device) if gold is not None else None
            t2 = time.perf_counter()

            # 3. reference, old policy and values: one no-grad pass each, in micro-batches of similar length
            fmask = gen.response_mask.float()
            chunks = micro_batches(gen, range(gen.response_ids.shape[0]), cfg)
            with torch.no_grad():
                ref_lp = old_lp = old_values = None
                if reference is not None:
                    ref_lp = per_token(gen, chunks, lambda *x: response_logprobs(
                        reference, *x, layout=cfg.layout, temperature=temperature).logprobs)
                if needs_old_logprobs(cfg):
                    old_lp = per_token(gen, chunks, lambda *x: response_logprobs(
                        policy, *x, layout=cfg.layout, temperature=temperature).logprobs)
                if value_model is not None:
                    old_values = per_token(gen, chunks, lambda *x: response_position_logits(
                        value_model, *x, layout=cfg.layout).squeeze(-1)) * fmask

            # 4. advantage (dense: a process reward model's score of every step, at the step's last token)
            beta = kl_ctl.coef
            rewards = scores.reward.float()
            steps = dense_step_rewards(scores, tokenizer, gen, texts, reward.info.separator) if cfg.reward.dense \
                else None
            kl_in_reward = None
            if ref_lp is not None and cfg.kl.placement == "reward" and beta > 0:
                kl_in_reward = losses.kl_estimate(old_lp, ref_lp, cfg.kl.estimator) * fmask
            returns = None
            if cfg.algo == "ppo":
                paid = rewards if steps is None else losses.step_rewards_per_token(*steps, fmask.shape[1])
                token_rewards = losses.kl_penalised_rewards(
                    paid, kl_in_reward if kl_in_reward is not None else torch.zeros_like(fmask), fmask, beta)
                advantages, returns = losses.gae_advantages(token_rewards, old_values, fmask, cfg.value.gamma,
                                                            cfg.value.lam)
                advantages = losses.whiten(advantages, fmask)
            else:
                seq_rewards = rewards if kl_in_reward is None else rewards - beta * kl_in_reward.sum(-1)
                if cfg.algo == "rloo":
                    advantages = losses.rloo_advantages(seq_rewards, G)
                elif steps is not None:
                    advantages = losses.process_supervision_advantages(*steps, G, fmask.shape[1],
                                                                       scale=cfg.algo == "grpo") * fmask
                else:
                    advantages = losses.grpo_advantages(seq_rewards, G, scale=cfg.algo == "grpo")

            # 5. loss and updates
            update = policy_update(cfg, acc, policy, value_model, optimizer, scheduler, params, gen, advantages,
                                   old_lp, ref_lp, old_values, returns, beta)
            sampled_lp = old_lp if old_lp is not None else update.pop("_sampled_logprobs")
            update.pop("_sampled_logprobs", None)
            t3 = time.perf_counter()

            # 6. run directory: metrics, samples, checkpoint, callbacks
            values = rollout_metrics(scores, scores_gold, rewards, gen, sampled_lp, ref_lp, fmask)
            if scores.steps is not None:
                values["steps_per_response"] = torch.tensor(float(np.mean([len(s) for s in scores.steps])))
            values.update(update)
            values["kl_coef"] = torch.tensor(beta)
            if ref_lp is not None:
                kl_ctl.update(float(acc.reduce(values[f"kl_{cfg.kl.estimator}"].to(acc.device), "mean")))
            step += 1
            info = {"step": step, "lr": scheduler.get_last_lr()[0], "time_generate": round(t1 - t0, 4),
                    "time_reward": round(t2 - t1, 4), "time_update": round(t3 - t2, 4),
                    "time": round(time.perf_counter() - start, 4)}
            run.metrics.add(info, values)
            row = run.metrics.flush()
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.3g}" for k in ("reward_mean", "gold_mean", f"kl_{cfg.kl.estimator}")
                             if row.get(k) is not None}, refresh=False)
            limit = samples_limit(cfg, step)
            if limit and acc.is_main_process:
                columns = {"reward": rewards, "advantage": advantages if advantages.dim() == 1 else
                           (advantages * fmask).sum(-1) / fmask.sum(-1).clamp_min(1), "length": fmask.sum(-1),
                           **{f"reward/{k}": v for k, v in score_components(scores).items()}}
                if scores_gold is not None:
                    columns["gold"] = scores_gold.reward
                samples.append(sample_rows(step, [p.prompt for p in batch], texts, G, columns, limit))
            control = notify(callbacks, StepState(step=step, total_steps=cfg.steps, epoch=0, metrics=row,
                                                  model=policy, accelerator=acc)) if callbacks else Control()
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps or control.save_now or control.stop:
                run.checkpoints.save(step, {"kl": kl_ctl.state_dict()})
            if control.stop:
                stopped = True
                break
    except BaseException:
        bar.close()
        run.end(flush=False)
        raise
    run.end()
    bar.close()
    model = acc.unwrap_model(policy)
    if acc.is_main_process:
        save_model(model, tokenizer, cfg.out, extra={RL_FILE: {"algo": cfg.algo, "steps": step,
                                                                "reward": list(cfg.reward.models)}})
    acc.wait_for_everyone()
    return LoopResult(model=model, steps=step, examples=(step - first_step) * cfg.prompts_per_step * G,
                      seconds=time.perf_counter() - start if step > first_step else 0.0,
                      last_metrics=run.metrics.last, stopped=stopped)


def policy_update(cfg: RLConfig, acc, policy, value_model, optimizer, scheduler, params, gen, advantages,
                  old_lp, ref_lp, old_values, returns, beta: float) -> dict[str, torch.Tensor]:
    """``epochs_per_step`` passes over the rollouts, each split into ``minibatches`` optimizer steps (whole
    groups per minibatch), each of those computed in micro-batches of similar response length whose gradients
    add up to the minibatch's (less padding; the loss is the same). Returns the step's metrics (means over the
    optimizer steps). When there is no old-policy forward (one on-policy update), the first pass's
    log-probabilities are returned too, under ``_sampled_logprobs``: they are the sampling policy's."""
    G = gen.group_size
    rows_per_mb = gen.prompt_ids.shape[0] // cfg.minibatches * G
    mode, temperature = cfg.aggregation, cfg.generation.temperature
    fmask_all = gen.response_mask.float()
    sampled = torch.zeros_like(fmask_all) if old_lp is None else None
    totals: dict[str, torch.Tensor] = {}
    updates = 0
    for _ in range(cfg.epochs_per_step):
        for mb in range(cfg.minibatches):
            start = mb * rows_per_mb
            chunks = micro_batches(gen, range(start, start + rows_per_mb), cfg)
            # Every part of the minibatch is normalised by the whole's size (over all processes too).
            tokens = fmask_all[start:start + rows_per_mb].sum()
            if acc.num_processes > 1:
                tokens = acc.reduce(tokens, "sum") / acc.num_processes
            normaliser = (tokens if mode == "token-mean"
                          else cfg.generation.max_new_tokens if mode == "seq-mean-token-sum-norm" else None)
            sums: dict[str, torch.Tensor] = {}
            for i, rows in enumerate(chunks):
                p_ids, p_mask, r_ids, r_mask, index = chunk_inputs(gen, rows)
                width = r_ids.shape[1]
                fmask = r_mask.float()
                with _no_sync(acc, (policy, value_model), i < len(chunks) - 1):
                    out = response_logprobs(policy, p_ids, p_mask, r_ids, r_mask, index,
                                            layout=cfg.layout, temperature=temperature,
                                            with_entropy=True)
                    logp = out.logprobs
                    if sampled is not None and updates == 0:
                        sampled[rows, :width] = logp.detach()
                    old = old_lp[rows, :width] if old_lp is not None else logp.detach()
                    adv = advantages[rows] if advantages.dim() == 1 else advantages[rows, :width]
                    parts = {"policy_loss": losses.aggregate_token_loss(
                        losses.ppo_clip_per_token(logp, old, adv, cfg.clip_low, cfg.clip_high), fmask, mode,
                        normaliser, rows_per_mb)}
                    loss = parts["policy_loss"]
                    if ref_lp is not None and cfg.kl.placement == "loss" and beta > 0:
                        parts["kl_loss"] = losses.aggregate_token_loss(
                            losses.kl_estimate(logp, ref_lp[rows, :width], cfg.kl.estimator), fmask, mode,
                            normaliser, rows_per_mb)
                        loss = loss + beta * parts["kl_loss"]
                    if value_model is not None:
                        values = response_position_logits(value_model, p_ids, p_mask, r_ids, r_mask, index,
                                                          layout=cfg.layout).squeeze(-1)
                        parts["value_loss"] = losses.clipped_value_loss(
                            values, old_values[rows, :width], returns[rows, :width], fmask,
                            cfg.value.clip) * fmask.sum() / fmask_all[start:start + rows_per_mb].sum()
                        loss = loss + cfg.value.coef * parts["value_loss"]
                    acc.backward(loss)
                parts["loss"] = loss
                n_tokens = fmask.sum()
                parts["entropy"] = (out.entropy * fmask).sum() / n_tokens.clamp_min(1) * n_tokens
                parts["clip_fraction"] = losses.clip_fraction(logp, old, adv, fmask, cfg.clip_low,
                                                              cfg.clip_high) * n_tokens
                parts["_tokens"] = n_tokens
                for k, v in parts.items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach()
            local_tokens = sums.pop("_tokens").clamp_min(1)
            sums["entropy"] = sums["entropy"] / local_tokens
            sums["clip_fraction"] = sums["clip_fraction"] / local_tokens
            if cfg.policy.max_grad_norm:
                sums["grad_norm"] = acc.clip_grad_norm_(params, cfg.policy.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            for k, v in sums.items():
                totals[k] = totals[k] + v if k in totals else v
            updates += 1
    out_metrics = {k: v / updates for k, v in totals.items()}
    if sampled is not None:
        out_metrics["_sampled_logprobs"] = sampled
    return out_metrics


def micro_batches(gen, rows: Sequence[int], cfg: RLConfig) -> list[list[int]]:
    """The rows' micro-batches. Packed: whole groups in order up to ``micro_batch_tokens`` tokens (prompt
    and responses; padding costs nothing there, so only size matters). Otherwise: similar lengths together
    (``length_chunks``), which cuts the padding of the padded layouts."""
    lengths = gen.response_lengths.tolist()
    if cfg.layout != "packed":
        rows = list(rows)
        return [[rows[i] for i in c] for c in length_chunks([lengths[r] for r in rows], cfg.micro_batch_tokens)]
    prompt_lengths = gen.prompt_mask.sum(-1).tolist()
    chunks: list[list[int]] = []
    current: list[int] = []
    size, prompt_in = 0, None
    for row in rows:
        prompt = row // gen.group_size
        cost = lengths[row] + (prompt_lengths[prompt] if prompt != prompt_in else 0)
        if current and size + cost > cfg.micro_batch_tokens:
            chunks.append(current)
            current, size = [], 0
            cost = lengths[row] + prompt_lengths[prompt]
        current.append(row)
        size, prompt_in = size + cost, prompt
    if current:
        chunks.append(current)
    return chunks


def length_chunks(lengths: Sequence[int], max_tokens: int, overhead: int = 48) -> list[list[int]]:
    """Row indices in micro-batches of similar length: sorted by length and cut where the padding a longer
    micro-batch would add costs more than one more forward (``overhead`` tokens), with at most ``max_tokens``
    padded tokens in each. Dynamic programming over the sorted rows, minimising Σ rows·max_length + overhead."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [max(1, lengths[i]) for i in order]
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        width = sorted_lengths[j - 1]
        for i in range(j - 1, -1, -1):
            size = (j - i) * width
            if size > max_tokens and i < j - 1:
                break
            cost = best[i] + size + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    chunks, j = [], n
    while j > 0:
        chunks.append(order[cut[j]:j])
        j = cut[j]
    return chunks[::-1]


def chunk_inputs(gen, rows: Sequence[int]):
    """The prompts, responses (cut to the longest of them) and prompt index of a micro-batch of rows."""
    rows_t = torch.as_tensor(rows, device=gen.response_ids.device)
    prompts, index = torch.unique(rows_t // gen.group_size, return_inverse=True)
    p_mask = gen.prompt_mask[prompts]
    first = int((p_mask.sum(0) > 0).nonzero()[0]) if p_mask.numel() else 0  # left padding no prompt here needs
    r_mask = gen.response_mask[rows_t]
    width = max(1, int(r_mask.sum(-1).max()))
    return gen.prompt_ids[prompts, first:], p_mask[:, first:], gen.response_ids[rows_t, :width], r_mask[:, :width], index


def per_token(gen, chunks: Sequence[Sequence[int]], fn) -> torch.Tensor:
    """[N, R] of ``fn(prompt_ids, prompt_mask, response_ids, response_mask, index)`` over the micro-batches."""
    out = torch.zeros(gen.response_ids.shape, device=gen.response_ids.device)
    for rows in chunks:
        values = fn(*chunk_inputs(gen, rows))
        out[torch.as_tensor(rows, device=out.device), :values.shape[1]] = values.float()
    return out


def _no_sync(acc, models, skip_sync: bool):
    """Gradients of all but a minibatch's last micro-batch stay local (DDP all-reduces on the last)."""
    stack = contextlib.ExitStack()
    if skip_sync:
        for model in models:
            if model is not None:
                stack.enter_context(acc.no_sync(model))
    return stack


def rollout_metrics(scores, scores_gold, rewards: torch.Tensor, gen, sampled_lp: torch.Tensor,
                    ref_lp: torch.Tensor | None, fmask: torch.Tensor) -> dict[str, torch.Tensor]:
    """This step's rollouts in numbers: reward mean / std and every component, gold, KL (each estimator,
    summed over a response's tokens, mean over responses), response length and how many ended with EOS."""
    values = {"reward_mean": rewards.mean(), "reward_std": rewards.std() if len(rewards) > 1 else torch.zeros(())}
    values.update({f"reward/{k}": v.float().mean() for k, v in score_components(scores).items()})
    if scores_gold is not None:
        values["gold_mean"] = scores_gold.reward.float().mean()
        values["gold_std"] = scores_gold.reward.float().std() if len(rewards) > 1 else torch.zeros(())
        values.update({f"gold/{k}": v.float().mean() for k, v in (scores_gold.aspects or {}).items()})
    if ref_lp is not None:
        for name in losses.KL_ESTIMATORS:
            values[f"kl_{name}"] = (losses.kl_estimate(sampled_lp, ref_lp, name) * fmask).sum(-1).mean()
    values["response_length"] = fmask.sum(-1).mean()
    values["eos_fraction"] = gen.finished.float().mean()
    return values


def needs_reference(cfg: RLConfig) -> bool:
    return cfg.kl.coef > 0 or cfg.kl.target is not None or cfg.kl.measure


def needs_old_logprobs(cfg: RLConfig) -> bool:
    """A separate forward of the sampling policy is needed unless there is exactly one on-policy update
    (then the update's own log-probabilities, detached, are the sampling policy's, as in TRL)."""
    return (cfg.epochs_per_step > 1 or cfg.minibatches > 1 or cfg.algo == "ppo"
            or (cfg.kl.placement == "reward" and (cfg.kl.coef > 0 or cfg.kl.target is not None)))


def step_seed(seed: int, step: int, rank: int) -> int:
    """Sampling seed of one process at one step: depends on nothing else, so a resumed run samples alike."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def samples_limit(cfg: RLConfig, step: int) -> int:
    """How many rollouts step ``step`` (1-based) writes to samples.jsonl: ``samples_per_step`` every
    ``samples_every`` steps, until ``samples_max`` lines are written."""
    if (step - 1) % cfg.samples_every:
        return 0
    written = ((step - 1) // cfg.samples_every) * cfg.samples_per_step
    return max(0, min(cfg.samples_per_step, cfg.samples_max - written))


def build_reward(cfg: RLConfig, device) -> RewardModel:
    """The reward of ``cfg.reward``: one source, or a weighted sum of several (each kept as a component)."""
    specs = cfg.reward.models
    ensemble_options = {k: v for k, v in (("aggregator", cfg.reward.aggregator), ("lam", cfg.reward.lam),
                                          ("q", cfg.reward.quantile)) if v is not None}
    is_ensemble = [(Path(s) / "ensemble.json").is_file() for s in specs]
    if ensemble_options and not any(is_ensemble):
        raise InputError("reward.aggregator, reward.lam and reward.quantile apply to ensemble folders only",
                         field="reward.aggregator")
    loaded = []
    for spec, ensemble in zip(specs, is_ensemble):
        path_like = Path(spec).exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1
        served = spec.startswith(("http://", "https://"))  # rewardgauge serve (replicas: space-separated)
        if not (served or spec in ("lab-gold", "gold") or spec.startswith("exec:") or Path(spec).is_dir()
                or not path_like):
            raise InputError("reward source not found: a reward-model, ensemble or DPO folder, lab-gold, "
                             "exec:TASKS.jsonl, or a reward server's http:// URL", path=spec, field="reward.models")
        loaded.append(load_reward_model(spec, device=str(device), batch_size=cfg.reward.batch_size,
                                        **(ensemble_options if ensemble else {})))
    if len(loaded) == 1 and not cfg.reward.weights:
        return loaded[0]
    weights = cfg.reward.weights or [1.0] * len(loaded)
    names = _component_names(specs)
    return WeightedSumReward(list(zip(names, loaded, weights)))


def _component_names(specs: Sequence[str]) -> list[str]:
    names = []
    for spec in specs:
        name = ("exec" if spec.startswith("exec:") else "remote" if spec.startswith(("http://", "https://"))
                else Path(spec).name or spec)
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names


def build_gold(spec: str, prompts: Sequence[RLPrompt], device) -> RewardModel | None:
    """The reward logged beside the optimised one: ``auto`` is the lab's gold reward for lab prompts."""
    if spec == "none":
        return None
    if spec == "auto":
        if not all(str(p.meta.get("id", "")).startswith("lab-") for p in prompts):
            return None
        spec = "lab-gold"
    return load_reward_model(spec, device=str(device))


def check_reward_reads_policy(reward: RewardModel, tokenizer, specs: Sequence[str]) -> None:
    """A reward model with a closed vocabulary (word-level, WordPiece) must be able to read the words the
    policy can write: if more than 5 % of the policy's tokens are unknown to it, the reward would score
    <unk>s, so stop before training."""
    components = [m for _, m, _ in reward.components] if isinstance(reward, WeightedSumReward) else [reward]
    vocab = [t for t, i in sorted(tokenizer.get_vocab().items(), key=lambda x: x[1])
             if i not in set(tokenizer.all_special_ids)]
    sample = vocab[:: max(1, len(vocab) // 2000)]
    for spec, model in zip(specs, components):
        rm_tokenizer = getattr(model, "tokenizer", None)
        unk = getattr(rm_tokenizer, "unk_token_id", None)
        if rm_tokenizer is None or unk is None or not sample:
            continue
        texts = tokenizer.convert_tokens_to_string
        ids = rm_tokenizer([texts([t]) for t in sample], add_special_tokens=False)["input_ids"]
        unknown = [t for t, x in zip(sample, ids) if unk in x]
        if len(unknown) > 0.05 * len(sample):
            raise InputError(f"the reward model's tokenizer cannot read {len(unknown)} of {len(sample)} policy "
                             f"tokens checked (e.g. {unknown[0]!r}): it would score unknown tokens; use a reward "
                             "model trained with the policy's tokenizer", path=spec, field="reward.models")


def backend_check(name: str) -> None:
    if name == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise InputError("generation.backend vllm needs the vllm package (GPU only): pip install vllm",
                             field="generation.backend")
        raise InputError("generation.backend vllm is not implemented yet (the interface is "
                         "rewardgauge.modeling.generation.GenerationBackend); use torch", field="generation.backend")
