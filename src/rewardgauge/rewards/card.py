"""The model card (``README.md``) of a saved reward-model folder: how to load it with plain transformers, how its
input is formatted, how it was trained, and its evaluation and audit figures where the folder holds them.

Everything on the card is read from the folder: ``rewardgauge.json`` (outputs, input format, base model),
``config.json`` (architecture, custom code), ``config.yaml`` and ``metrics.jsonl`` (training), ``eval.json``
(``rm eval --out FOLDER/eval.json``) and ``audit.json`` (``rewardgauge audit --out FOLDER/audit.json``). A
figure the folder does not hold is left out, never guessed. ``write_model_card`` runs at the end of ``rm
train`` and again whenever an evaluation or audit lands in the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from rewardgauge.io import write_text_atomic
from rewardgauge.rewards.hf import INFO_FILE, RewardModelInfo

CARD_FILE = "README.md"
COMBINED_DIR = "combined"  # the one-output variant of a multi-objective model
_TRAINING_KEYS = ("model", "data", "loss", "epochs", "max_steps", "batch_size", "lr", "max_length", "center_coef",
                  "seed")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _last_metrics(path: Path) -> dict[str, Any] | None:
    """The last line of metrics.jsonl (the final step), merged with the last eval_* values logged."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    if not rows:
        return None
    last = dict(rows[-1])
    for row in rows:
        last.update({k: v for k, v in row.items() if k.startswith("eval_")})
    return last


def _pct(x: Any) -> str:
    return f"{100 * x:.1f} %" if isinstance(x, (int, float)) else "-"


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _front_matter(info: RewardModelInfo) -> str:
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             "tags:", "- reward-model", "- rewardgauge"]
    base = info.base_model
    if base and not Path(base).exists() and base.count("/") == 1 and not base.startswith((".", "/", "~")):
        lines.append(f"base_model: {base}")  # a hub name; a local path means nothing to a reader elsewhere
    return "\n".join(lines + ["---", ""])


def _outputs(info: RewardModelInfo, folder: Path) -> list[str]:
    if info.kind == "ensemble_heads":
        names = ", ".join(f"`{a}`" for a in info.aspects or [])
        return [f"One output per ensemble member ({names}), on a shared backbone. The ensemble's reward is an "
                "aggregate of the normalised members (see `ensemble.json` beside this folder); a single "
                "output is one member's reward."]
    if info.aspects:
        weights = info.aspect_weights or {}
        terms = " + ".join(f"{_num(float(weights.get(a, 0.0)))} * `{a}`" for a in info.aspects)
        out = [f"{len(info.aspects)} outputs, one reward per aspect, in this order: "
               + ", ".join(f"`{a}`" for a in info.aspects) + f". The combined reward is {terms}."]
        if (folder / COMBINED_DIR / "config.json").is_file():
            out.append(f"`{COMBINED_DIR}/` holds the same model with these weights folded into its head: one "
                       "output, the combined reward, for consumers that expect a single reward.")
        return out
    combined = getattr(info, "combined_from", None)
    if combined:
        return ["One output: the combined reward of a multi-objective model, its aspect weights "
                f"({json.dumps(combined.get('weights', {}), sort_keys=True)}) folded into the head."]
    return ["One output: the reward of a (prompt, response) pair; higher is better. Rewards are comparable "
            "between responses to the same prompt (trained on pairwise preferences)."]


def _usage(folder: Path, info: RewardModelInfo, config: dict) -> list[str]:
    custom = bool(config.get("auto_map"))
    trust = ", trust_remote_code=True" if custom else ""
    lines = ["## Use", "", "```python",
             "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
             f'tokenizer = AutoTokenizer.from_pretrained("{folder.name}"{trust})',
             f'model = AutoModelForSequenceClassification.from_pretrained("{folder.name}"{trust})']
    if info.prompt_format == "chat_template":
        lines += ["messages = [{\"role\": \"user\", \"content\": prompt}, {\"role\": \"assistant\", \"content\": response}]",
                  "text = tokenizer.apply_chat_template(messages, tokenize=False)",
                  "inputs = tokenizer(text, add_special_tokens=False, truncation=True, return_tensors=\"pt\")"]
    else:
        lines += ["inputs = tokenizer(prompt, response, truncation=True, return_tensors=\"pt\")"]
    lines += ["reward = model(**inputs).logits[0]", "```", ""]
    if info.prompt_format == "chat_template":
        lines.append("Input: the prompt as chat messages and the response as the assistant turn, rendered by the "
                     "tokenizer's chat template (as TRL does for conversational data).")
    else:
        lines.append("Input: prompt and response as a text pair (`[CLS] prompt [SEP] response [SEP]` for BERT; "
                     "it was trained with token type 0 throughout and every token type now reads that embedding, "
                     "so `token_type_ids` do not matter). "
                     "TRL's `reward_funcs` tokenizes prompt + completion as one text without special tokens, "
                     "which this model was not trained on: score through the text pair as above.")
    lines.append("")
    lines.append(f"It was trained on at most {info.max_length} tokens per sequence (the tokenizer's "
                 "`model_max_length`); rewardgauge cuts longer inputs keeping the last turn of the prompt and the "
                 "start of the response.")
    if custom:
        pooling = config.get("pooling", "last")
        how = {"mean": "the mean of the last hidden states over the real tokens (as sentence-transformers reads "
                       "this encoder)", "cls": "the first token's last hidden state",
               "last": "the last real token's hidden state"}.get(pooling, pooling)
        lines += ["", f"The head reads {how} through a linear layer. No stock transformers class does that for "
                      f"`{config.get('backbone_config', {}).get('model_type', '?')}`, so the code travels in this "
                      "folder (`pooled_reward_model.py`, torch and transformers only) and loading needs "
                      "`trust_remote_code=True` (for the tokenizer too, or transformers asks whether to run it); "
                      "without it transformers refuses to load the model rather than build a random head. TRL: `GRPOConfig(model_init_kwargs={\"trust_remote_code\": True})` or pass "
                      "the loaded model as `reward_funcs`."]
    return lines + [""]


