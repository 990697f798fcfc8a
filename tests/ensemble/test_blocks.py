"""The blocks form: a shared trunk with each member's own top decoder block(s) and head (TrunkEnsemble)."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs
from rewardgauge.modeling.trunk_ensemble import _LAYER_BIASES, _LAYER_WEIGHTS, TrunkEnsemble
from rewardgauge.rewards.ensemble import EnsembleRewardModel
from rewardgauge.rewards.evaluation import LOW_DISAGREEMENT, relative_disagreement
from rewardgauge.rewards.pairs import score_pairs


def tiny_classifier(kv_heads: int = 4, layers: int = 4, bias: bool = False) -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=kv_heads, intermediate_size=48, pad_token_id=0, num_labels=1,
                         attention_bias=bias)
    return LlamaForSequenceClassification(config).eval()


def right_padded_batch() -> torch.Tensor:
    ids = torch.randint(1, 60, (4, 11), generator=torch.Generator().manual_seed(1))
    ids[0, 7:] = 0
    ids[2, 2:] = 0
    return ids


def member_as_classifier(ensemble: TrunkEnsemble, k: int) -> LlamaForSequenceClassification:
    """Member k on its own: an ordinary HF reward model with the trunk's layers and member k's top layers."""
    config = copy.deepcopy(ensemble.config)
    config.num_hidden_layers = len(ensemble.trunk.layers) + ensemble.n_layers
    config.num_labels = 1
    model = LlamaForSequenceClassification(config).eval()
    trunk_state = {k2: v for k2, v in ensemble.trunk.state_dict().items() if not k2.startswith("norm")}
    missing = model.model.load_state_dict(trunk_state, strict=False).missing_keys
    assert all(key.startswith(("layers.", "norm.")) for key in missing)
    names = {**_LAYER_WEIGHTS, **_LAYER_BIASES}
    with torch.no_grad():
        for j, block in enumerate(ensemble.blocks):
            layer = model.model.layers[len(ensemble.trunk.layers) + j]
            params = dict(layer.named_parameters())
            assert set(params) == {names[n] for n in block}  # every parameter of the layer comes from the member
            for name, value in block.items():
                params[names[name]].copy_(value[k])
        model.model.norm.weight.copy_(ensemble.final_norm[k])
        model.score.weight.copy_(ensemble.head[k][None])
    return model


@pytest.mark.parametrize(("layers", "kv_heads", "bias"), [(1, 4, False), (2, 2, False), (1, 2, True)])
def test_batched_members_equal_each_member_run_as_its_own_model(layers, kv_heads, bias):
    base = tiny_classifier(kv_heads, bias=bias)
    ensemble = TrunkEnsemble.from_backbone(copy.deepcopy(base).model, 3, layers=layers, seeds=[5, 6, 7],
                                           noise=0.3).eval()
    ids = right_padded_batch()
    with torch.no_grad():
        batched = ensemble(ids).logits
        alone = torch.stack([member_as_classifier(ensemble, k)(input_ids=ids, use_cache=False).logits[:, 0]
                             for k in range(3)], dim=1)
    assert batched.shape == (4, 3)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)
    assert (batched[:, 0] - batched[:, 1]).abs().max() > 1e-3  # members start apart


def test_without_noise_every_member_is_the_original_top_layer():
    base = tiny_classifier()
    ensemble = TrunkEnsemble.from_backbone(copy.deepcopy(base).model, 2, layers=1, noise=0.0).eval()
    with torch.no_grad():
        ensemble.head.copy_(base.score.weight.expand(2, -1))
        ids = right_padded_batch()
        torch.testing.assert_close(ensemble(ids).logits, base(input_ids=ids, use_cache=False).logits.expand(-1, 2))


def test_per_member_seeds_decide_the_starting_point():
    make = lambda seeds: TrunkEnsemble.from_backbone(tiny_classifier().model, 2, seeds=seeds, noise=0.1)  # noqa: E731
    a, b, c = make([0, 1]), make([0, 1]), make([0, 2])
    torch.testing.assert_close(a.blocks[0]["q"], b.blocks[0]["q"])
    torch.testing.assert_close(a.blocks[0]["q"][0], c.blocks[0]["q"][0])
    assert not torch.allclose(a.blocks[0]["q"][1], c.blocks[0]["q"][1])
    assert not torch.allclose(a.head[1], c.head[1])


def test_bad_shapes_and_backbones_are_refused():
    with pytest.raises(ValueError, match=r"member layers must be in \[1, 3\]"):
        TrunkEnsemble.from_backbone(tiny_classifier().model, 2, layers=4)
    with pytest.raises(ValueError, match="2 members need 2 seeds"):
        TrunkEnsemble.from_backbone(tiny_classifier().model, 2, seeds=[1])
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(ValueError, match="Llama-style decoder.*'gpt2'"):
        TrunkEnsemble.from_backbone(GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2)), 2)


def test_save_and_load_score_identically(tmp_path):
    ensemble = TrunkEnsemble.from_backbone(tiny_classifier().model, 3, layers=2, noise=0.2).eval()
    ensemble.save_pretrained(tmp_path)
    loaded = TrunkEnsemble.from_pretrained(tmp_path).eval()
    assert (loaded.k, loaded.n_layers, len(loaded.trunk.layers)) == (3, 2, 2)
    ids = right_padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, ensemble(ids).logits)


def test_trained_blocks_members_differ_and_score_like_their_batched_pass(ensembles, lang):
    rm = EnsembleRewardModel.from_pretrained(ensembles["blocks"], device="cpu")
    pairs = load_pairs(lang["heldout"])
    scores = score_pairs(rm, pairs)
    margins = scores.chosen.members - scores.rejected.members  # [K, N]
    assert relative_disagreement(margins) > LOW_DISAGREEMENT
    for a in range(3):
        for b in range(a + 1, 3):
            assert torch.corrcoef(margins[[a, b]])[0, 1] < 0.999
    trained = TrunkEnsemble.from_pretrained(ensembles["blocks"] / "model")
    assert (trained.k, trained.n_layers) == (3, 1)
    q = trained.blocks[0]["q"]
    assert not torch.allclose(q[0], q[1], atol=1e-3)


def test_blocks_form_refuses_more_member_layers_than_the_model_has(lang, tmp_path, capsys):
    code = main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out",
                 str(tmp_path / "e"), "--members", "2", "--ensemble-form", "blocks", "--member-layers", "4",
                 "--max-steps", "1", "--no-progress", "--save-every", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ensemble_form 'blocks': member layers must be in [1, 3] for a 4-layer model" in err
