"""rewardgauge inside TRL's GRPO and RLOO trainers: a reward model (or ensemble) as ``reward_funcs``, and the
monitor as a ``TrainerCallback``.

    recorder = RolloutRecorder()
    reward = RewardFunction(load_reward_model("runs/rm_ensemble"), recorder=recorder)
    monitor = build_monitor(MonitorConfig(...), reward.rm, ENGLISH)
    callback = MonitorCallback(monitor, recorder)
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], args=GRPOConfig(...), train_dataset=...,
                          callbacks=[callback])
    callback.attach(trainer)       # optional: lets raise_kl change the trainer's beta
    trainer.train()

``RewardFunction`` scores the completions through the reward model and logs, through TRL's ``log_metric``,
the mean of every ensemble member, aspect and the uncertainty (``<name>/member_0``, ``<name>/accuracy``...),
and per completion, through ``log_extra``, the same values in TRL's completions table. It records what it
scored for the callback, which runs the monitor after each optimizer step on the samples scored since the last
one and carries out its alarms: ``warn`` is logged; ``raise_kl`` multiplies the attached trainer's ``beta``
(a trainer built with ``beta=0`` has no reference model, so the alarm is only logged there); ``stop`` and
``rollback`` save a checkpoint and end training (TRL cannot restore a checkpoint mid-run: a ``rollback``
alarm names the healthy step, whose checkpoint ``resume_from_checkpoint`` continues from). Alarms go to
``OUTPUT_DIR/alarms.jsonl`` and the console, the monitor's metrics to ``OUTPUT_DIR/monitor.jsonl``.

Under several processes each process scores its own share of completions; the monitor runs on process 0 on
its share, and its decision (stop or not, the new beta) is sent to every process, so they stay in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from rewardgauge.data.records import Prompt
from rewardgauge.io import append_jsonl
from rewardgauge.monitor.alarms import AlarmSink
from rewardgauge.monitor.monitor import Monitor, from_main_process
from rewardgauge.monitor.rollouts import Rollouts
from rewardgauge.rewards.base import RewardModel, Scores


def _text(completion: Any) -> str:
    """A completion in TRL's standard (text) or conversational (list of messages) form, as text."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


def _json_safe(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


class RolloutRecorder:
    """What the reward function scored since the callback last took it."""

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []
        self.responses: list[str] = []
        self.scores: list[Scores] = []
        self.lengths: list[int] = []

    def record(self, prompts: Sequence[Prompt], responses: Sequence[str], scores: Scores,
               lengths: Sequence[int]) -> None:
        self.prompts.extend(prompts)
        self.responses.extend(responses)
        self.scores.append(scores)
        self.lengths.extend(lengths)

    def take(self) -> Rollouts | None:
        if not self.responses:
            return None
        scores = self.scores[0] if len(self.scores) == 1 else Scores.cat(self.scores)
        rollouts = Rollouts(self.prompts, self.responses, scores.reward, scores=scores, lengths=self.lengths)
        self.__init__()
        return rollouts


class RewardFunction:
    """A rewardgauge RewardModel as a TRL reward function (its name is what TRL logs it under)."""

    def __init__(self, rm: RewardModel, name: str | None = None, recorder: RolloutRecorder | None = None,
                 log_components: bool = True):
        self.rm, self.recorder, self.log_components = rm, recorder, log_components
        self.__name__ = name or getattr(rm, "name", None) or "rewardgauge"

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None, log_metric=None,
                 log_extra=None, trainer_state=None, **columns: Any) -> list[float]:
        responses = [_text(c) for c in completions]
        meta = [{k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == len(prompts)
                 and _json_safe(v[i])} for i in range(len(prompts))]
        scores = self.rm.score(list(prompts), responses, meta=meta)
        if self.log_components:
            for part, values in components(scores).items():
                values = values.float().cpu()
                if log_metric is not None:
                    log_metric(f"{self.__name__}/{part}", float(values.mean()))
                if log_extra is not None:
                    log_extra(f"{self.__name__}/{part}", values.tolist())
        if self.recorder is not None:
            lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else \
                [len(r.split()) for r in responses]
            self.recorder.record(list(prompts), responses, scores, lengths)
        return scores.reward.float().cpu().tolist()


