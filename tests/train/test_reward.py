import json
import math

import pytest
import torch
from safetensors.torch import load_file

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs
from rewardgauge.errors import InputError
from rewardgauge.rewards.hf import HFRewardModel
from rewardgauge.rewards.pairs import score_pairs
from rewardgauge.train.reward import RewardTrainConfig, train_reward_model


def _cfg(lang, out, **kw):
    base = dict(model=str(lang["model"]), data=str(lang["train"]), out=str(out), lr=2e-3, batch_size=16,
                progress=False, save_every=0)
    return RewardTrainConfig(**{**base, **kw})


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(lang, tmp_path_factory):
    """One BT reward model trained through the CLI, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("rm") / "rm"
    code = main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--eval-data", str(lang["heldout"]), "--eval-every", "16", "--epochs", "3", "--lr", "2e-3",
                 "--no-progress"])
    assert code == 0
    return out


def test_rm_train_learns_the_preference_and_writes_the_run(trained):
    rows = _rows(trained / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 49))  # 256 pairs / 16 per batch * 3 epochs
    assert {"loss", "accuracy", "margin", "lr", "grad_norm"} <= set(rows[0])
    assert [r["step"] for r in rows if "eval_accuracy" in r] == [16, 32, 48]
    assert rows[-1]["eval_accuracy"] >= 0.9
    assert sum(r["loss"] for r in rows[-8:]) < sum(r["loss"] for r in rows[:8])
    info = json.loads((trained / "rewardgauge.json").read_text())
    assert info["loss"] == "bt" and info["aspects"] is None and info["prompt_format"] == "chat_template"
    assert (trained / "model.safetensors").is_file() and (trained / "config.yaml").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-48"]


def test_saved_reward_model_scores_like_the_trained_one(trained, lang):
    rm = HFRewardModel.from_pretrained(trained, device="cpu", batch_size=7)
    pairs = load_pairs(lang["heldout"])[:40]
    both = score_pairs(rm, pairs)
    chosen, rejected = both.chosen, both.rejected
    assert chosen.reward.shape == (40,) and chosen.aspects is None
    assert (chosen.reward > rejected.reward).float().mean() >= 0.9
    # the same model scoring one at a time (no padding) agrees with the length-sorted batches
    single = torch.stack([rm.score([p.prompt], [p.chosen]).reward[0] for p in pairs[:10]])
    torch.testing.assert_close(single, chosen.reward[:10], atol=1e-5, rtol=1e-5)
    # reloading gives identical scores
    again = score_pairs(HFRewardModel.from_pretrained(trained, device="cpu", batch_size=64), pairs).chosen
    torch.testing.assert_close(again.reward, chosen.reward, atol=1e-6, rtol=1e-6)


def test_runs_saved_before_the_rename_still_load(trained, tmp_path, lang):
    """A reward model written as ``rewardlens.json`` (the project's old name) loads with its info intact."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(trained, old, ignore=shutil.ignore_patterns("checkpoints"))
    info = json.loads((old / "rewardgauge.json").read_text())
    info["max_length"] = 77  # a value the default would not give, so reading the legacy file is visible
    (old / "rewardgauge.json").unlink()
    (old / "rewardlens.json").write_text(json.dumps(info))
    rm = HFRewardModel.from_pretrained(old, device="cpu")
    assert rm.info.max_length == 77 and rm.info.loss == "bt"
    pairs = load_pairs(lang["heldout"])[:8]
    fresh = HFRewardModel.from_pretrained(trained, device="cpu")
    torch.testing.assert_close(score_pairs(rm, pairs).chosen.reward, score_pairs(fresh, pairs).chosen.reward)


def test_multi_objective_one_reward_per_aspect_and_weighted_combination(lang, tmp_path):
    out = tmp_path / "multi"
    train_reward_model(_cfg(lang, out, loss="multi", aspect_weights={"tone": 0.8, "brevity": 0.2}, epochs=2))
    info = json.loads((out / "rewardgauge.json").read_text())
    assert info["aspects"] == ["brevity", "tone"]
    assert info["aspect_weights"] == {"brevity": 0.2, "tone": 0.8}
    rm = HFRewardModel.from_pretrained(out, device="cpu")
    assert rm.model.config.num_labels == 2 and rm.model.config.id2label == {0: "brevity", 1: "tone"}
    pairs = load_pairs(lang["heldout"])[:32]
    both = score_pairs(rm, pairs)
    chosen, rejected = both.chosen, both.rejected
    assert set(chosen.aspects) == {"brevity", "tone"}
    torch.testing.assert_close(chosen.reward, 0.2 * chosen.aspects["brevity"] + 0.8 * chosen.aspects["tone"])
    # the tone head learned the tone labels
    assert (chosen.aspects["tone"] > rejected.aspects["tone"]).float().mean() >= 0.8
    # each aspect's loss is logged; the loss is their mean weighted by labelled pairs, so it lies between them
    for row in _rows(out / "metrics.jsonl"):
        low, high = sorted((row["loss_brevity"], row["loss_tone"]))
        assert low - 1e-5 <= row["loss"] <= high + 1e-5


@pytest.fixture(scope="module")
def gaps_by_loss(lang, tmp_path_factory):
    """The same run (seed, data, steps) with each single-output loss, and its mean held-out margin
    r_c - r_r per word-score gap of the pairs. In the synthetic data a gap of 1 has 4 of 6 votes for chosen,
    2 has 5 of 6, 3 is unanimous; a pair's 'margin' field is its gap."""
    root = tmp_path_factory.mktemp("losses")
    pairs = load_pairs(lang["heldout"])
    # BT alone already learns gaps of about 2.5 / 5.7 / 7 here, wider than margins of 1 / 2 / 3 would ask for:
    # the margin run gets margins of 4x the gap, which only a loss that reads them can reach.
    wide = root / "wide_margins.jsonl"
    wide.write_text("".join(json.dumps({**r, "margin": 4 * r["margin"]}) + "\n" for r in _rows(lang["train"])))
    out = {}
    for loss in ("bt", "margin", "soft"):
        data = str(wide if loss == "margin" else lang["train"])
        result = train_reward_model(_cfg(lang, root / loss, loss=loss, epochs=2, data=data,
                                         eval_data=str(lang["heldout"])))
        assert json.loads((root / loss / "rewardgauge.json").read_text())["loss"] == loss
        gap = score_pairs(HFRewardModel.from_pretrained(root / loss, device="cpu"), pairs).margins
        out[loss] = {"eval_accuracy": result.last_metrics["eval_accuracy"],
                     **{g: gap[[i for i, p in enumerate(pairs) if p.margin == g]].mean().item() for g in (1, 2, 3)}}
    return out


@pytest.mark.parametrize("loss", ["bt", "margin", "soft"])
def test_each_pair_loss_learns_the_preference(gaps_by_loss, loss):
    assert gaps_by_loss[loss]["eval_accuracy"] >= 0.85


def test_soft_loss_is_fed_the_vote_fraction(gaps_by_loss):
    """Soft BT against p = 4/6 has its optimum at Δ = log 2, against 5/6 at log 5, against p = 1 none: split
    votes must end near those narrow gaps while BT keeps widening them. Fed p = 1, soft BT would be BT."""
    soft, bt = gaps_by_loss["soft"], gaps_by_loss["bt"]
    assert soft[1] == pytest.approx(math.log(2), abs=0.35)
    assert soft[1] < soft[2] < soft[3] and soft[2] < math.log(5) + 0.5
    assert soft[1] < 0.5 * bt[1] and soft[2] < 0.5 * bt[2]


def test_margin_loss_is_fed_the_margin(gaps_by_loss):
    """-log σ(Δ - m) asks for a gap beyond each pair's margin m (here 4, 8, 12): it widens the gaps BT learns,
    most where m is largest. Fed m = 0, it would be plain BT, step for step."""
    margin, bt = gaps_by_loss["margin"], gaps_by_loss["bt"]
    assert margin[3] > 1.2 * bt[3]
    assert margin[3] - margin[1] > 1.4 * (bt[3] - bt[1])


def test_reward_centering_pulls_rewards_to_zero(lang, tmp_path):
    def mean_abs_sum(out, **kw):
        train_reward_model(_cfg(lang, out, max_steps=24, **kw))
        rows = _rows(out / "metrics.jsonl")
        if kw:  # the centering term is logged on its own, and is part of the loss
            assert all(0 < r["loss_center"] < r["loss"] for r in rows)
        else:
            assert not any("loss_center" in r for r in rows)
        pairs = load_pairs(lang["heldout"])[:64]
        both = score_pairs(HFRewardModel.from_pretrained(out, device="cpu"), pairs)
        c, r = both.chosen, both.rejected
        return (c.reward + r.reward).abs().mean().item()

    free = mean_abs_sum(tmp_path / "free")
    centred = mean_abs_sum(tmp_path / "centred", center_coef=1.0)
    assert centred < 0.5 * free


class _Interrupt(Exception):
    pass


def test_resume_ends_where_an_uninterrupted_run_ends(lang, tmp_path):
    kw = dict(max_steps=12, save_every=4, keep_checkpoints=2, log_every=3)
    train_reward_model(_cfg(lang, tmp_path / "full", **kw))

    def crash(state):
        if state.step == 6:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_reward_model(_cfg(lang, tmp_path / "cut", **kw), callbacks=[crash])
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["step-4"]
    result = train_reward_model(_cfg(lang, tmp_path / "cut", resume=True, **kw))
    assert result.steps == 12

    full, cut = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert full.keys() == cut.keys()
    for k in full:
        torch.testing.assert_close(cut[k], full[k], atol=1e-6, rtol=0)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in _rows(tmp_path / "full" / "metrics.jsonl")]
    assert [{k: v for k, v in r.items() if k != "time"} for r in _rows(tmp_path / "cut" / "metrics.jsonl")] == strip


