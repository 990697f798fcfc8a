"""HFRewardModel.features: the hidden state the reward head reads, in input order, unchanged by batching."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

import synthetic  # noqa: E402


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from rewardgauge.modeling.loading import load_sequence_classifier, load_tokenizer
    from rewardgauge.modeling.policy import init_model
    from rewardgauge.rewards.hf import HFRewardModel

    root = tmp_path_factory.mktemp("features")
    data = synthetic.write_jsonl(root / "pairs.jsonl", synthetic.make_pairs(24, seed=0))
    init_model([data], root / "tiny", preset="tiny")
    torch.manual_seed(0)
    model = load_sequence_classifier(root / "tiny", num_labels=1).eval()
    from rewardgauge.data.io import load_pairs

    pairs = load_pairs(data)
    return HFRewardModel(model, load_tokenizer(root / "tiny"), batch_size=5), pairs


def test_features_are_what_the_head_reads(tiny_rm):
    rm, pairs = tiny_rm
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    features = rm.features(prompts, responses)
    assert features.shape == (len(responses), rm.model.config.hidden_size)
    # a Llama reward head is one linear map of this state: applying it gives the reward back
    head = rm.model.score.weight.float()
    assert torch.allclose(features @ head.T, rm.score(prompts, responses).reward[:, None], atol=1e-4)
    # batching and padding do not move a response's features
    alone = torch.cat([rm.features([p], [r]) for p, r in zip(prompts[:6], responses[:6])])
    assert torch.allclose(alone, features[:6], atol=1e-5)
