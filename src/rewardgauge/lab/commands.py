"""``rewardgauge lab ...``: the synthetic world."""

from __future__ import annotations

import argparse
import json

from rewardgauge.cli import group
from rewardgauge.config import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from rewardgauge.lab.dataset import LabDataConfig

    lab = group(sub, "lab", "the synthetic lab world: known gold reward, simulated annotators")
    p = lab.add_parser(
        "data", help="write lab train / held-out / SFT / prompt JSONL files",
        description="Write annotator-labelled training pairs (train.jsonl), gold-labelled held-out pairs "
                    "(heldout.jsonl), SFT demonstrations (sft.jsonl), RL and evaluation prompts, and world.json "
                    "(gold reward, annotator pool, counts). The same seed gives byte-identical files.")
    add_config_args(p, LabDataConfig)
    # Not a LabDataConfig field: world.json records the config, and a progress bar must not change its bytes.
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    p.set_defaults(func=_data)

    g = lab.add_parser("gold", help="score responses with the gold reward",
                       description="Read JSONL rows with 'prompt' and 'response' (or 'chosen'/'rejected') and "
                                   "print each row's gold utility and dimensions as JSONL.")
    g.add_argument("file", help="JSONL file")
    g.add_argument("--lenient", action="store_true", help="score text outside the language instead of failing")
    g.set_defaults(func=_gold)


def _data(args: argparse.Namespace) -> int:
    from rewardgauge.io import check_output, output_lock
    from rewardgauge.lab.dataset import LabDataConfig, check_replaceable, generate

    cfg = config_from_args(LabDataConfig, args)
    check_replaceable(check_output(cfg.out, "dir"))
    with output_lock(cfg.out):  # from the start: a second run into the same folder stops at once
        summary = generate(cfg, progress=args.progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, sort_keys=True))
    return 0


def _gold(args: argparse.Namespace) -> int:
    from rewardgauge.errors import InputError
    from rewardgauge.io import iter_jsonl
    from rewardgauge.lab.gold import LanguageError, analyse

    for line, row in iter_jsonl(args.file):
        if not isinstance(row.get("prompt"), str):
            raise InputError("must be the prompt's text", path=args.file, line=line, field="prompt")
        out = {}
        for key in ("response", "chosen", "rejected"):
            if key in row:
                try:
                    a = analyse(row.get("prompt"), row[key], strict=not args.lenient)
                except LanguageError as e:
                    raise InputError(str(e), path=args.file, line=line, field=key) from None
                out[key] = {"utility": round(a.utility, 4), **{k: round(v, 4) for k, v in a.dims.items()}}
        if not out:
            raise InputError("needs 'response', 'chosen' or 'rejected'", path=args.file, line=line)
        print(json.dumps(out, sort_keys=True))
    return 0