def components(scores: Scores) -> dict[str, torch.Tensor]:
    """Every part of a reward beside the aggregate: ``member_k``, each aspect, ``uncertainty``."""
    parts: dict[str, torch.Tensor] = {}
    if scores.members is not None:
        parts.update({f"member_{k}": row for k, row in enumerate(scores.members)})
    parts.update(scores.aspects or {})
    if scores.uncertainty is not None:
        parts["uncertainty"] = scores.uncertainty
    return parts


class MonitorCallback(TrainerCallback):
    """Runs a Monitor after each optimizer step of a TRL trainer and carries out its alarms (module docstring)."""

    def __init__(self, monitor: Monitor, recorder: RolloutRecorder, kl_raise_factor: float = 2.0,
                 log_alarms: bool = True):
        self.monitor, self.recorder, self.kl_raise_factor = monitor, recorder, kl_raise_factor
        self.trainer = None
        self.logs: dict[str, float] = {}
        self.log_alarms = log_alarms
        self.out: Path | None = None

    def attach(self, trainer) -> MonitorCallback:
        self.trainer = trainer
        return self

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.out = Path(args.output_dir)
            self.out.mkdir(parents=True, exist_ok=True)
            if self.log_alarms and self.monitor.sink.write is None:
                self.monitor.sink = AlarmSink(write=lambda rows: [append_jsonl(self.out / "alarms.jsonl", r)
                                                                  for r in rows], echo=self.monitor.sink.echo)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.update({k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})

    def on_step_end(self, args, state, control, **kwargs):
        rollouts = self.recorder.take()
        decision = {"stop": False, "beta": None}
        if rollouts is not None and state.is_world_process_zero:
            rollouts.metrics = dict(self.logs)
            observation = self.monitor.observe(state.global_step, rollouts)
            if self.out is not None and observation.metrics:
                append_jsonl(self.out / "monitor.jsonl", {"step": state.global_step, **{
                    k: v for k, v in observation.metrics.items() if v is not None and math.isfinite(v)}})
            decision = self._decide(observation.action)
        decision = from_main_process(decision)
        if decision["beta"] is not None and self.trainer is not None:
            self.trainer.beta = decision["beta"]
        if decision["stop"]:
            control.should_save = True
            control.should_training_stop = True
        return control

    def _decide(self, action: str | None) -> dict[str, Any]:
        if action in ("stop", "rollback"):
            return {"stop": True, "beta": None}
        beta = getattr(self.trainer, "beta", None)
        if action == "raise_kl" and beta:
            return {"stop": False, "beta": float(beta) * self.kl_raise_factor}
        return {"stop": False, "beta": None}


def hf_sampler(model, tokenizer, max_new_tokens: int = 64, temperature: float = 1.0, seed: int = 0):
    """A monitor sampler from a Hugging Face causal LM (the trainer's policy): ``n`` sampled completions per
    prompt, with ``generate``. Prompts are text (chat messages go through the tokenizer's chat template)."""
    calls = [0]

    def sample(prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        calls[0] += 1
        texts = [p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False,
                                                                             add_generation_prompt=True)
                 for p in prompts]
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        finally:
            tokenizer.padding_side = side
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed * 1_000_003 + calls[0])
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(**batch, do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens,
                                     num_return_sequences=n, pad_token_id=tokenizer.pad_token_id)
        finally:
            model.train(was_training)
            torch.random.set_rng_state(generator_state)
        decoded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return [decoded[i * n:(i + 1) * n] for i in range(len(prompts))]
    return sample
