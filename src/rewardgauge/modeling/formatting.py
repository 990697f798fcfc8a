"""(prompt, response) -> token ids, the one place where that happens for policies and reward models.

With a chat template (chat models, our word tokenizer) the prompt is rendered as chat messages and the
response as the assistant turn, exactly as ``tokenizer.apply_chat_template`` does. Without one (an encoder
such as MiniLM: no template, no EOS) the two are a text pair, ``tokenizer(prompt, response)``, which for
BERT gives ``[CLS] prompt [SEP] response [SEP]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardgauge.data.records import Prompt, prompt_text


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_format(tokenizer) -> str:
    """``"chat_template"`` or ``"text_pair"``: how this tokenizer's inputs are formatted."""
    return "chat_template" if has_chat_template(tokenizer) else "text_pair"


def to_messages(prompt: Prompt) -> list[dict[str, str]]:
    """A text prompt is one user turn; a list of messages is kept as is."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """The prompt as the model sees it before its response (with the generation prompt for chat models)."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(to_messages(prompt), tokenize=False, add_generation_prompt=True)
    return prompt_text(prompt)


def encode_prompts(tokenizer, prompts: Sequence[Prompt], max_length: int | None = None) -> list[list[int]]:
    """Token ids of prompts ready for generation; longer ones keep their last ``max_length`` tokens."""
    texts = [render_prompt(tokenizer, p) for p in prompts]
    # A rendered chat template already holds its special tokens (BOS); tokenizing must not add them again.
    ids = tokenizer(texts, add_special_tokens=not has_chat_template(tokenizer))["input_ids"]
    return [x[-max_length:] if max_length else x for x in ids]


@dataclass
class Encoded:
    """Token ids of (prompt, response) sequences and where each response starts (``prompt_lens``)."""

    ids: list[list[int]]
    prompt_lens: list[int]
    truncated: int = 0  # how many sequences were cut to max_length


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _encode_chat(tokenizer, prompts, responses) -> tuple[list[list[int]], list[int]]:
    heads, tails, whole = [], [], []
    for prompt, response in zip(prompts, responses):
        messages = to_messages(prompt)
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}],
                                             tokenize=False)
        heads.append(head)
        # Tokenizing prompt and response apart keeps the boundary exact even for BPE, whose tokens could
        # otherwise merge across it; templates whose prompt is not a prefix of the full text are split later.
        tails.append(full[len(head):] if full.startswith(head) else None)
        whole.append(full)
    head_ids = tokenizer(heads, add_special_tokens=False)["input_ids"]
    tail_idx = [i for i, t in enumerate(tails) if t is not None]
    tail_ids = tokenizer([tails[i] for i in tail_idx], add_special_tokens=False)["input_ids"] if tail_idx else []
    by_index = dict(zip(tail_idx, tail_ids))
    ids, prompt_lens = [], []
    for i, h in enumerate(head_ids):
        if i in by_index:
            ids.append(h + by_index[i])
            prompt_lens.append(len(h))
        else:
            full_ids = tokenizer(whole[i], add_special_tokens=False)["input_ids"]
            ids.append(full_ids)
            prompt_lens.append(_common_prefix(h, full_ids))
    return ids, prompt_lens


