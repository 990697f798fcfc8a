import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402
from ensemble_setup import K, train_cfg  # noqa: E402


@pytest.fixture(scope="session")
def lang(tmp_path_factory):
    """Synthetic train/held-out pairs (with difficulty buckets) and a tiny Llama whose tokenizer covers them."""
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("ens_lang")
    heldout = synthetic.make_pairs(128, seed=1)
    for row in heldout:  # margin 1 is the smallest word-score gap: call it hard
        row["difficulty"] = {1.0: "hard", 2.0: "medium"}.get(row["margin"], "easy")
    paths = {"train": synthetic.write_jsonl(root / "train.jsonl", synthetic.make_pairs(256, seed=0)),
             "heldout": synthetic.write_jsonl(root / "heldout.jsonl", heldout)}
    init_model(list(paths.values()), root / "tiny", preset="tiny")
    return {**paths, "model": root / "tiny", "root": root}


@pytest.fixture(scope="session")
def ensembles(lang, tmp_path_factory):
    """One trained K=3 ensemble per form: shared through the CLI, the others through train_ensemble."""
    root = tmp_path_factory.mktemp("ensembles")
    out = {}
    _train_all(lang, root, out)  # on one torch thread: tests/conftest.py's session fixture comes first
    return out


def _train_all(lang, root, out):
    from rewardgauge.cli import main
    from rewardgauge.train.ensemble import train_ensemble

    for form in ("independent", "lora", "blocks"):
        out[form] = root / form
        train_ensemble(train_cfg(lang, out[form], ensemble_form=form, lr=5e-3 if form == "lora" else 2e-3))
    out["shared"] = root / "shared"
    code = main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out["shared"]),
                 "--members", str(K), "--ensemble-form", "shared", "--max-steps", "12", "--batch-size", "16",
                 "--save-every", "0", "--no-progress", "--reference-size", "64", "--lr", "2e-3"])
    assert code == 0
