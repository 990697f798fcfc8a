"""Models that cannot load (issue 16): damaged weights and unreachable hub names end in one line at once (no
SafetensorError traceback, no ~50 s of hub retries); devices are checked before any loading."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch

from rewardgauge.cli import main
from rewardgauge.errors import InputError
from rewardgauge.modeling import loading
from rewardgauge.modeling.loading import load_sequence_classifier, load_tokenizer, resolve_device

OFFLINE_MESSAGE = ("is neither a local folder nor a model in the Hugging Face cache, and the hub cannot be reached "
                   "(offline); pass the path of a local model folder (one with config.json), e.g. --model "
                   "./models/no-such-model")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    folder = tmp_path_factory.mktemp("m") / "model"
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=0)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "random_bytes", "empty"])
def test_damaged_safetensors_is_one_input_error(tiny_model, tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "random_bytes": os.urandom(len(data)),
                         "empty": b""}[damage])
    with pytest.raises(InputError, match=r"field 'model': cannot load: the \.safetensors weights are damaged"):
        load_sequence_classifier(folder)


@pytest.fixture
def hub_unreachable(monkeypatch):
    """No network, as on this machine and in CI, made explicit: the one probe request fails."""
    import huggingface_hub

    class NoNetwork:
        def head(self, *args, **kwargs):
            raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_session", NoNetwork)
    loading.hub_reachable.cache_clear()
    yield
    loading.hub_reachable.cache_clear()


def test_a_hub_name_that_cannot_be_reached_fails_at_once(hub_unreachable):
    start = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_tokenizer("rewardgauge-test/no-such-model")
    assert str(e.value) == f"rewardgauge-test/no-such-model: field 'model': {OFFLINE_MESSAGE}"
    assert time.perf_counter() - start < 10  # huggingface_hub alone retries for ~30-50 s


def test_hf_hub_offline_fails_without_any_request(monkeypatch, tmp_path, capsys):
    import huggingface_hub
    from huggingface_hub import constants

    def no_request():
        raise AssertionError("a request was made although HF_HUB_OFFLINE=1")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "get_session", no_request)
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    loading.hub_reachable.cache_clear()
    try:
        assert main(["rm", "eval", "--model", "rewardgauge-test/no-such-model", "--data", str(data)]) == 2
    finally:
        loading.hub_reachable.cache_clear()
    assert capsys.readouterr().err == f"rewardgauge: error: rewardgauge-test/no-such-model: field 'model': " \
                                      f"{OFFLINE_MESSAGE}\n"


def test_a_reachable_hub_is_asked_once_per_process(monkeypatch):
    import huggingface_hub

    calls = []

    class Session:
        def head(self, url, timeout):
            calls.append((url, timeout))

    monkeypatch.setattr(huggingface_hub, "get_session", Session)
    loading.hub_reachable.cache_clear()
    try:
        assert loading.hub_reachable() and loading.hub_reachable()
    finally:
        loading.hub_reachable.cache_clear()
    assert len(calls) == 1 and calls[0][1] == 3.0


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match=r"^field 'device': not a device: 'bogus' \(expected cpu, cuda"):
        resolve_device("bogus")
    with pytest.raises(InputError, match="field 'device': device 'meta' is not available on this machine"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device 'cuda' is not available on this machine"):
            resolve_device("cuda")
    else:
        with pytest.raises(InputError, match=r"device 'cuda:99' does not exist here"):
            resolve_device("cuda:99")
