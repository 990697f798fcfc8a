import json
import math
import shutil

import pytest
import torch
import yaml
from ensemble_setup import K, train_cfg

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs
from rewardgauge.data.records import PreferencePair
from rewardgauge.errors import InputError
from rewardgauge.rewards.aggregators import disagreement, normalise
from rewardgauge.rewards.base import RewardModel, Scores
from rewardgauge.rewards.ensemble import EnsembleRewardModel, ensemble_scores, reference_stats
from rewardgauge.rewards.evaluation import auroc, evaluate, format_report
from rewardgauge.rewards.hf import HFRewardModel
from rewardgauge.rewards.loading import load_reward_model
from rewardgauge.train.ensemble import member_weights, reference_set

FORMS = ("independent", "shared", "lora", "blocks")

# 3 members x 2 responses, raw; each member's reference mean and std
RAW = torch.tensor([[1.0, 4.0],
                    [2.0, 0.0],
                    [6.0, 2.0]])
MEAN, STD = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([1.0, 2.0, 4.0])


def test_each_aggregator_on_normalised_members_against_hand_computed_values():
    # normalised: m0 (1-1)/1, (4-1)/1 = 0, 3; m1 (2-0)/2, 0/2 = 1, 0; m2 (6-2)/4, (2-2)/4 = 1, 0
    std = [(2 / 9) ** 0.5, 2 ** 0.5]  # population std of {0, 1, 1} and of {3, 0, 0}
    expected = {"mean": [2 / 3, 1.0], "min": [0.0, 0.0],
                "mean_minus_std": [2 / 3 - 0.5 * std[0], 1.0 - 0.5 * std[1]],
                "quantile": [0.5, 0.0]}  # q=0.25 of sorted {0,1,1}: position 0.5 -> 0.5; of {0,0,3}: 0
    for name, want in expected.items():
        s = ensemble_scores(RAW, MEAN, STD, name, lam=0.5, q=0.25)
        assert s.reward.tolist() == pytest.approx(want, abs=1e-5), name
        torch.testing.assert_close(s.members, torch.tensor([[0.0, 3.0], [1.0, 0.0], [1.0, 0.0]]))
        assert s.uncertainty.tolist() == pytest.approx(std, abs=1e-5)


