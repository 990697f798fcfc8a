import pytest
import torch

from rewardgauge.modeling.formatting import pad
from rewardgauge.modeling.generation import SamplingParams, TorchBackend, generate, sample_next


def _gen(model, tokenizer, prompts, params, group_size=1, seed=0, eos=None, share_prefill=True):
    return generate(model, prompts, params, eos_token_ids=eos or [tokenizer.eos_token_id],
                    pad_token_id=tokenizer.pad_token_id, group_size=group_size,
                    generator=torch.Generator().manual_seed(seed), share_prefill=share_prefill)


def test_greedy_equals_hugging_face_generate(tiny_lm, prompt_ids):
    model, tokenizer = tiny_lm
    eos = [tokenizer.eos_token_id, 9]  # a second stop token that greedy decoding reaches
    ours = _gen(model, tokenizer, prompt_ids, SamplingParams(max_new_tokens=16, temperature=0), eos=eos)
    ids, mask = pad(prompt_ids, tokenizer.pad_token_id, side="left")
    hf = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=16,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)[:, ids.shape[1]:]
    assert torch.equal(ours.prompt_ids, ids)
    for row, n, theirs in zip(ours.response_ids, ours.response_lengths.tolist(), hf):
        assert row[:n].tolist() == theirs[:n].tolist()
        assert set(theirs[n:].tolist()) <= {tokenizer.pad_token_id}
    assert ours.finished.any() and not ours.finished.all()  # both kinds of stop are covered


def test_left_padding_does_not_change_a_prompts_response(tiny_lm, prompt_ids):
    model, tokenizer = tiny_lm
    params = SamplingParams(max_new_tokens=12, temperature=0)
    batch = _gen(model, tokenizer, prompt_ids, params)
    assert batch.prompt_mask[1].tolist().count(0) > 0  # the short prompt is left-padded in the batch
    alone = _gen(model, tokenizer, [prompt_ids[1]], params)
    assert batch.response_token_lists()[1] == alone.response_token_lists()[0]


def test_shared_prefill_gives_the_same_samples(tiny_lm, prompt_ids):
    model, tokenizer = tiny_lm
    params = SamplingParams(max_new_tokens=12, temperature=1.0, top_p=0.95)
    shared = _gen(model, tokenizer, prompt_ids, params, group_size=4, seed=3)
    plain = _gen(model, tokenizer, prompt_ids, params, group_size=4, seed=3, share_prefill=False)
    assert shared.response_ids.shape[0] == 12 and shared.prompt_ids.shape[0] == 3
    assert torch.equal(shared.response_ids, plain.response_ids)
    assert torch.equal(shared.response_mask, plain.response_mask)
    # the 4 samples of a group differ (sampling, not 4 copies of one)
    assert len({tuple(r) for r in shared.response_token_lists()[:4]}) > 1


def test_seed_determines_the_samples(tiny_lm, prompt_ids):
    model, tokenizer = tiny_lm
    params = SamplingParams(max_new_tokens=10)
    a = _gen(model, tokenizer, prompt_ids, params, group_size=2, seed=1)
    b = _gen(model, tokenizer, prompt_ids, params, group_size=2, seed=1)
    c = _gen(model, tokenizer, prompt_ids, params, group_size=2, seed=2)
    assert torch.equal(a.response_ids, b.response_ids)
    assert not torch.equal(a.response_ids, c.response_ids)
    backend = TorchBackend(model, [tokenizer.eos_token_id], tokenizer.pad_token_id)
    assert torch.equal(backend.generate(prompt_ids, params, group_size=2, seed=1).response_ids, a.response_ids)


def test_eos_stops_a_row_and_max_length_cuts_the_others(tiny_lm, prompt_ids):
    model, tokenizer = tiny_lm
    params = SamplingParams(max_new_tokens=10)
    never = [len(tokenizer)]  # an id outside the vocabulary: no row stops
    free = _gen(model, tokenizer, prompt_ids, params, group_size=2, seed=5, eos=never)
    assert free.response_ids.shape[1] == 10 and not free.finished.any()
    stop = int(free.response_ids[0, 3])  # declare row 0's 4th token a stop token
    cut = _gen(model, tokenizer, prompt_ids, params, group_size=2, seed=5, eos=[stop])
    lengths = cut.response_lengths.tolist()
    for row, (before, after, n) in enumerate(zip(free.response_token_lists(), cut.response_token_lists(), lengths)):
        first = before.index(stop) + 1 if stop in before else 10
        assert n == first and after == before[:first], row  # same tokens up to the row's own stop
        assert bool(cut.finished[row]) == (stop in before)
        assert set(cut.response_ids[row, n:].tolist()) <= {tokenizer.pad_token_id}
    assert lengths[0] == 4 and max(lengths) == 10


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.tensor([[0.1, 2.0, 1.9, -1.0], [3.0, 0.0, 2.9, 0.0]])
    g = torch.Generator().manual_seed(0)
    for params in (SamplingParams(top_k=1), SamplingParams(top_p=1e-6), SamplingParams(temperature=0)):
        for _ in range(20):
            assert sample_next(logits, params, g).tolist() == [1, 0]
    # top_p = 0.6 keeps tokens 1 and 2 of row 0 (probabilities 0.46, 0.42 before renormalising)
    draws = {sample_next(logits[:1], SamplingParams(top_p=0.6), g).item() for _ in range(200)}
    assert draws == {1, 2}
    with pytest.raises(ValueError):
        SamplingParams(top_p=0.0)
