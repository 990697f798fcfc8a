"""The grouped reward forward (modeling.reward_forward): a pair's common prefix once, its two suffixes after it,
several pairs per packed row, equal to a plain forward of each whole sequence in rewards and gradients."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification, LlamaModel

from rewardgauge.modeling.heads import BackboneRewardModel
from rewardgauge.modeling.logprobs import pack
from rewardgauge.modeling.reward_forward import (
    common_prefix_length,
    fill_rows,
    group_rewards,
    group_sequences,
    read_position,
)

PAD = 0
# (chosen, rejected) token ids. A shared prompt with suffixes of different lengths; a pair whose sequences were
# cut differently (no common prefix at all); one ending with the pad id (the reward is read before it, as the
# HF classifiers do); one that is a prefix of the other; one whose suffix is nothing but the pad id.
PAIRS = [([2, 5, 6, 7, 8, 9], [2, 5, 6, 7, 11, 3, 4, 1]),
         ([9, 5, 1, 2], [4, 1, 3, 4, 5, 6, 7, 8, 12, 13]),
         ([2, 9, 9, 3, 4, 0], [2, 9, 9, 3, 3]),
         ([2, 7, 7], [2, 7, 7, 7]),
         ([2, 4, 4, 8], [2, 4, 4, 0]),
         ([2, 3], [2, 6, 6])]


def _config(**kw):
    return LlamaConfig(vocab_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=48, pad_token_id=PAD, **kw)


def _sharpen(model):
    """Weights with a large std, so that rewards depend strongly on the context (a wrong mask shows)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return model


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return _sharpen(LlamaForSequenceClassification(_config(num_labels=2)).double())


@pytest.fixture(scope="module")
def backbone_head():
    torch.manual_seed(0)
    return _sharpen(BackboneRewardModel(LlamaModel(_config()), num_labels=1).double())


def _rewards_and_grads(model, batch, layout):
    model = copy.deepcopy(model)
    rewards = group_rewards(model, batch, layout)
    weights = torch.linspace(-1, 1, rewards.numel(), dtype=rewards.dtype).reshape(rewards.shape)
    (rewards * weights).sum().backward()
    return rewards.detach(), [p.grad for p in model.parameters()]


def _alone(model, pairs):
    """Each sequence on its own, unpadded: what a reward model scores."""
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([s])).logits for pair in pairs for s in pair])


@pytest.mark.parametrize("layout", ["packed", "shared"])
def test_grouped_layouts_equal_the_plain_forward_in_rewards_and_gradients(classifier, layout):
    batch = group_sequences(PAIRS, PAD)
    assert batch.rows.max() < len(PAIRS) - 1  # some pairs share a packed row
    rewards, grads = _rewards_and_grads(classifier, batch, layout)
    plain, plain_grads = _rewards_and_grads(classifier, batch, "plain")
    assert rewards.shape == (2 * len(PAIRS), 2)
    torch.testing.assert_close(rewards, plain, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(plain, _alone(classifier, PAIRS), atol=1e-10, rtol=1e-10)
    scale = max(g.abs().max().item() for g in plain_grads)
    assert scale > 0.1
    # Llama's RMSNorm computes in float32 whatever the dtype: gradients summed before or after a norm differ
    # in the float32 rounding (see tests/rl/test_logprobs.py).
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b, atol=1e-6 * scale, rtol=1e-5)


def test_packed_layout_of_a_backbone_with_our_head(backbone_head):
    batch = group_sequences(PAIRS, PAD)
    rewards, grads = _rewards_and_grads(backbone_head, batch, "packed")
    plain, plain_grads = _rewards_and_grads(backbone_head, batch, "plain")
    torch.testing.assert_close(rewards, plain, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(plain, _alone(backbone_head, PAIRS), atol=1e-10, rtol=1e-10)
    scale = max(g.abs().max().item() for g in plain_grads)
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b, atol=1e-6 * scale, rtol=1e-5)


def test_packing_several_pairs_per_row_gives_the_rewards_of_one_pair_per_row(classifier):
    pairs = PAIRS * 3
    filled, one_each = group_sequences(pairs, PAD), group_sequences(pairs, PAD, fill=False)
    assert one_each.rows.tolist() == list(range(len(pairs)))
    assert filled.rows.max() + 1 < len(pairs) * 2 // 3  # short pairs fill the long pairs' rows
    with torch.no_grad():
        torch.testing.assert_close(group_rewards(classifier, filled), group_rewards(classifier, one_each),
                                   atol=1e-10, rtol=1e-10)


