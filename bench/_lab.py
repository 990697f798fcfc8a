"""What the benchmarks share: lab pairs and a tiny Llama from config whose tokenizer covers them; preference pairs
of a policy's own samples labelled by the lab."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def lab_pairs_and_model(root: Path, pairs: int, preset: str, seed: int) -> Path:
    """Write ``pairs`` lab training pairs and a ``preset`` Llama to ``root``; returns the pairs' JSONL path
    (the model is ``root / "model"``)."""
    from rewardgauge.lab.dataset import LabDataConfig, generate
    from rewardgauge.modeling.policy import init_model

    generate(LabDataConfig(out=str(root / "lab"), pairs=pairs, heldout_pairs=0, demos=0, rl_prompts=0, seed=seed),
             progress=False)
    data = root / "lab" / "train.jsonl"
    init_model([data], root / "model", preset=preset, seed=seed)
    return data


def policy_pairs(model_dir: Path, prompts: Sequence[str], max_new_tokens: int, seed: int, **labelling) -> list:
    """Two samples of the policy in ``model_dir`` per prompt, as a list of PreferencePair labelled by the lab
    (``label_policy_pairs``: ``labels`` gold or annotators, ``label_flip``)."""
    from rewardgauge.lab.dataset import label_policy_pairs

    samples = sample(model_dir, prompts, 2, max_new_tokens, seed)
    return label_policy_pairs(prompts, [s[0] for s in samples], [s[1] for s in samples], seed=seed, **labelling)


def sample(model_dir: Path, prompts: Sequence[str], n: int, max_new_tokens: int, seed: int,
           batch_responses: int = 256) -> list[list[str]]:
    """``n`` samples (temperature 1, as in RL) of the policy in ``model_dir`` per prompt."""
    import torch

    from rewardgauge.modeling.formatting import encode_prompts, ensure_pad_token
    from rewardgauge.modeling.generation import SamplingParams, TorchBackend, eos_token_ids_of
    from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer
    from rewardgauge.train.rollout import decode_responses

    tokenizer = load_tokenizer(model_dir)
    backend = TorchBackend(load_causal_lm(model_dir).eval(), eos_token_ids_of(tokenizer),
                           ensure_pad_token(tokenizer))
    batch = max(1, batch_responses // n)
    texts: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            gen = backend.generate(encode_prompts(tokenizer, prompts[i:i + batch], 64),
                                   SamplingParams(max_new_tokens), n, seed=seed * 100_003 + i)
            texts += decode_responses(tokenizer, gen)
    return [texts[j * n:(j + 1) * n] for j in range(len(prompts))]