def test_resume_refuses_a_changed_config(lang, tmp_path):
    train_reward_model(_cfg(lang, tmp_path / "run", max_steps=2))
    with pytest.raises(InputError, match=r"config.yaml: field 'lr': differs from the run being resumed"):
        train_reward_model(_cfg(lang, tmp_path / "run", max_steps=2, lr=1e-2, resume=True))


def test_bad_inputs_exit_2_with_one_line(lang, tmp_path, capsys):
    base = ["rm", "train", "--data", str(lang["train"]), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(base + ["--model", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"rewardgauge: error: {tmp_path / 'nowhere'}: field 'model': model folder not found"
    assert main(base + ["--model", str(lang["root"])]) == 2
    assert "not a Hugging Face model folder (no config.json)" in capsys.readouterr().err
    assert main(base + ["--model", str(lang["model"]), "--loss", "hinge"]) == 2
    assert "must be one of ['bt', 'margin', 'soft', 'multi']" in capsys.readouterr().err
    assert main(base + ["--model", str(lang["model"]), "--batch-size", "0"]) == 2
    assert "batch_size must be at least 1" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {lang['model']}\nlerning_rate: 1\n")
    assert main(["rm", "train", "--config", str(cfg)]) == 2
    assert f"{cfg}:2: field 'lerning_rate': unknown config field" in capsys.readouterr().err
    assert main(base + ["--model", str(lang["model"]), "--loss", "multi", "--aspect-weights", '{"speed": 1}']) == 2
    assert "aspect_weights names unknown aspects ['speed']" in capsys.readouterr().err


def _bad_data(lang, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lang["train"].read_text().splitlines()[0] + "\n" + '{"prompt": "p", "chosen": "c"}\n')
    return bad


# (command, extra flags, what the error names); each is rejected with exit 2
_REJECTED = {
    "rm-model-missing": ("rm train", lambda lang, t: ["--model", str(t / "nowhere")], "model folder not found"),
    "rm-batch-size": ("rm train", lambda lang, t: ["--batch-size", "0"], "batch_size must be at least 1"),
    "rm-data-missing": ("rm train", lambda lang, t: ["--data", str(t / "none.jsonl")], "no such file"),
    "rm-data-bad-line": ("rm train", lambda lang, t: ["--data", str(_bad_data(lang, t))], ":2: field 'rejected'"),
    "rm-aspect-weights": ("rm train", lambda lang, t: ["--loss", "multi", "--aspect-weights", '{"speed": 1}'],
                          "unknown aspects"),
    "sft-model-missing": ("sft", lambda lang, t: ["--model", str(t / "nowhere")], "model folder not found"),
    "sft-data-missing": ("sft", lambda lang, t: ["--data", str(t / "none.jsonl")], "no such file"),
    "sft-data-pairs": ("sft", lambda lang, t: ["--data", str(lang["train"])], ":1: field 'chosen': unknown field"),
}


@pytest.mark.parametrize("case", list(_REJECTED))
def test_rejected_input_leaves_nothing_half_written(lang, tmp_path, capsys, case):
    """Bad input exits 2 with one line, and the output folder is not created; an existing run folder
    given as --out (a finished run here) is left byte for byte as it was."""
    command, flags, says = _REJECTED[case]
    data = lang["sft"] if command == "sft" else lang["train"]
    base = [*command.split(), "--model", str(lang["model"]), "--data", str(data), "--no-progress"]
    fresh = tmp_path / "fresh"
    assert main([*base, "--out", str(fresh), *flags(lang, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not fresh.exists(), sorted(p.name for p in fresh.iterdir())

    existing = tmp_path / "existing"
    existing.mkdir()
    for name, text in (("config.yaml", "lr: 0.5\n"), ("metrics.jsonl", '{"step": 1}\n'), ("rewardgauge.json", "{}")):
        (existing / name).write_text(text)
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    assert main([*base, "--out", str(existing), *flags(lang, tmp_path)]) == 2
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before


def test_margin_loss_needs_margins(lang, tmp_path):
    rows = [json.loads(line) for line in lang["train"].read_text().splitlines()]
    data = tmp_path / "nomargin.jsonl"
    data.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "margin"}) + "\n" for r in rows))
    with pytest.raises(InputError, match="needs a 'margin' in the pairs"):
        train_reward_model(_cfg(lang, tmp_path / "o", data=str(data), loss="margin"))


def test_grad_accumulation_matches_the_larger_batch(lang, tmp_path):
    # Without bucketing, micro-batches 2k and 2k+1 of 8 are global batch k of 16, in the same order.
    # AdamW ignores a constant scale of the gradient, so equal weights alone would not notice a missing
    # "/ grad_accum": the gradient norm itself is compared. A clipping threshold no gradient reaches makes
    # the loop log that norm (before clipping) while leaving the update unclipped.
    common = dict(max_steps=4, bucket=False, max_grad_norm=1e9)
    train_reward_model(_cfg(lang, tmp_path / "big", batch_size=16, **common))
    result = train_reward_model(_cfg(lang, tmp_path / "acc", batch_size=8, grad_accum=2, **common))
    assert result.examples == 4 * 16
    a, b = _rows(tmp_path / "big" / "metrics.jsonl"), _rows(tmp_path / "acc" / "metrics.jsonl")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], abs=1e-5)
    assert all(r["grad_norm"] > 1e-3 for r in a)
    assert [r["grad_norm"] for r in b] == pytest.approx([r["grad_norm"] for r in a], rel=1e-3)
    big, acc = load_file(tmp_path / "big" / "model.safetensors"), load_file(tmp_path / "acc" / "model.safetensors")
    for k in big:
        torch.testing.assert_close(acc[k], big[k], atol=5e-4, rtol=1e-3)  # summation order; Adam amplifies it near 0


