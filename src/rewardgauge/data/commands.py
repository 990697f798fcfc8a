"""``rewardgauge data``: validate, convert and split preference data. Bad input: one error line, exit 2,
no output file."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.errors import InputError
from rewardgauge.io import check_output

_COLUMNS_HELP = ("column mapping FIELD=COLUMN[,FIELD=COLUMN...] (e.g. chosen=response_a,rejected=response_b); "
                 "with a mapping, unmapped extra columns are ignored instead of rejected")
_SPLIT_HELP = "split to read from a datasets folder that holds several (e.g. train)"


@dataclass
class ValidateConfig:
    file: str = field(metadata={"help": "JSONL file, datasets folder, or csv/parquet/json file to check"})
    kind: Literal["pairs", "demonstrations"] = field(
        default="pairs", metadata={"help": "record type: preference pairs or SFT demonstrations"})
    columns: dict[str, str] | None = field(default=None, metadata={"help": _COLUMNS_HELP})
    split: str | None = field(default=None, metadata={"help": _SPLIT_HELP})


@dataclass
class ConvertConfig:
    input: str = field(metadata={"help": "source file or folder"})
    out: str = field(metadata={"help": "JSONL file of PreferencePair records to write"})
    format: Literal["jsonl", "hh-rlhf", "multi-aspect", "datasets"] = field(
        default="jsonl", metadata={"help": "jsonl: preference rows in JSON lines, in our layout or TRL's (explicit "
                                           "or implicit prompt, text or chat messages; see README); datasets: the "
                                           "same from a save_to_disk folder or csv/parquet/json; hh-rlhf: "
                                           "transcripts, skipping those without a pair; multi-aspect: rated "
                                           "responses per prompt"})
    columns: dict[str, str] | None = field(default=None, metadata={"help": _COLUMNS_HELP})
    split: str | None = field(default=None, metadata={"help": _SPLIT_HELP})
    prompt_format: Literal["messages", "text"] = field(
        default="messages", metadata={"help": "hh-rlhf: prompt as chat messages or as the verbatim transcript"})
    overall: bool = field(default=False, metadata={
        "help": "multi-aspect: one pair per two responses ranked by a weighted sum of ratings, with the "
                "preference on every aspect, instead of pairs per aspect"})
    weights: dict[str, float] | None = field(default=None, metadata={
        "help": "multi-aspect --overall: ASPECT=WEIGHT,... (default: 1 for every rated aspect)"})
    aspects: list[str] | None = field(default=None, metadata={
        "help": "multi-aspect per-aspect pairs: only these aspects, comma-separated (default: all)"})


@dataclass
class SplitConfig:
    input: str = field(metadata={"help": "records to split (JSONL file or datasets source)"})
    out_dir: str = field(metadata={"help": "folder to write train.jsonl and heldout.jsonl into"})
    heldout_fraction: float = field(default=0.1, metadata={"help": "fraction of records held out (whole prompts)"})
    seed: int = field(default=0, metadata={"help": "seed of the prompt order; same seed, same split"})
    kind: Literal["pairs", "demonstrations"] = field(
        default="pairs", metadata={"help": "record type: preference pairs or SFT demonstrations"})
    columns: dict[str, str] | None = field(default=None, metadata={"help": _COLUMNS_HELP})
    split: str | None = field(default=None, metadata={"help": _SPLIT_HELP})

    def validate(self) -> None:
        if not 0 <= self.heldout_fraction <= 1:  # NaN fails too; checked again by split_pairs, after loading
            raise InputError(f"must be a number in [0, 1], got {self.heldout_fraction!r}", field="heldout_fraction")


def _count_text(counter: Counter | dict, empty: str = "none") -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ", ".join(f"{k} {v}" for k, v in items) if items else empty


def summarize_pairs(pairs: list) -> dict[str, Any]:
    """Counts that tell whether a preference file holds what the issue asks to keep."""
    from rewardgauge.data.records import DIFFICULTIES, UNLABELLED
    from rewardgauge.data.splits import prompt_key

    aspects: Counter = Counter(a for p in pairs for a in (p.aspects or {}))
    difficulty: Counter = Counter(p.difficulty or UNLABELLED for p in pairs)
    return {
        "pairs": len(pairs),
        "prompts": len({prompt_key(p) for p in pairs}),
        "chat_prompts": sum(not isinstance(p.prompt, str) for p in pairs),
        "with_votes": sum(bool(p.votes) for p in pairs),
        "votes": sum(len(p.votes or ()) for p in pairs),
        "with_vote_fraction_only": sum(not p.votes and p.vote_fraction is not None for p in pairs),
        "with_annotators": sum(bool(p.annotators) for p in pairs),
        "with_margin": sum(p.margin is not None for p in pairs),
        "aspects": dict(aspects),
        "difficulty": {d: difficulty[d] for d in (*DIFFICULTIES, UNLABELLED) if difficulty[d]},
        "sources": dict(Counter(p.source or "unset" for p in pairs)),
    }


def _print_summary(where: str, s: dict[str, Any]) -> None:
    print(f"{where}: {s['pairs']} valid pairs, {s['prompts']} distinct prompts "
          f"({s['chat_prompts']} as chat messages)")
    print(f"  with votes: {s['with_votes']} ({s['votes']} votes; {s['with_annotators']} with annotator names); "
          f"vote fraction only: {s['with_vote_fraction_only']}; with margin: {s['with_margin']}")
    print(f"  aspects: {_count_text(s['aspects'])}")
    print(f"  difficulty: {_count_text(s['difficulty'])}")
    print(f"  sources: {_count_text(s['sources'])}")


def _load(kind: str, path: str, columns: dict[str, str] | None, split: str | None) -> list:
    """The validated records of ``path``; an empty source is bad input too (every later step needs a record)."""
    from rewardgauge.data.io import load_demonstrations, load_pairs

    loader = load_pairs if kind == "pairs" else load_demonstrations
    records = loader(path, columns, split=split)
    if not records:
        raise InputError(f"holds no {'preference pairs' if kind == 'pairs' else 'demonstrations'}", path=path)
    return records


def _validate(args: argparse.Namespace) -> int:
    from rewardgauge.data.io import read_pairs

    cfg: ValidateConfig = config_from_args(ValidateConfig, args)
    if cfg.kind == "pairs":
        records, found = read_pairs(cfg.file, cfg.columns, split=cfg.split)
        if not records:
            raise InputError("holds no preference pairs", path=cfg.file)
        _print_summary(cfg.file, summarize_pairs(records))
        for note in found.notes():
            print(f"  {note}")
    else:
        records = _load(cfg.kind, cfg.file, cfg.columns, cfg.split)
        from rewardgauge.data.splits import prompt_key

        print(f"{cfg.file}: {len(records)} valid demonstrations, "
              f"{len({prompt_key(r) for r in records})} distinct prompts")
        print(f"  sources: {_count_text(Counter(r.source or 'unset' for r in records))}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from rewardgauge.data import adapters
    from rewardgauge.data.io import load_pairs, save_records

    cfg: ConvertConfig = config_from_args(ConvertConfig, args)
    if cfg.format != "multi-aspect" and (cfg.overall or cfg.weights or cfg.aspects):
        raise InputError("--overall, --weights and --aspects apply to --format multi-aspect only",
                         field="format")
    if cfg.format == "jsonl" and Path(cfg.input).is_dir():
        raise InputError("is a folder; use --format datasets for a datasets folder", path=cfg.input)
    if Path(cfg.out).resolve() == Path(cfg.input).resolve():
        raise InputError("--out must differ from --input", path=cfg.out)
    check_output(cfg.out, "file")
    skipped: Counter = Counter()
    if cfg.format in ("jsonl", "datasets"):
        pairs = load_pairs(cfg.input, cfg.columns, split=cfg.split)
    elif cfg.format == "hh-rlhf":
        pairs, skipped = adapters.load_hh_rlhf(cfg.input, prompt_format=cfg.prompt_format, columns=cfg.columns,
                                               split=cfg.split)
    else:
        pairs, skipped = adapters.load_multi_aspect(cfg.input, overall=cfg.overall, weights=cfg.weights,
                                                    aspects=cfg.aspects, columns=cfg.columns, split=cfg.split)
    if not pairs:
        hint = ""
        if cfg.format == "hh-rlhf" and set(skipped) == {"no_shared_assistant_turn"}:
            hint = ("; these are not hh-rlhf transcripts (no shared '\\n\\nAssistant:' turn): --format jsonl "
                    "reads chosen/rejected texts without a prompt as TRL's implicit-prompt format")
        raise InputError(f"gives no preference pairs (skipped: {_count_text(skipped)}){hint}", path=cfg.input)
    n = save_records(cfg.out, pairs)
    print(f"wrote {n} pair{'' if n == 1 else 's'} to {cfg.out} (skipped: {_count_text(skipped)})")
    return 0


def _split(args: argparse.Namespace) -> int:
    from rewardgauge.data.splits import prompt_key, split_pairs
    from rewardgauge.io import atomic_path, output_lock

    cfg: SplitConfig = config_from_args(SplitConfig, args)
    out = check_output(cfg.out_dir, "dir", field="out_dir")
    records = _load(cfg.kind, cfg.input, cfg.columns, cfg.split)
    train, heldout = split_pairs(records, cfg.heldout_fraction, cfg.seed)
    # Both files appear together or neither does: each is written to a temp file, renamed at the end; the
    # lock keeps a concurrent split from pairing its train.jsonl with our heldout.jsonl.
    with output_lock(out), contextlib.ExitStack() as stack:
        for name, part in (("train", train), ("heldout", heldout)):
            tmp = stack.enter_context(atomic_path(out / f"{name}.jsonl"))
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for r in part)
    what = "pairs" if cfg.kind == "pairs" else "demonstrations"
    for name, part in (("train", train), ("heldout", heldout)):
        print(f"{name}: {len(part)} {what}, {len({prompt_key(r) for r in part})} prompts -> {out / name}.jsonl")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from rewardgauge.cli import group
    data = group(subparsers, "data", "Preference data: validate, convert (hh-rlhf, multi-aspect ratings, "
                                     "datasets folders) and split by prompt")
    fmt = argparse.RawDescriptionHelpFormatter

    p = data.add_parser("validate", formatter_class=fmt, help="check a data file and print what it holds",
                        description="Check every record of a preference (or demonstration) file and print a "
                                    "summary: pairs, votes, aspects, difficulty, sources.\nThe first bad record "
                                    "gives one line 'FILE:LINE: field F: problem' and exit code 2.")
    add_config_args(p, ValidateConfig, positional=("file",))
    p.set_defaults(func=_validate)

    p = data.add_parser("convert", formatter_class=fmt, help="convert a source into PreferencePair JSONL",
                        description="Convert preference data into validated PreferencePair JSONL.\n"
                                    "hh-rlhf: the shared transcript prefix becomes the prompt, the final "
                                    "Assistant turns the responses;\n  records without a usable pair are "
                                    "skipped and counted by reason.\nmulti-aspect: rows {prompt, responses: "
                                    "[{text, ratings: {aspect: number}}]} give pairs per aspect\n  (or, with "
                                    "--overall, pairs ranked by a weighted sum).\nOn bad input nothing is "
                                    "written and the exit code is 2.")
    add_config_args(p, ConvertConfig)
    p.set_defaults(func=_convert)

    p = data.add_parser("split", formatter_class=fmt, help="split records into train / held-out by prompt",
                        description="Deterministic train / held-out split by seed, grouped by prompt (no "
                                    "prompt on both sides).\nWrites OUT_DIR/train.jsonl and "
                                    "OUT_DIR/heldout.jsonl together, or nothing on bad input (exit 2).")
    add_config_args(p, SplitConfig)
    p.set_defaults(func=_split)
