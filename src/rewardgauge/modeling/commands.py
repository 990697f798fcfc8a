"""``rewardgauge model init``: a word tokenizer and a tiny Llama for the lab language, saved as an HF folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.errors import InputError
from rewardgauge.modeling.presets import Preset


@dataclass
class ModelInitConfig:
    corpus: list[str] = field(metadata={"help": "JSONL file(s), comma-separated, whose prompt/chosen/rejected/"
                                                "response texts give the vocabulary"})
    out: str = field(metadata={"help": "output folder (model + tokenizer, loadable with AutoModelForCausalLM)"})
    preset: Preset = field(default="tiny", metadata={  # the quickstart's
        "help": "tiny: hidden 128, 4 layers (~0.9M params); small: hidden 256, 4 layers (~3M params)"})
    seed: int = field(default=0, metadata={"help": "initialisation seed"})
    min_count: int = field(default=1, metadata={"help": "words seen fewer times map to <unk>"})
    max_positions: int = field(default=512, metadata={"help": "longest sequence the model accepts"})

    def validate(self) -> None:
        if self.min_count < 1 or self.max_positions < 8:
            raise ValueError(f"need min_count >= 1 and max_positions >= 8, got {self.min_count} and "
                             f"{self.max_positions}")


def _init(args: argparse.Namespace) -> int:
    from rewardgauge.io import check_output
    from rewardgauge.modeling.policy import init_model

    cfg = config_from_args(ModelInitConfig, args)
    out = check_output(cfg.out, "dir")
    # The folder is replaced whole: never a folder of other things (a typo such as --out runs).
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise InputError("refusing to replace a non-empty folder that is not a model folder", path=out, field="out")

    n = init_model(cfg.corpus, cfg.out, cfg.preset, cfg.seed, cfg.min_count, cfg.max_positions)
    print(f"wrote {cfg.out}: Llama '{cfg.preset}', {n:,} parameters")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    model = group(sub, "model", "build tiny models for the lab")
    p = model.add_parser("init", help="word tokenizer + tiny Llama from a JSONL corpus, saved with save_pretrained",
                         description="Build a word-level tokenizer (with a chat template) from the texts of JSONL "
                                     "records and a randomly initialised Llama of the chosen size; save both to "
                                     "OUT, which then loads with AutoTokenizer / AutoModelForCausalLM.")
    add_config_args(p, ModelInitConfig)
    p.set_defaults(func=_init)