def test_fill_rows_first_fit_decreasing():
    assert fill_rows([5, 3, 2, 4, 1]) == [0, 2, 2, 1, 1]  # rows of 5, longest first: [5], [4 1], [3 2]
    assert fill_rows([3, 3, 3], width=10) == [0, 0, 0]
    assert fill_rows([]) == []


def test_prefix_and_read_position_by_hand():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1  # each keeps one token of its own
    assert common_prefix_length([[7], [8]]) == 0
    assert read_position([4, 5, 0, 0], pad_id=0) == 1
    assert read_position([0, 0], pad_id=0) == 0


def test_pack_two_groups_in_one_row_by_hand():
    """Group 0: prompt [5, 6] with responses [7] and [8, 9]; group 1: prompt [4] with responses [3] and [2].
    Both in row 0, group 0 first: 5 6 7 8 9 4 3 2."""
    prompts, p_mask = torch.tensor([[5, 6], [0, 4]]), torch.tensor([[1, 1], [0, 1]])
    responses = torch.tensor([[7, 0], [8, 9], [3, 0], [2, 0]])
    r_mask = torch.tensor([[1, 0], [1, 1], [1, 0], [1, 0]])
    packed = pack(prompts, p_mask, responses, r_mask, torch.tensor([0, 0, 1, 1]), rows=torch.tensor([0, 0]))
    assert packed.ids.tolist() == [[5, 6, 7, 8, 9, 4, 3, 2]]
    assert packed.positions.tolist() == [[0, 1, 2, 2, 3, 0, 1, 1]]
    mask = packed.mask[0, 0].int().tolist()
    assert mask[4] == [1, 1, 0, 1, 1, 0, 0, 0]  # 9: its prompt, 8 and itself, not its sibling 7
    assert mask[5] == [0, 0, 0, 0, 0, 1, 0, 0]  # group 1's prompt sees nothing of group 0
    assert mask[7] == [0, 0, 0, 0, 0, 1, 0, 1]  # 2: its prompt and itself
    assert packed.prompt_start.tolist() == [0, 5] and packed.response_start.tolist() == [2, 3, 6, 7]
    assert packed.predict.tolist() == [1, 1, 3, 5, 5]  # 7, 8 at 6; 9 at 8; 3, 2 at 4


def test_last_layer_runs_its_position_wise_parts_at_the_read_positions_only(classifier):
    """The packed layout's last MLP computes one row per sequence (where its reward is read), the first MLP
    every token; afterwards the modules are as they were (a plain forward still gives the rewards)."""
    batch = group_sequences(PAIRS, PAD)
    layers = classifier.model.layers
    seen = {}
    hooks = [layers[i].mlp.gate_proj.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(i, args[0].shape))
             for i in (0, -1)]
    try:
        with torch.no_grad():
            group_rewards(classifier, batch, "packed")
    finally:
        for h in hooks:
            h.remove()
    assert seen[-1] == (2 * len(PAIRS), 32)
    assert seen[0][0] == batch.rows.max() + 1 and seen[0][1] > 2 * len(PAIRS)
    assert all("forward" not in vars(m) for m in (layers[-1].mlp, layers[-1].self_attn.q_proj))
    torch.testing.assert_close(_alone(classifier, PAIRS[:1]),
                               group_rewards(classifier, group_sequences(PAIRS[:1], PAD), "plain").detach())


def test_two_rewards_read_at_one_prefix_position_count_once(classifier):
    """Both suffixes nothing but the pad id: chosen and rejected read their rewards at the same prefix token,
    which the last layer must compute once (a duplicate would double its gradient)."""
    pairs = [([2, 5, 6, 0], [2, 5, 6, 0, 0]), ([3, 4], [3, 5])]
    batch = group_sequences(pairs, PAD)
    rewards, grads = _rewards_and_grads(classifier, batch, "packed")
    plain, plain_grads = _rewards_and_grads(classifier, batch, "plain")
    torch.testing.assert_close(rewards, plain, atol=1e-10, rtol=1e-10)
    scale = max(g.abs().max().item() for g in plain_grads)
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b, atol=1e-6 * scale, rtol=1e-5)
