"""The TRL integration in a short TRL GRPO run on a tiny model: the reward adapter logs every member and
aspect, the callback runs the monitor after each step, writes alarms, and stops the run when told to."""

import json

import pytest
import torch

trl = pytest.importorskip("trl", reason="TRL is in the dev extra")

from rewardgauge.integrations.trl import MonitorCallback, RewardFunction, RolloutRecorder, hf_sampler  # noqa: E402
from rewardgauge.monitor import AlarmSink, Monitor  # noqa: E402
from rewardgauge.monitor.alarms import AlarmPolicy  # noqa: E402
from rewardgauge.monitor.detectors import KLBudgetConfig, KLBudgetDetector, LengthDetector  # noqa: E402
from rewardgauge.rewards.base import RewardModel, Scores  # noqa: E402

PROMPTS = ["compute 1 + 2 .", "compute 2 * 3 .", "i think 2 + 2 is 5 . right ?", "what is the capital of japan ?"]


class TwoMembers(RewardModel):
    """An 'ensemble' whose members and aspects are known functions of the text."""

    name = "toy"

    def score_batch(self, prompts, responses, meta):
        length = torch.tensor([float(len(r.split())) for r in responses])
        digits = torch.tensor([float(sum(c.isdigit() for c in r)) for r in responses])
        members = torch.stack([length, digits])
        return Scores(reward=members.mean(0), members=members, aspects={"length": length, "digits": digits},
                      uncertainty=members.std(0))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("trl")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": p, "response": "1 + 2 = 3 . answer 3 . yes no tokyo"}) + "\n"
                              for p in PROMPTS))
    init_model([corpus], root / "policy", preset="tiny")
    return root / "policy"


def grpo(policy, out, reward_funcs, callbacks, steps=3, beta=0.0, algo="grpo"):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    config, trainer = (GRPOConfig, GRPOTrainer) if algo == "grpo" else (RLOOConfig, RLOOTrainer)
    args = config(output_dir=str(out), max_steps=steps, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, learning_rate=1e-3, beta=beta, logging_steps=1, save_strategy="no",
                      report_to="none", disable_tqdm=True, bf16=False, use_cpu=True, seed=0,
                      activation_checkpointing=False)
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    return trainer(model=str(policy), reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                       callbacks=callbacks)


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_reward_adapter_logs_every_member_and_aspect_and_the_monitor_runs(tiny_policy, tmp_path, algo):
    recorder = RolloutRecorder()
    reward = RewardFunction(TwoMembers(), recorder=recorder)
    lines = []
    monitor = Monitor([LengthDetector(), KLBudgetDetector(KLBudgetConfig(metric="kl"))], sink=AlarmSink(echo=lines.append))
    callback = MonitorCallback(monitor, recorder)
    trainer = grpo(tiny_policy, tmp_path / "run", [reward], [callback], algo=algo)
    trainer.train()
    logged = [row for row in trainer.state.log_history if "toy/member_0" in row]
    assert len(logged) == 3
    assert {"toy/member_1", "toy/length", "toy/digits", "toy/uncertainty"} <= set(logged[0])
    # the aggregate TRL optimised is the members' mean, as the adapter returned it
    row = logged[0]
    assert row["rewards/toy/mean"] == pytest.approx((row["toy/member_0"] + row["toy/member_1"]) / 2, rel=1e-4)
    monitored = [json.loads(x) for x in (tmp_path / "run" / "monitor.jsonl").read_text().splitlines()]
    assert [m["step"] for m in monitored] == [1, 2, 3]  # the monitor saw every step's samples
    assert monitored[0]["monitor/length/length_mean"] > 0
    assert recorder.take() is None  # taken by the callback


def test_callback_stops_training_on_a_stop_alarm_and_writes_it(tiny_policy, tmp_path):
    recorder = RolloutRecorder()
    # KL is 0 at the first step (policy = reference) and positive after: a budget of 1e-9 is reached at once
    budget = KLBudgetDetector(KLBudgetConfig(metric="kl", budget=1e-9, alarm=AlarmPolicy("critical", "stop")))
    monitor = Monitor([budget], sink=AlarmSink(echo=None))
    callback = MonitorCallback(monitor, recorder)
    trainer = grpo(tiny_policy, tmp_path / "run", [RewardFunction(TwoMembers(), recorder=recorder)], [callback],
                   steps=6, beta=0.1)
    callback.attach(trainer)
    trainer.train()
    alarms = [json.loads(x) for x in (tmp_path / "run" / "alarms.jsonl").read_text().splitlines()]
    assert alarms and alarms[0]["action"] == "stop" and alarms[0]["detector"] == "kl"
    assert trainer.state.global_step == alarms[0]["step"] < 6  # stopped at the alarm's step


def test_raise_kl_multiplies_the_attached_trainers_beta(tiny_policy, tmp_path):
    recorder = RolloutRecorder()
    budget = KLBudgetDetector(KLBudgetConfig(metric="kl", budget=1e-9))  # default action: raise_kl
    callback = MonitorCallback(Monitor([budget], sink=AlarmSink(echo=None)), recorder, kl_raise_factor=3.0)
    trainer = grpo(tiny_policy, tmp_path / "run", [RewardFunction(TwoMembers(), recorder=recorder)], [callback],
                   steps=3, beta=0.1)
    callback.attach(trainer)
    trainer.train()
    assert trainer.beta == pytest.approx(0.3)  # raised once: the budget alarm fires once per episode


def test_hf_sampler_gives_n_completions_per_prompt_and_keeps_the_rng(tiny_policy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    state = torch.random.get_rng_state()
    out = hf_sampler(model, tokenizer, max_new_tokens=5)(PROMPTS[:2], 3)
    assert len(out) == 2 and all(len(group) == 3 and all(isinstance(t, str) for t in group) for group in out)
    assert torch.equal(torch.random.get_rng_state(), state)  # the trainer's sampling is not disturbed