def test_reference_stats_and_a_constant_member():
    mean, std = reference_stats(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    assert mean == pytest.approx([2.0, 2.0]) and std == pytest.approx([1.0, 1.0])  # constant member: std 1


def test_member_subsets():
    boot = member_weights(1000, 5, "bootstrap", seed=0)
    assert boot.shape == (5, 1000) and (boot.sum(axis=1) == 1000).all()
    distinct = (boot > 0).mean(axis=1)
    assert ((distinct > 0.59) & (distinct < 0.67)).all()  # 1 - 1/e of the pairs
    assert not (boot[0] == boot[1]).all()
    assert (member_weights(1000, 5, "bootstrap", seed=0) == boot).all()
    assert not (member_weights(1000, 5, "bootstrap", seed=1) == boot).all()
    shards = member_weights(10, 3, "disjoint", seed=0)
    assert (shards.sum(axis=0) == 1).all() and sorted(shards.sum(axis=1)) == [3, 3, 4]
    assert (member_weights(4, 2, "full", seed=0) == 1).all()
    with pytest.raises(ValueError, match="cannot make 3 disjoint shards"):
        member_weights(2, 3, "disjoint", seed=0)


def test_reference_set_takes_both_sides_of_random_pairs(lang):
    pairs = load_pairs(lang["train"])
    prompts, responses = reference_set(pairs, 9, seed=0)
    assert len(prompts) == len(responses) == 9
    assert (prompts, responses) == reference_set(pairs, 9, seed=0)
    sides = {p.chosen for p in pairs} | {p.rejected for p in pairs}
    assert set(responses) <= sides
    assert len(reference_set(pairs[:3], 1000, seed=0)[1]) == 6


@pytest.mark.parametrize("form", FORMS)
def test_folder_layout_and_ensemble_json(ensembles, form):
    root = ensembles[form]
    spec = json.loads((root / "ensemble.json").read_text())
    assert spec["form"] == form and spec["members"] == K and spec["member_names"] == ["m0", "m1", "m2"]
    assert spec["aggregator"] == "min" and spec["lam"] == 1.0 and spec["q"] == 0.25 and spec["format_version"] == 1
    assert len(spec["normalisation"]["mean"]) == K and all(s > 0 for s in spec["normalisation"]["std"])
    assert spec["normalisation"]["responses"] == 64
    assert [m["subset"] for m in spec["member_info"]] == ["bootstrap"] * K
    assert all(100 < m["distinct_pairs"] < 256 and m["pairs"] == 256 for m in spec["member_info"])
    layout = {"independent": ["members/m0/model.safetensors", "members/m2/rewardgauge.json"],
              "shared": ["model/model.safetensors", "model/rewardgauge.json"],
              "blocks": ["model/model.safetensors", "model/member_blocks.safetensors", "model/rewardgauge.json"],
              "lora": ["base/model.safetensors", "adapters/m0/adapter_model.safetensors",
                       "adapters/m2/adapter_config.json"]}[form]
    for path in layout:
        assert (root / path).is_file(), path
    if form != "shared":
        assert [m["seed"] for m in spec["member_info"]] == [0, 1, 2]
    else:  # one run trains every head; each member's loss is logged on its own
        rows = [json.loads(line) for line in (root / "model" / "metrics.jsonl").read_text().splitlines()]
        assert all({"loss_m0", "loss_m1", "loss_m2"} <= set(r) for r in rows)
        assert [m["loss"] for m in spec["member_info"]] == [rows[-1][f"loss_m{i}"] for i in range(K)]


@pytest.mark.parametrize("form", FORMS)
def test_loaded_ensemble_scores_as_trained_and_reloads_identically(ensembles, lang, form):
    rm = load_reward_model(str(ensembles[form]), device="cpu")
    assert isinstance(rm, EnsembleRewardModel) and rm.form == form and rm.member_names == ["m0", "m1", "m2"]
    # The normalisation statistics were measured on the members in memory right after training: after
    # save + load the same reference responses must give normalised mean 0 and std 1 for every member.
    prompts, responses = reference_set(load_pairs(lang["train"]), 64, seed=0)
    s = rm.score(prompts, responses)
    assert s.members.shape == (K, 64) and s.reward.shape == (64,) and s.uncertainty.shape == (64,)
    torch.testing.assert_close(s.members.mean(dim=1), torch.zeros(K), atol=1e-4, rtol=0)
    torch.testing.assert_close(s.members.std(dim=1, unbiased=False), torch.ones(K), atol=1e-4, rtol=0)
    torch.testing.assert_close(s.reward, s.members.min(dim=0).values)
    spread = ((s.members - s.members.mean(dim=0)) ** 2).mean(dim=0).sqrt()  # population std over members
    torch.testing.assert_close(s.uncertainty, spread)
    # members disagree somewhere (they differ by data subset, and by seed where they have their own)
    assert s.uncertainty.max() > 1e-3
    # a second load, with another batch size (other padding), gives the same scores
    again = EnsembleRewardModel.from_pretrained(ensembles[form], device="cpu", batch_size=5).score(prompts, responses)
    torch.testing.assert_close(again.members, s.members, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mean", "min", "mean_minus_std", "quantile"])
def test_aggregator_chosen_at_load_time(ensembles, lang, name):
    rm = EnsembleRewardModel.from_pretrained(ensembles["independent"], aggregator=name, lam=0.5, q=0.5, device="cpu")
    pairs = load_pairs(lang["heldout"])[:16]
    s = rm.score([p.prompt for p in pairs], [p.chosen for p in pairs])
    low, mid, high = s.members.sort(dim=0).values  # K = 3 members
    mean = (low + mid + high) / 3
    std = (((low - mean) ** 2 + (mid - mean) ** 2 + (high - mean) ** 2) / 3).sqrt()
    expected = {"mean": mean, "min": low, "mean_minus_std": mean - 0.5 * std, "quantile": mid}[name]  # q=0.5: median
    torch.testing.assert_close(s.reward, expected)


def test_independent_members_score_like_their_own_folders(ensembles, lang):
    root = ensembles["independent"]
    rm = EnsembleRewardModel.from_pretrained(root, device="cpu")
    pairs = load_pairs(lang["heldout"])[:24]
    prompts, responses = [p.prompt for p in pairs], [p.chosen for p in pairs]
    members = rm.score(prompts, responses).members
    for k in range(K):
        alone = HFRewardModel.from_pretrained(root / "members" / f"m{k}", device="cpu").score(prompts, responses)
        expected = normalise(alone.reward[None], rm.mean[k:k + 1], rm.std[k:k + 1])[0]
        torch.testing.assert_close(members[k], expected, atol=1e-5, rtol=1e-5)


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints"))
    return dst


def test_bad_ensemble_folders_name_the_file_and_field(ensembles, lang, tmp_path):
    bad = _copy(ensembles["independent"], tmp_path / "missing")
    shutil.rmtree(bad / "members" / "m1")
    with pytest.raises(InputError, match="member 'm1' is missing: no folder members/m1") as e:
        EnsembleRewardModel.from_pretrained(bad, device="cpu")
    assert e.value.path == str(bad / "ensemble.json") and e.value.field == "members"

    extra = _copy(ensembles["independent"], tmp_path / "extra")
    shutil.copytree(extra / "members" / "m2", extra / "members" / "m3")
    with pytest.raises(InputError, match=r"says 3 members but 4 member folders are in members/ \(not listed: m3\)"):
        EnsembleRewardModel.from_pretrained(extra, device="cpu")

    spec_k = _copy(ensembles["shared"], tmp_path / "shared_k")
    spec = json.loads((spec_k / "ensemble.json").read_text())
    spec.update(members=2, member_names=["m0", "m1"], member_info=spec["member_info"][:2])
    spec["normalisation"].update(mean=spec["normalisation"]["mean"][:2], std=spec["normalisation"]["std"][:2])
    (spec_k / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(InputError, match="says 2 members but model/ has 3 outputs") as e:
        EnsembleRewardModel.from_pretrained(spec_k, device="cpu")
    assert e.value.field == "members"

    counted = _copy(ensembles["lora"], tmp_path / "lora_k")
    spec = json.loads((counted / "ensemble.json").read_text())
    (counted / "ensemble.json").write_text(json.dumps({**spec, "members": 4}))
    with pytest.raises(InputError, match="says 4 members but member_names lists 3") as e:
        EnsembleRewardModel.from_pretrained(counted, device="cpu")
    assert e.value.field == "members" and e.value.path.endswith("ensemble.json")

    aggregator = _copy(ensembles["shared"], tmp_path / "agg")
    spec = json.loads((aggregator / "ensemble.json").read_text())
    (aggregator / "ensemble.json").write_text(json.dumps({**spec, "aggregator": "max"}))
    with pytest.raises(InputError, match="must be one of") as e:
        EnsembleRewardModel.from_pretrained(aggregator, device="cpu")
    assert e.value.field == "aggregator"


def test_members_with_different_tokenizers_are_refused(ensembles, lang, tmp_path, capsys):
    from rewardgauge.modeling.tokenizer import build_word_tokenizer

    bad = _copy(ensembles["independent"], tmp_path / "tok")
    other = build_word_tokenizer(["a completely different vocabulary ."])
    other.save_pretrained(bad / "members" / "m2")
    with pytest.raises(InputError, match="tokenizer differs from that of members/m0") as e:
        EnsembleRewardModel.from_pretrained(bad, device="cpu")
    assert e.value.path == str(bad / "members" / "m2") and e.value.field == "tokenizer"
    # through the CLI: one line naming file and field, exit 2
    code = main(["rm", "eval", "--model", str(bad), "--data", str(lang["heldout"])])
    assert code == 2
    assert capsys.readouterr().err == (f"rewardgauge: error: {bad / 'members' / 'm2'}: field 'tokenizer': "
                                       "tokenizer differs from that of members/m0 (12 tokens vs 30); every "
                                       "member must share one tokenizer\n")


def test_cli_reports_a_bad_folder_on_one_line(ensembles, lang, tmp_path, capsys):
    bad = _copy(ensembles["lora"], tmp_path / "lora")
    shutil.rmtree(bad / "adapters" / "m0")
    assert main(["rm", "eval", "--model", str(bad), "--data", str(lang["heldout"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"rewardgauge: error: {bad / 'ensemble.json'}: field 'members': "
                   "member 'm0' is missing: no folder adapters/m0")


def test_rm_eval_on_an_ensemble(ensembles, lang, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["rm", "eval", "--model", str(ensembles["independent"]), "--data", str(lang["heldout"]),
                 "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "ensemble of 3: members' mean accuracy" in table and "member m2" in table and "aggregate (min)" in table
    assert "AUROC for an aggregate error" in table
    result = json.loads(out.read_text())
    ens = result["ensemble"]
    assert [m["name"] for m in ens["members"]] == ["m0", "m1", "m2"]
    assert ens["aggregate"]["aggregator"] == "min" and ens["aggregate"]["accuracy"] == result["accuracy"]
    assert ens["member_mean_accuracy"] == pytest.approx(sum(m["accuracy"] for m in ens["members"]) / 3)
    assert all(m["accuracy"] > 0.7 for m in ens["members"])  # each member learned the preference
    assert set(ens["uncertainty"]["margin_std"]["by_difficulty"]) == {"easy", "medium", "hard"}
    # the uncertainty's AUROC for an error, counted pair by pair from the ensemble's own scores
    pairs = load_pairs(lang["heldout"])
    rm = load_reward_model(str(ensembles["independent"]), device="cpu")
    prompts = [p.prompt for p in pairs]
    chosen, rejected = rm.score(prompts, [p.chosen for p in pairs]), rm.score(prompts, [p.rejected for p in pairs])
    error = (chosen.reward - rejected.reward <= 0).tolist()
    spread = ((chosen.uncertainty + rejected.uncertainty) / 2).tolist()
    wrong = [u for u, e in zip(spread, error) if e]
    right = [u for u, e in zip(spread, error) if not e]
    assert ens["errors"] == len(wrong) and 0 < len(wrong) < len(pairs)  # a case with both kinds of pair
    ordered = sum((w > r) + 0.5 * (w == r) for w in wrong for r in right) / (len(wrong) * len(right))
    assert ens["uncertainty"]["response_std"]["auroc_error"] == pytest.approx(ordered, abs=1e-6)
    assert result["accuracy"] == pytest.approx(1 - len(wrong) / len(pairs), abs=0.5 / len(pairs))

    code = main(["rm", "eval", "--model", str(ensembles["independent"]), "--data", str(lang["heldout"]),
                 "--json", "--aggregator", "mean_minus_std", "--lam", "2"])
    agg = json.loads(capsys.readouterr().out)["ensemble"]["aggregate"]
    assert code == 0 and agg["aggregator"] == "mean_minus_std" and agg["lam"] == 2.0

    # aggregator options on a single reward model are an error, not silently ignored
    single = ensembles["independent"] / "members" / "m0"
    assert main(["rm", "eval", "--model", str(single), "--data", str(lang["heldout"]), "--aggregator", "min"]) == 2
    assert "apply to ensemble folders" in capsys.readouterr().err


def test_auroc_hand_computed():
    # positives {0.35, 0.8} vs negatives {0.1, 0.4}: 3 of 4 (pos, neg) pairs ordered right
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    # a tie counts half: (1 vs 1) 0.5, (2 vs 1) 1
    assert auroc(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([0, 1, 1])) == pytest.approx(0.75)
    assert auroc(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 0, 0])) == 1.0
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([1, 1])))


class _Members(RewardModel):
    """An ensemble stand-in: each response has fixed member rewards; the aggregate is their mean."""

    member_names, aggregator = ["a", "b"], "mean"

    def __init__(self, table):
        self.table = table

    def score_batch(self, prompts, responses, meta):
        members = torch.tensor([self.table[r] for r in responses]).T
        return Scores(reward=members.mean(dim=0), members=members, uncertainty=disagreement(members))


def test_ensemble_section_of_the_report_by_hand():
    rm = _Members({"w": [2.0, 0.0], "x": [0.0, 0.0], "y": [1.0, 1.0], "z": [0.0, 3.0]})
    pairs = [PreferencePair(prompt="p", chosen="w", rejected="x", difficulty="easy"),   # margins a 2, b 0
             PreferencePair(prompt="p", chosen="y", rejected="x", difficulty="easy"),   # a 1, b 1
             PreferencePair(prompt="p", chosen="w", rejected="z", difficulty="hard")]   # a 2, b -3
    ens = evaluate(rm, pairs).ensemble
    assert [m["accuracy"] for m in ens["members"]] == pytest.approx([1.0, 0.5])  # b: tie (half), right, wrong
    assert ens["members"][1]["by_difficulty"] == {"easy": pytest.approx(0.75), "hard": 0.0}
    assert ens["member_mean_accuracy"] == pytest.approx(0.75)
    # aggregate margins (mean): 1, 1, -0.5 -> the hard pair is the one error
    assert ens["aggregate"]["accuracy"] == pytest.approx(2 / 3) and ens["errors"] == 1
    # std of member margins: |2-0|/2 = 1, 0, |2+3|/2 = 2.5
    margin_std = ens["uncertainty"]["margin_std"]
    assert margin_std["by_difficulty"] == {"easy": pytest.approx(0.5), "hard": pytest.approx(2.5)}
    assert margin_std["auroc_error"] == 1.0  # the error has the largest disagreement
    # P(sign flip) = Phi(-|mean margin| / std): Phi(-1/1) = 0.158655, 0 (members agree exactly), Phi(-0.5/2.5)
    flip = ens["uncertainty"]["flip_probability"]
    assert flip["by_difficulty"] == {"easy": pytest.approx(0.158655 / 2, abs=1e-5), "hard": pytest.approx(0.420740, abs=1e-5)}
    assert flip["auroc_error"] == 1.0
    # std of member P(chosen) = sigma(margins): |s(2)-s(0)|/2, 0, |s(2)-s(-3)|/2
    pref = ens["uncertainty"]["preference_std"]["by_difficulty"]
    s2, s0, s_3 = 0.880797, 0.5, 0.047426
    assert pref == {"easy": pytest.approx((s2 - s0) / 4, abs=1e-5), "hard": pytest.approx((s2 - s_3) / 2, abs=1e-5)}
    # per-response std: w 1, x 0, y 0, z 1.5 -> pairs 0.5, 0, 1.25
    assert ens["uncertainty"]["response_std"]["by_difficulty"]["hard"] == pytest.approx(1.25)
    text = format_report(evaluate(rm, pairs))
    assert "ensemble of 2: members' mean accuracy 75.0%, aggregate (mean) 66.7%" in text
    assert "uncertainty (std of member margins): easy 0.500  hard 2.500   AUROC for an aggregate error 1.000" in text


def test_ensemble_options_are_validated(lang, tmp_path):
    from rewardgauge.train.ensemble import train_ensemble

    with pytest.raises(InputError, match="cannot make 3 disjoint shards") as e:
        train_ensemble(train_cfg(lang, tmp_path / "o", data=str(_two_pairs(lang, tmp_path)), subset="disjoint"))
    assert e.value.field == "subset"
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out",
                 str(tmp_path / "x"), "--members", "3", "--ensemble-form", "shared", "--loss", "margin"]) == 2
    assert not (tmp_path / "x").exists()


def _two_pairs(lang, tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text("".join(lang["train"].read_text().splitlines(keepends=True)[:2]))
    return path


def test_lora_mixed_adapter_batch_scores_like_one_pass_per_adapter(ensembles, lang):
    pairs = load_pairs(lang["heldout"])[:20]
    prompts, responses = [p.prompt for p in pairs], [p.rejected for p in pairs]
    sequential = EnsembleRewardModel.from_pretrained(ensembles["lora"], device="cpu").score(prompts, responses)
    mixed = EnsembleRewardModel.from_pretrained(ensembles["lora"], device="cpu", lora_batching="mixed").score(
        prompts, responses)
    torch.testing.assert_close(mixed.members, sequential.members, atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="must be 'sequential' or 'mixed'"):
        EnsembleRewardModel.from_pretrained(ensembles["lora"], lora_batching="parallel")


def test_members_from_different_starting_models(lang, tmp_path):
    """--member-models: each independent member starts from its own backbone (e.g. another pretraining seed)."""
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.modeling.tokenizer import build_word_tokenizer
    from rewardgauge.train.ensemble import train_ensemble

    other = tmp_path / "tiny-seed1"
    init_model([lang["train"], lang["heldout"]], other, preset="tiny", seed=1)
    starts = [str(lang["model"]), str(other)]
    out = tmp_path / "pretrain-seeds"
    run = train_ensemble(train_cfg(lang, out, members=2, max_steps=3, member_models=starts))
    assert [m["model"] for m in run.members] == starts
    assert yaml.safe_load((out / "members" / "m1" / "config.yaml").read_text())["model"] == str(other)
    members = load_reward_model(out).score(["the cat"], ["sits"]).members
    assert members.shape == (2, 1) and not torch.equal(members[0], members[1])

    with pytest.raises(ValueError, match="one model per member"):
        train_cfg(lang, tmp_path / "x", members=3, member_models=starts).validate()
    foreign = tmp_path / "foreign"
    shutil.copytree(other, foreign)
    build_word_tokenizer(["a completely different vocabulary ."]).save_pretrained(foreign)
    with pytest.raises(InputError, match="different tokenizer") as e:
        train_ensemble(train_cfg(lang, tmp_path / "y", members=2, member_models=[starts[0], str(foreign)]))
    assert e.value.field == "member_models"


class _Interrupt(Exception):
    pass


def test_an_interrupted_ensemble_resumes_member_by_member(ensembles, lang, tmp_path, monkeypatch):
    """Killed inside member m1: the resumed run leaves the finished m0 untrained, continues m1 from its
    step-4 checkpoint, trains m2, and the folder ends as the uninterrupted run of the fixture ended."""
    from safetensors.torch import load_file

    import rewardgauge.train.ensemble as ensemble_training

    real, examples, crash_in = ensemble_training.train_reward_model, {}, ["m1"]

    def crash(state):
        if state.step == 6:
            raise _Interrupt

    def counting(cfg, callbacks=(), **kw):  # what each member's training call trained on
        name = cfg.out.rsplit("/", 1)[-1]
        result = real(cfg, [crash] if name in crash_in else callbacks, **kw)
        examples[name] = result.examples
        return result

    monkeypatch.setattr(ensemble_training, "train_reward_model", counting)
    out = tmp_path / "ens"
    with pytest.raises(_Interrupt):
        ensemble_training.train_ensemble(train_cfg(lang, out, save_every=4))
    assert examples == {"m0": 12 * 16}
    assert not (out / "ensemble.json").exists()
    assert sorted(p.name for p in (out / "members" / "m1" / "checkpoints").iterdir()) == ["step-4"]

    crash_in.clear()
    examples.clear()
    ensemble_training.train_ensemble(train_cfg(lang, out, save_every=4, resume=True))
    assert examples == {"m0": 0, "m1": (12 - 4) * 16, "m2": 12 * 16}
    whole = ensembles["independent"]
    for name in ("m0", "m1", "m2"):
        got, want = (load_file(root / "members" / name / "model.safetensors") for root in (out, whole))
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=0)
    spec, whole_spec = (json.loads((root / "ensemble.json").read_text()) for root in (out, whole))
    for key in ("mean", "std"):
        assert spec["normalisation"][key] == pytest.approx(whole_spec["normalisation"][key], abs=1e-5)
    drop = ("seconds",)
    assert [{k: v for k, v in m.items() if k not in drop} for m in spec["member_info"]] == \
        [{k: v for k, v in m.items() if k not in drop} for m in whole_spec["member_info"]]


def test_relative_disagreement_by_hand():
    from rewardgauge.rewards.evaluation import relative_disagreement

    # pair 0: margins 1, 3 (std 1, mean 2); pair 1: 3, 1 (std 1, mean 2); pair 2: -1, -1 (std 0, mean -1)
    margins = torch.tensor([[1.0, 3.0, -1.0], [3.0, 1.0, -1.0]])
    assert relative_disagreement(margins) == pytest.approx((2 / 3) / (5 / 3))
    assert relative_disagreement(3 * margins) == pytest.approx((2 / 3) / (5 / 3))  # scale-free
    assert math.isnan(relative_disagreement(torch.zeros(2, 3)))


def test_low_disagreement_warning_on_constructed_members():
    from rewardgauge.rewards.evaluation import LOW_DISAGREEMENT, low_disagreement_warning

    g = torch.Generator().manual_seed(0)
    shared = torch.randn(1, 500, generator=g)
    near_identical = shared + 0.01 * torch.randn(5, 500, generator=g)
    diverse = shared + 0.5 * torch.randn(5, 500, generator=g)
    warning = low_disagreement_warning(near_identical)
    assert warning is not None and warning.startswith("the members barely disagree: relative disagreement 0.01")
    assert f"below {LOW_DISAGREEMENT}" in warning
    assert low_disagreement_warning(diverse) is None
    assert low_disagreement_warning(torch.zeros(3, 4)) is None  # no margins at all: nothing to compare to


def _same_member_three_times(ensembles, root):
    """An independent ensemble folder whose members are one model: they cannot disagree."""
    shutil.copytree(ensembles["independent"], root)
    for name in ("m1", "m2"):
        shutil.rmtree(root / "members" / name)
        shutil.copytree(root / "members" / "m0", root / "members" / name)
    spec = json.loads((root / "ensemble.json").read_text())
    norm = spec["normalisation"]
    norm["mean"], norm["std"] = [norm["mean"][0]] * 3, [norm["std"][0]] * 3
    (root / "ensemble.json").write_text(json.dumps(spec))


def test_rm_eval_warns_when_members_barely_disagree(ensembles, lang, tmp_path, capsys):
    _same_member_three_times(ensembles, tmp_path / "same")
    assert main(["rm", "eval", "--model", str(tmp_path / "same"), "--data", str(lang["heldout"])]) == 0
    table = capsys.readouterr().out
    assert "relative disagreement (std of member margins / mean |margin|): 0.000" in table
    assert "warning: the members barely disagree: relative disagreement 0.000" in table
    assert main(["rm", "eval", "--model", str(tmp_path / "same"), "--data", str(lang["heldout"]), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ensemble"]["low_disagreement"].startswith("the members barely disagree")
    assert captured.err.startswith("warning: the members barely disagree")

    assert main(["rm", "eval", "--model", str(ensembles["independent"]), "--data", str(lang["heldout"]), "--json"]) == 0
    captured = capsys.readouterr()
    ens = json.loads(captured.out)["ensemble"]
    assert ens["relative_disagreement"] > 0.1 and ens["low_disagreement"] is None and "warning" not in captured.err
