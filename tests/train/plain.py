"""Score saved reward models the way a program without rewardgauge does, in a fresh Python process (in this
process rewardgauge has registered its classes with transformers, and a trust_remote_code load registers more)."""

import json
import os
import subprocess
import sys

import torch

_PLAIN = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

out = []
for job in json.loads(sys.stdin.read()):
    folder, prompts, responses = job["folder"], job["prompts"], job["responses"]
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=job["trust"]).eval()
    except (ValueError, OSError) as e:
        out.append({"error": str(e)})
        continue
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=job["trust"])
    if tok.chat_template:  # as TRL renders conversational data for its reward models
        texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                         tokenize=False) for p, r in zip(prompts, responses)]
        inputs = tok(texts, padding=True, padding_side="right", add_special_tokens=False, return_tensors="pt")
    else:  # a text pair, token_type_ids included
        inputs = tok(prompts, responses, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    out.append({"class": type(model).__name__, "logits": logits.tolist(), "num_labels": model.config.num_labels,
                "id2label": {str(k): v for k, v in model.config.id2label.items()},
                "model_max_length": tok.model_max_length})
assert not any(name.startswith("rewardgauge") for name in sys.modules), "rewardgauge was imported"
print(json.dumps(out))
"""


def plain_transformers(*jobs):
    """What a program without rewardgauge computes, in a fresh process: AutoTokenizer (chat template or text
    pair) + AutoModelForSequenceClassification. jobs: (folder, prompts, responses, trust_remote_code)."""
    spec = [{"folder": str(f), "prompts": p, "responses": r, "trust": t} for f, p, r, t in jobs]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, "-c", _PLAIN], input=json.dumps(spec), capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for r in results:
        if "logits" in r:
            r["logits"] = torch.tensor(r["logits"])
    return results


def tiny_granite(tokenizer_folder, folder, hidden: int = 32, layers: int = 1):
    """A random tiny Granite causal LM with ``tokenizer_folder``'s tokenizer, saved to ``folder``: an architecture
    that transformers has no sequence-classification class for."""
    from transformers import AutoTokenizer, GraniteConfig, GraniteForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_folder)
    torch.manual_seed(0)
    heads = hidden // 16
    config = GraniteConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=2 * hidden,
                           pad_token_id=tok.pad_token_id)
    GraniteForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
