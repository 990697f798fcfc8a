"""Load Hugging Face models and tokenizers from a folder or a hub name, with errors a user can act on."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError

from rewardgauge.errors import InputError


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars (a fresh reward head is *meant* to be missing)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def check_model_source(name: str | os.PathLike, field: str = "model") -> str:
    """A local folder must exist and hold a ``config.json``; anything else is taken as a hub name."""
    name = str(name)
    path = Path(name).expanduser()
    # "org/name" and "name" are hub names; anything else that looks like a path must be a local folder.
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        if not path.is_dir():
            raise InputError("model folder not found", path=name, field=field)
        if not (path / "config.json").is_file():
            raise InputError("not a Hugging Face model folder (no config.json)", path=name, field=field)
        return str(path)
    return name


def resolve_device(name: str | None, field: str = "device") -> torch.device:
    """The device to run on: ``name`` (cpu, cuda, cuda:N, mps, ...) checked to exist on this machine, or cuda
    when available and cpu otherwise. A bad name is an InputError now, not a traceback after loading a model."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"not a device: {name!r} (expected cpu, cuda, cuda:N or mps)", field=field) from None
    if device.type == "cpu":
        return device
    backend = torch.backends.mps if device.type == "mps" else getattr(torch, device.type, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        raise InputError(f"device {name!r} is not available on this machine", field=field)
    count = getattr(backend, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise InputError(f"device {name!r} does not exist here ({count()} {device.type} device(s))", field=field)
    return device


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers, asked once per process: not when ``HF_HUB_OFFLINE=1``, and not when
    one request without retries fails within ``timeout`` s (huggingface_hub would otherwise retry each file
    5 times with back-off, about 30-50 s of retry messages before the same error)."""
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        huggingface_hub.get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # whatever the HTTP client raises for no network, no DNS, a refused proxy
        return False
    return True


def _offline_error(name: str, field: str) -> InputError:
    return InputError("is neither a local folder nor a model in the Hugging Face cache, and the hub cannot be "
                      "reached (offline); pass the path of a local model folder (one with config.json), e.g. "
                      f"--{field.replace('_', '-')} ./models/{name.rsplit('/', 1)[-1]}", path=name, field=field)


def _load(loader, name: str, field: str, **kwargs):
    source = check_model_source(name, field)
    offline = not Path(source).is_dir() and not hub_reachable()
    if offline:
        kwargs["local_files_only"] = True  # a model in the local cache still loads, with no request
    try:
        with quiet_transformers():
            return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError, SafetensorError) as e:  # hub name unknown, damaged weights, unknown architecture
        if offline:
            raise _offline_error(name, field) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, SafetensorError):
            first = f"the .safetensors weights are damaged or not safetensors ({first})"
        raise InputError(f"cannot load: {first}", path=name, field=field) from None


def register_pooled_reward_config() -> None:
    """Make ``AutoConfig`` know our portable reward model's config in this process, so that reading such a
    folder (``AutoTokenizer`` reads its config.json too) never asks whether to run the code that travels in
    it: rewardgauge uses its own copy of that code. Other processes load it with ``trust_remote_code=True``."""
    from transformers import AutoConfig

    from rewardgauge.modeling.pooled_reward_model import PooledRewardConfig

    AutoConfig.register(PooledRewardConfig.model_type, PooledRewardConfig, exist_ok=True)


def load_tokenizer(name: str | os.PathLike, field: str = "model"):
    from transformers import AutoTokenizer

    register_pooled_reward_config()
    return _load(AutoTokenizer, str(name), field)


def load_causal_lm(name: str | os.PathLike, field: str = "model", **kwargs):
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, str(name), field, **kwargs)


def load_sequence_classifier(name: str | os.PathLike, num_labels: int | None = None, field: str = "model",
                             **kwargs):
    """A reward model: a folder as ``rm train`` saved it, or any backbone given a new head of ``num_labels``.

    ``AutoModelForSequenceClassification`` where transformers has a class for the architecture; otherwise
    the backbone (``AutoModel``) with our linear head (``modeling.heads``). Loaded in float32 unless
    ``dtype`` says otherwise, as reward heads train best in it. Extra ``kwargs`` (``id2label``) go to the config.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from rewardgauge.modeling.heads import HEAD_FILE, BackboneRewardModel
    from rewardgauge.modeling.pooled_reward_model import PooledRewardConfig, PooledRewardModel
    from rewardgauge.modeling.trunk_ensemble import MEMBERS_FILE, TrunkEnsemble

    kwargs.setdefault("dtype", torch.float32)
    source = check_model_source(name, field)
    register_pooled_reward_config()
    if Path(source, HEAD_FILE).is_file():  # saved before the portable form: backbone + reward_head.safetensors
        return _load(BackboneRewardModel, str(name), field, dtype=kwargs["dtype"])
    if saved_model_type(source) == PooledRewardConfig.model_type:
        # Our own class, imported: the code copy in the folder is for other programs and is never executed.
        portable = _load(PooledRewardModel, str(name), field, dtype=kwargs["dtype"])
        model = BackboneRewardModel.from_portable(portable, num_labels)
        for key in ("id2label", "label2id"):
            if key in kwargs:
                setattr(model.config, key, kwargs[key])
        return model
    if Path(source, MEMBERS_FILE).is_file():
        return _load(TrunkEnsemble, str(name), field, dtype=kwargs["dtype"])
    config = _load(AutoConfig, str(name), field)
    pooling = sentence_transformers_pooling(source)
    if config.model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES and pooling is None:
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
        return _load(AutoModelForSequenceClassification, str(name), field, **kwargs)
    labels = {k: kwargs.pop(k) for k in ("id2label", "label2id") if k in kwargs}
    backbone = _load(AutoModel, str(name), field, **kwargs)
    backbone.config.num_labels = num_labels or 1
    for key, value in labels.items():
        setattr(backbone.config, key, value)
    return BackboneRewardModel(backbone, num_labels=num_labels or 1, pooling=pooling or "last")


def saved_model_type(folder: str | os.PathLike) -> str | None:
    """``model_type`` in a local folder's ``config.json`` (None for a hub name or an unreadable config)."""
    try:
        return json.loads(Path(folder, "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def load_token_classifier(name: str | os.PathLike, num_labels: int = 1, field: str = "model", **kwargs):
    """One output per token (a process reward model's step head): a folder ``prm train`` saved, or any
    backbone given a new head. ``AutoModelForTokenClassification`` where transformers has a class for the
    architecture, else the backbone with our linear head on every token (``pooling="token"``)."""
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

    from rewardgauge.modeling.heads import HEAD_FILE, BackboneRewardModel
    from rewardgauge.modeling.pooled_reward_model import PooledRewardConfig

    kwargs.setdefault("dtype", torch.float32)
    source = check_model_source(name, field)
    if saved_model_type(source) == PooledRewardConfig.model_type:  # a sequence reward model, portable form
        model = load_sequence_classifier(name, field=field, dtype=kwargs["dtype"])
        return BackboneRewardModel(model.backbone, num_labels, "token")
    if Path(source, HEAD_FILE).is_file():
        model = _load(BackboneRewardModel, str(name), field, dtype=kwargs["dtype"])
        # A sequence reward model's folder: keep its backbone, give it a fresh per-token head.
        return model if model.pooling == "token" else BackboneRewardModel(model.backbone, num_labels, "token")
    config = _load(AutoConfig, str(name), field)
    if config.model_type in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
        return _load(AutoModelForTokenClassification, str(name), field, num_labels=num_labels, **kwargs)
    backbone = _load(AutoModel, str(name), field, **kwargs)
    backbone.config.num_labels = num_labels
    return BackboneRewardModel(backbone, num_labels=num_labels, pooling="token")


def sentence_transformers_pooling(folder: str | os.PathLike) -> str | None:
    """``mean`` or ``cls`` when ``folder`` is a sentence-transformers model whose pooling module says so
    (``modules.json`` -> ``1_Pooling/config.json``); None otherwise (not a local folder, other poolings)."""
    modules = Path(folder, "modules.json")
    if not modules.is_file():
        return None
    try:
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Pooling"):
                cfg = json.loads(Path(folder, module.get("path", ""), "config.json").read_text())
                if cfg.get("pooling_mode_mean_tokens"):
                    return "mean"
                if cfg.get("pooling_mode_cls_token"):
                    return "cls"
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable sentence-transformers layout: load as a plain transformers model
    return None


def is_decoder_only(config) -> bool:
    """True for causal decoders (Llama, Qwen, GPT-2, ...), False for encoders such as BERT.

    In a decoder, a right-padded token never influences an earlier one, so a right-padded batch needs no
    attention mask: the kernel can take its causal fast path.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    return (kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
            and kind not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
            and kind != "xlnet")  # XLNet's classifier attends both ways


def reward_logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  decoder_only: bool) -> torch.Tensor:
    """[B, num_labels] rewards of a right-padded batch from a sequence-classification model."""
    if decoder_only:
        # The head pools the last non-pad token (config.pad_token_id); no mask and no KV cache needed.
        return model(input_ids=input_ids, use_cache=False).logits
    return model(input_ids=input_ids, attention_mask=attention_mask).logits


def reward_features(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    decoder_only: bool) -> torch.Tensor:
    """[B, hidden] the last hidden state where the reward head reads it, of a right-padded batch: the last
    real token for a decoder (the token whose logits are the reward), the first ([CLS]) for an encoder. The
    monitor's latent-outlier detector measures distances in this space (InfoRM, Miao et al. 2024)."""
    if decoder_only:
        hidden = model(input_ids=input_ids, use_cache=False, output_hidden_states=True).hidden_states[-1]
        last = attention_mask.long().sum(-1).clamp_min(1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]
    hidden = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[-1]
    return hidden[:, 0]