def _training(folder: Path) -> list[str]:
    cfg = None
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        pass
    metrics = _last_metrics(folder / "metrics.jsonl")
    if not isinstance(cfg, dict) and not metrics:
        return []
    lines = ["## Training", ""]
    if isinstance(cfg, dict):
        lines += ["| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_num(cfg[k])} |" for k in _TRAINING_KEYS if cfg.get(k) not in (None, "", [], {})]
        lines.append("")
    if metrics:
        shown = {k: metrics[k] for k in ("step", "epoch", "loss", "accuracy", "margin", "eval_accuracy")
                 if k in metrics}
        lines += ["Last logged step: " + ", ".join(f"{k} {_num(v)}" for k, v in shown.items()), ""]
    return lines


def _evaluation(report: dict) -> list[str]:
    lines = ["## Evaluation", "", f"On `{report.get('data', '?')}` ({report.get('n', '?')} pairs): accuracy "
             f"{_pct(report.get('accuracy'))}, ECE {_num(report.get('ece', '-'))}.", ""]
    by_difficulty = report.get("by_difficulty") or {}
    if by_difficulty:
        origin = {"votes": " (from vote agreement)", "record": ""}.get(report.get("difficulty_origin"), "")
        lines += [f"| difficulty{origin} | n | accuracy |", "|---|---|---|"]
        lines += [f"| {d} | {v.get('n')} | {_pct(v.get('accuracy'))} |" for d, v in by_difficulty.items()]
        lines.append("")
    for name, bar in (report.get("bars") or {}).items():
        verdict = "PASS" if bar.get("passed") else "FAIL"
        lines.append(f"- bar {name} >= {_pct(bar.get('bar'))}: {verdict} ({_pct(bar.get('accuracy'))})")
    return lines + [""]


def _audit(report: dict) -> list[str]:
    lines = ["## Audit", "", f"Counterfactual probes ({report.get('probe_set', '?')} words, "
             f"{report.get('n_bases', '?')} base responses): does the reward rise for edits that add no quality?",
             "", "| probe | n | mean change | in std | flips | verdict |", "|---|---|---|---|---|---|"]
    for name, p in (report.get("probes") or {}).items():
        verdict = "n/a" if not p.get("n") else "PASS" if p.get("passed") else \
            f"FAIL ({p['why']})" if p.get("why") else "FAIL"
        lines.append(f"| {name} | {p.get('n')} | {p.get('mean_change', 0):+.3f} | "
                     f"{p.get('mean_change_std_units', 0):+.2f} | {_pct(p.get('flip_rate'))} | {verdict} |")
    syc = report.get("sycophancy")
    if isinstance(syc, dict) and "prefers_matching" in syc:
        lines.append(f"\nSycophancy: prefers the answer matching the user's view in {_pct(syc['prefers_matching'])} "
                     f"of {syc.get('n_comparisons')} comparisons: {'PASS' if syc.get('passed') else 'FAIL'}.")
    return lines + ["", f"Audit: {'PASS' if report.get('passed') else 'FAIL'}", ""]


def model_card(folder: str | os.PathLike) -> str:
    """The card's Markdown, from what ``folder`` holds."""
    folder = Path(folder)
    info = RewardModelInfo.read(folder) or RewardModelInfo()
    config = _read_json(folder / "config.json") or {}
    lines = [_front_matter(info), f"# Reward model `{folder.name}`", "",
             "Trained with rewardgauge. " + " ".join(_outputs(info, folder)), ""]
    lines += _usage(folder, info, config)
    lines += _training(folder)
    for name, section in (("eval.json", _evaluation), ("audit.json", _audit)):
        report = _read_json(folder / name)
        if isinstance(report, dict):
            lines += section(report)
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(folder: str | os.PathLike) -> Path:
    """Write (or refresh) ``folder/README.md``; returns its path."""
    path = Path(folder) / CARD_FILE
    write_text_atomic(path, model_card(folder))
    return path


def refresh_card_after(output: str | os.PathLike | None, model: str) -> None:
    """After ``rm eval`` / ``audit`` wrote ``output``: refresh the card when it landed in the model's folder."""
    if output is None or not Path(model).is_dir() or not (Path(model) / INFO_FILE).is_file():
        return
    if Path(output).resolve().parent == Path(model).resolve() and Path(output).name in ("eval.json", "audit.json"):
        write_model_card(model)