def _fit_text_pair(prompt_len: int, response_len: int, budget: int) -> tuple[int, int]:
    """How many tokens of a (prompt, response) pair to keep within ``budget``: (from the prompt's end,
    from the response's start).

    The response is what is being judged, so it has priority, but the prompt keeps at least a quarter of
    the budget: its last turn is the question the response answers (a right-truncating "longest_first" cut
    drops exactly that turn of a long dialogue first).
    """
    if prompt_len + response_len <= budget:
        return prompt_len, response_len
    keep_response = min(response_len, budget - min(prompt_len, budget // 4))
    return min(prompt_len, budget - keep_response), keep_response


def _cut_to_fit(tokenizer, texts: list[str], responses: list[str], max_length: int) -> tuple[list[str], list[str]]:
    """Cut texts at token boundaries (character offsets) so each pair encodes to about ``max_length``."""
    budget = max(2, max_length - tokenizer.num_special_tokens_to_add(pair=True))
    p_enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    r_enc = tokenizer(responses, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    cut_texts, cut_responses = [], []
    for text, response, p_off, r_off in zip(texts, responses, p_enc["offset_mapping"], r_enc["offset_mapping"]):
        keep_p, keep_r = _fit_text_pair(len(p_off), len(r_off), budget)
        cut_texts.append(text[p_off[len(p_off) - keep_p][0]:] if keep_p else "")
        cut_responses.append(response[:r_off[keep_r - 1][1]] if keep_r else "")
    return cut_texts, cut_responses


def _encode_text_pair(tokenizer, prompts, responses, max_length) -> tuple[list[list[int]], list[int], int]:
    texts, responses = [prompt_text(p) for p in prompts], list(responses)
    enc = tokenizer(texts, responses, verbose=False)  # too-long rows are cut below: no warning for them
    long = [i for i, x in enumerate(enc["input_ids"]) if max_length and len(x) > max_length]
    if long:  # only these are encoded again, cut by _fit_text_pair; "longest_first" catches any leftover
        long_texts, long_responses = [texts[i] for i in long], [responses[i] for i in long]
        if tokenizer.is_fast:  # offsets need a fast tokenizer
            long_texts, long_responses = _cut_to_fit(tokenizer, long_texts, long_responses, max_length)
        cut = tokenizer(long_texts, long_responses, truncation="longest_first", max_length=max_length)
    where = {i: (enc, i) for i in range(len(texts))} | {i: (cut, k) for k, i in enumerate(long)}
    eos = tokenizer.eos_token_id
    ids, prompt_lens = [], []
    for i in range(len(texts)):
        row, x = where[i]
        seq_ids, x = row.sequence_ids(x), row["input_ids"][x]
        prompt_lens.append(seq_ids.index(1) if 1 in seq_ids else len(x))
        # A causal LM without a chat template still needs an EOS after the response to learn to stop.
        if eos is not None and tokenizer.sep_token_id is None and (not x or x[-1] != eos):
            x = (x + [eos])[-max_length:] if max_length else x + [eos]
        ids.append(x)
    return ids, prompt_lens, len(long)


def encode_pairs(tokenizer, prompts: Sequence[Prompt], responses: Sequence[str],
                 max_length: int | None = None) -> Encoded:
    """Token ids of each (prompt, response) as one sequence, and the length of its prompt part.

    Sequences longer than ``max_length`` lose tokens from the left (chat) so the response's end, where a
    decoder reward model reads its score, survives; a text pair (encoders) keeps the start of the response and
    the end of the prompt (see ``_fit_text_pair``) and the encoder's special tokens.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if not has_chat_template(tokenizer):
        ids, prompt_lens, truncated = _encode_text_pair(tokenizer, prompts, responses, max_length)
        return Encoded(ids, prompt_lens, truncated)
    ids, prompt_lens = _encode_chat(tokenizer, prompts, responses)
    truncated = 0
    if max_length:
        for i, x in enumerate(ids):
            cut = len(x) - max_length
            if cut > 0:
                ids[i] = x[cut:]
                prompt_lens[i] = max(0, prompt_lens[i] - cut)
                truncated += 1
    return Encoded(ids, prompt_lens, truncated)


def pad(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence: ``(input_ids [B, T], attention_mask [B, T])``.

    Right padding for training and scoring (sequence-classification heads pool the last non-pad token, so
    they need ``config.pad_token_id``); left padding for batched generation.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if not len(s):
            continue
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, cols] = torch.as_tensor(s, dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def ensure_pad_token(tokenizer, model=None) -> int:
    """Give the tokenizer a pad token (its own, else EOS, else UNK, as TRL does) and tell the model's config.

    A sequence-classification head locates the last real token through ``config.pad_token_id``.
    """
    if tokenizer.pad_token_id is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ValueError("tokenizer has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        text_config = model.config.get_text_config()
        if text_config is not model.config:
            text_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer.pad_token_id


@dataclass
class StepEncoded:
    """Token ids of (prompt, solution) sequences and, per step, the index of the step's last token (where a
    process reward model reads its score); ``None`` for a step cut off by ``max_length``."""

    ids: list[list[int]]
    boundaries: list[list[int | None]]
    truncated: int = 0


def encode_steps(tokenizer, prompts: Sequence[Prompt], step_lists: Sequence[Sequence[str]], separator: str,
                 max_length: int | None = None) -> StepEncoded:
    """Encode each solution (its steps joined by ``separator``) exactly as ``encode_pairs`` encodes a response,
    and find each step's last token from the tokenizer's character offsets.

    Too-long sequences are cut as ``encode_pairs`` cuts them (chat: from the left, so late steps survive;
    text pair: the response keeps its start); steps whose last token is cut away get ``None``.
    """
    from rewardgauge.data.steps import step_spans

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("step boundaries need a fast tokenizer (character offsets)")
    texts, ends = zip(*(step_spans(list(steps), separator) for steps in step_lists)) if step_lists else ((), ())
    full = encode_pairs(tokenizer, prompts, texts)
    response = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    chat = has_chat_template(tokenizer)
    ids_out, bounds_out, truncated = [], [], 0
    for i, text in enumerate(texts):
        ids, start = full.ids[i], full.prompt_lens[i]
        offsets = response["offset_mapping"][i]
        trailing = len(ids) - start - len(offsets)  # template or special tokens after the response
        counts = [sum(1 for a, _ in offsets if a < end) for end in ends[i]]  # response tokens up to step k
        kept = len(offsets)
        if max_length and len(ids) > max_length:
            truncated += 1
            if chat:
                cut = len(ids) - max_length
                ids, start = ids[cut:], start - cut
            else:
                cut_enc = encode_pairs(tokenizer, [prompts[i]], [text], max_length)
                ids, start = cut_enc.ids[0], cut_enc.prompt_lens[0]
                kept = len(ids) - start - trailing
        bounds = [start + c - 1 if 0 < c <= kept and start + c - 1 >= 0 else None for c in counts]
        ids_out.append(ids)
        bounds_out.append(bounds)
    return StepEncoded(ids_out, bounds_out, truncated)
