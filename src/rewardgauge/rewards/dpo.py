"""A DPO policy's implicit reward, r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)), as a RewardModel.

DPO trains a policy whose log-ratio to its reference *is* a reward model (Rafailov et al. 2023, eq. 5; the
prompt's beta * log Z(x) is left out, so rewards compare responses to one prompt, as a Bradley-Terry reward
does). Loading a ``rewardgauge dpo`` run folder as a reward model lets the policy be evaluated on held-out
pairs, audited and monitored like an explicit reward model, which answers the complaint that DPO leaves
"no separate model to monitor".

The folder holds the policy and ``dpo.json``: ``{"beta": ..., "reference": PATH}``, the reference's path
relative to the folder (or a hub name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from rewardgauge.data.records import Prompt
from rewardgauge.errors import InputError
from rewardgauge.modeling.formatting import encode_pairs, ensure_pad_token, pad
from rewardgauge.modeling.logprobs import response_logprobs
from rewardgauge.rewards.base import Meta, RewardModel, Scores
from rewardgauge.rewards.loading import DPO_FILE


class DPOImplicitReward(RewardModel):
    """beta * (log pi(y|x) - log pi_ref(y|x)) summed over the response's tokens.

    ``aspects`` carry the two log-probabilities (``logp_policy``, ``logp_reference``), so a report can show
    whether a reward rose because the policy liked a response more or the reference liked it less.
    """

    name = "dpo"

    def __init__(self, policy: torch.nn.Module, reference: torch.nn.Module, tokenizer, beta: float,
                 batch_size: int = 32, device: str | torch.device | None = None):
        self.device = torch.device(device) if device else next(policy.parameters()).device
        self.policy = policy.to(self.device).eval()
        self.reference = reference.to(self.device).eval()
        for p in (*self.policy.parameters(), *self.reference.parameters()):
            p.requires_grad_(False)
        self.tokenizer, self.beta, self.batch_size = tokenizer, beta, batch_size
        self.pad_id = ensure_pad_token(tokenizer)
        self.sort_key = self._length

    def _length(self, prompt: Prompt, response: str) -> int:
        return len(prompt) + len(response)  # characters: cheap, and orders batches well enough

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | None = None,
                        batch_size: int = 32) -> DPOImplicitReward:
        from rewardgauge.modeling.loading import load_causal_lm, load_tokenizer

        folder = Path(folder)
        try:
            spec = json.loads((folder / DPO_FILE).read_text(encoding="utf-8"))
            beta, reference = float(spec["beta"]), str(spec["reference"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"not a DPO run folder ({type(e).__name__}: {e})", path=folder / DPO_FILE) from None
        ref_path = folder / reference
        ref_source = str(ref_path) if ref_path.is_dir() else reference
        tokenizer = load_tokenizer(folder)
        if load_tokenizer(ref_source, field="reference").get_vocab() != tokenizer.get_vocab():
            raise InputError("the reference's tokenizer differs from the policy's", path=ref_source,
                             field="reference")
        return cls(load_causal_lm(folder, dtype=torch.float32), load_causal_lm(ref_source, field="reference",
                                                                                dtype=torch.float32),
                   tokenizer, beta, batch_size=batch_size, device=device)

    @torch.inference_mode()
    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        enc = encode_pairs(self.tokenizer, prompts, responses)
        prompt_ids, prompt_mask = pad([x[:n] for x, n in zip(enc.ids, enc.prompt_lens)], self.pad_id, side="left")
        response_ids, response_mask = pad([x[n:] for x, n in zip(enc.ids, enc.prompt_lens)], self.pad_id)
        tensors = [t.to(self.device) for t in (prompt_ids, prompt_mask, response_ids, response_mask)]
        logp = response_logprobs(self.policy, *tensors, layout="plain").logprobs.sum(-1).float().cpu()
        ref = response_logprobs(self.reference, *tensors, layout="plain").logprobs.sum(-1).float().cpu()
        return Scores(reward=self.beta * (logp - ref), aspects={"logp_policy": logp, "logp_reference": ref})
