import pytest
import torch

from rewardgauge.modeling.generation import SamplingParams, generate
from rewardgauge.modeling.logprobs import pack, response_logprobs, shared_prefix_forward, token_entropy


def _rollout(tiny_lm, prompt_ids, group_size=4):
    model, tokenizer = tiny_lm
    return generate(model, prompt_ids, SamplingParams(max_new_tokens=9), eos_token_ids=[tokenizer.eos_token_id, 9],
                    pad_token_id=tokenizer.pad_token_id, group_size=group_size,
                    generator=torch.Generator().manual_seed(0))


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("layout", ["packed", "shared"])
def test_prompt_sharing_layouts_equal_the_plain_forward_in_values_and_gradients(tiny_lm, prompt_ids, layout):
    """In float64, where the paths agree to 1e-10 in value. Gradients agree to about 1e-7 of their scale:
    Llama's RMSNorm computes in float32 whatever the model's dtype, and a shared prompt sums the G responses'
    gradients before the prompt's norms (the plain path after), which rounds differently."""
    import copy

    gen = _rollout(tiny_lm, prompt_ids)
    model = copy.deepcopy(tiny_lm[0]).double()
    assert gen.response_mask.min() == 0  # some responses stopped early: padding is exercised
    weights = torch.linspace(-1, 1, gen.response_ids.numel(), dtype=torch.float64).reshape(gen.response_ids.shape)
    results = {}
    for name in (layout, "plain"):
        model.zero_grad(set_to_none=True)
        out = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask,
                                gen.group_size, layout=name, with_entropy=True)
        (out.logprobs * weights).sum().backward()
        assert not out.entropy.requires_grad
        results[name] = (out.logprobs.detach(), out.entropy.detach(), _grads(model))
    (lp_s, ent_s, g_s), (lp_p, ent_p, g_p) = results[layout], results["plain"]
    torch.testing.assert_close(lp_s, lp_p, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ent_s, ent_p, atol=1e-10, rtol=1e-10)
    scale = max(g.abs().max().item() for g in g_p)
    assert scale > 1.0
    for a, b in zip(g_s, g_p):
        torch.testing.assert_close(a, b, atol=1e-6 * scale, rtol=1e-5)


def test_logprobs_equal_an_unpadded_forward_of_each_sequence(tiny_lm, prompt_ids):
    model, _ = tiny_lm
    gen = _rollout(tiny_lm, prompt_ids, group_size=2)
    with torch.no_grad():
        out = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask, 2)
        for row, response in enumerate(gen.response_token_lists()):
            prompt = prompt_ids[row // 2]
            logits = model(input_ids=torch.tensor([prompt + response])).logits[0]
            logp = logits[len(prompt) - 1:-1].log_softmax(-1)
            expected = logp[torch.arange(len(response)), torch.tensor(response)]
            torch.testing.assert_close(out.logprobs[row, :len(response)], expected, atol=1e-5, rtol=1e-5)
            assert out.logprobs[row, len(response):].abs().sum() == 0


def test_temperature_scales_the_logits(tiny_lm, prompt_ids):
    model, _ = tiny_lm
    gen = _rollout(tiny_lm, prompt_ids, group_size=1)
    with torch.no_grad():
        hot = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask,
                                temperature=2.0, with_entropy=True)
        cold = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask,
                                 with_entropy=True)
    mask = gen.response_mask.bool()
    assert (hot.entropy[mask] > cold.entropy[mask]).all()


def test_entropy_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert token_entropy(logits).item() == torch.tensor(1.5 * 0.6931471805599453).item()


def test_shared_prefix_forward_serves_two_suffixes_per_prompt(tiny_lm, prompt_ids):
    """The form a reward model or DPO uses: chosen and rejected on one prompt (K = 2)."""
    from rewardgauge.modeling.formatting import pad

    model, tokenizer = tiny_lm
    ids, mask = pad(prompt_ids[:2], tokenizer.pad_token_id, side="left")
    suffixes = [[10, 11, 12], [13], [14, 15], [16, 17, 18]]
    s_ids, s_mask = pad(suffixes, tokenizer.pad_token_id)
    with torch.no_grad():
        _, out = shared_prefix_forward(model, ids, mask, s_ids, s_mask, repeats=2)
        for row, suffix in enumerate(suffixes):
            alone = model(input_ids=torch.tensor([prompt_ids[row // 2] + suffix])).logits[0, -len(suffix):]
            torch.testing.assert_close(out.logits[row, :len(suffix)], alone, atol=1e-5, rtol=1e-5)


def test_responses_can_name_their_prompt_in_any_order(tiny_lm, prompt_ids):
    """A micro-batch of responses from several groups, in any order (e.g. sorted by length)."""
    model, _ = tiny_lm
    gen = _rollout(tiny_lm, prompt_ids, group_size=2)
    rows = torch.tensor([5, 0, 3, 2])
    index = rows // 2
    with torch.no_grad():
        whole = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask, 2)
        for layout in ("packed", "shared", "plain"):
            part = response_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.response_ids[rows],
                                     gen.response_mask[rows], index, layout=layout)
            torch.testing.assert_close(part.logprobs, whole.logprobs[rows], atol=1e-5, rtol=1e-5)


def test_pack_by_hand():
    """Prompt [5, 6] (left-padded) with responses [7, 8] and [9]; prompt [4] with response [3, 2, 1]."""
    prompts, p_mask = torch.tensor([[0, 5, 6], [0, 0, 4]]), torch.tensor([[0, 1, 1], [0, 0, 1]])
    responses = torch.tensor([[7, 8, 0], [3, 2, 1], [9, 0, 0]])
    r_mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    packed = pack(prompts, p_mask, responses, r_mask, torch.tensor([0, 1, 0]), pad_id=0)
    assert packed.ids.tolist() == [[5, 6, 7, 8, 9], [4, 3, 2, 1, 0]]
    assert packed.positions.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 0]]
    row0, row1 = packed.mask[0, 0].int().tolist(), packed.mask[1, 0].int().tolist()
    assert row0[3] == [1, 1, 1, 1, 0]  # token 8: its prompt, then 7 and itself
    assert row0[4] == [1, 1, 0, 0, 1]  # token 9: its prompt, not the sibling response
    assert row0[1] == [1, 1, 0, 0, 0]  # prompt tokens see only their prompt, causally
    assert row1[2] == [1, 1, 1, 0, 0] and row1[4] == [0, 0, 0, 0, 1]  # padding sees only itself here
    # 7 and 9 are predicted at the prompt's last token (flat 1), 8 at 7 (2); 3 at [4] (5), 2 at 3 (6), 1 at 2 (7)
    assert packed.predict.tolist() == [1, 2, 5, 6, 7, 1]