def test_architecture_without_a_classifier_class_gets_our_head(lang, tmp_path):
    """Granite has no *ForSequenceClassification in transformers 5: the backbone gets rewardgauge' head."""
    from plain import tiny_granite

    folder = tiny_granite(lang["model"], tmp_path / "granite", hidden=64, layers=2)

    out = tmp_path / "rm"
    result = train_reward_model(_cfg(lang, out, model=str(folder), loss="multi", epochs=2, lr=3e-3))
    assert type(result.model).__name__ == "BackboneRewardModel"
    saved = json.loads((out / "config.json").read_text())  # the portable form (tests/train/test_portable_rm.py)
    assert saved["model_type"] == "rewardgauge_pooled_reward" and saved["backbone_config"]["model_type"] == "granite"
    rm = HFRewardModel.from_pretrained(out, device="cpu")
    assert type(rm.model).__name__ == "BackboneRewardModel" and rm.model.config.num_labels == 2
    pairs = load_pairs(lang["heldout"])[:32]
    both = score_pairs(rm, pairs)
    chosen, rejected = both.chosen, both.rejected
    assert (chosen.aspects["tone"] > rejected.aspects["tone"]).float().mean() >= 0.8
    with torch.no_grad():  # the reloaded model scores as the trained one did
        same = score_pairs(HFRewardModel(result.model.eval(), rm.tokenizer, rm.info), pairs).chosen
    torch.testing.assert_close(same.reward, chosen.reward, atol=1e-5, rtol=1e-5)


