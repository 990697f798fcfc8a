import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def lang(tmp_path_factory):
    """Synthetic train/held-out pairs, demonstrations, and a tiny Llama whose tokenizer covers them."""
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("lang")
    paths = {
        "train": synthetic.write_jsonl(root / "train.jsonl", synthetic.make_pairs(256, seed=0)),
        "heldout": synthetic.write_jsonl(root / "heldout.jsonl", synthetic.make_pairs(128, seed=1)),
        "sft": synthetic.write_jsonl(root / "sft.jsonl", synthetic.make_demos(128, seed=0)),
    }
    init_model(list(paths.values()), root / "tiny", preset="tiny")
    return {**paths, "model": root / "tiny", "root": root}