def test_one_prompt_pass_per_pair_trains_as_two_full_passes(lang, tmp_path):
    """The grouped layouts (the pair's prompt run once; several pairs per packed row) against the plain one
    (chosen and rejected as two whole sequences): the same losses, accuracies and gradient norms step by step
    and the same weights, to float32 rounding. Random batches, so rows hold pairs of different lengths."""
    common = dict(max_steps=4, bucket=False, max_grad_norm=1e9, log_every=1)
    common_lr = _cfg(lang, tmp_path).lr
    runs = {}
    for layout in ("plain", "packed", "shared"):
        train_reward_model(_cfg(lang, tmp_path / layout, layout=layout, **common))
        runs[layout] = (_rows(tmp_path / layout / "metrics.jsonl"), load_file(tmp_path / layout / "model.safetensors"))
    plain_rows, plain_weights = runs["plain"]
    assert len({r["loss"] for r in plain_rows}) == 4
    for layout in ("packed", "shared"):
        rows, weights = runs[layout]
        for key in ("loss", "margin", "grad_norm"):
            assert [r[key] for r in rows] == pytest.approx([r[key] for r in plain_rows], rel=1e-4, abs=1e-6)
        assert [r["accuracy"] for r in rows] == [r["accuracy"] for r in plain_rows]
        # Adam divides each step by sqrt(v): a coordinate whose gradient is ~0 can move by up to lr on rounding
        # alone, so the weights agree closely on average and within a fraction of one step everywhere.
        for k in plain_weights:
            diff = (weights[k] - plain_weights[k]).abs()
            assert diff.mean() < 1e-6 and diff.max() < common_lr / 2, k
