"""What a newcomer runs first: rm train / rm eval straight on TRL-format data, one device option for train,
eval and audit, --no-progress on lab data, one word for pairs without a difficulty, sandbox probe in CLI terms."""

import json
import os

import pytest

from rewardgauge.cli import main
from rewardgauge.data.io import load_pairs


def _conversational(src, dst):
    """The pairs of ``src`` as TRL's conversational implicit-prompt rows, with an extra column."""
    rows = [{"chosen": [{"role": "user", "content": p.prompt}, {"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "user", "content": p.prompt}, {"role": "assistant", "content": p.rejected}],
             "score_chosen": 9} for p in load_pairs(src)]
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_rm_train_and_eval_read_trl_conversational_data(lang, tmp_path, capsys):
    train = _conversational(lang["train"], tmp_path / "train.jsonl")
    heldout = _conversational(lang["heldout"], tmp_path / "heldout.jsonl")
    out = tmp_path / "rm"
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(train), "--out", str(out),
                 "--max-steps", "8", "--lr", "3e-3", "--no-progress", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("extra columns kept in meta: score_chosen (256 rows)") == 1  # said once, not per row
    assert main(["rm", "eval", "--model", str(out), "--data", str(heldout), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "overall                   128" in printed
    # no votes and no difficulty in TRL rows: the report says so instead of claiming vote agreement
    assert "neither a 'difficulty' nor 'votes' on any pair" in printed and "vote agreement" not in printed


def test_one_device_option_for_train_eval_and_audit(lang, tmp_path, capsys):
    for argv in (["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out",
                  str(tmp_path / "rm"), "--max-steps", "1"],
                 ["rm", "eval", "--model", str(lang["model"]), "--data", str(lang["heldout"])],
                 ["audit", "--rm", str(lang["model"]), "--data", str(lang["heldout"])],
                 ["rl", "--prompts", str(lang["heldout"]), "--policy.model", str(lang["model"]), "--reward.models",
                  "lab-gold", "--out", str(tmp_path / "rl")]):
        assert main(argv + ["--device", "tpu9"]) == 2, argv
        assert "field 'device': not a device: 'tpu9'" in capsys.readouterr().err
    assert not (tmp_path / "rm").exists() and not (tmp_path / "rl").exists()  # refused before any writing


def test_lab_data_no_progress_and_the_word_for_pairs_without_difficulty(tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["lab", "data", "--out", str(out), "--pairs", "300", "--heldout-pairs", "20", "--demos", "5",
                 "--rl-prompts", "5", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "lab train" not in captured.err  # no tqdm bar
    summary = json.loads(captured.out)
    lab_count = summary["difficulty_train"]["unlabelled"]
    assert lab_count > 0 and "tie" not in summary["difficulty_train"]
    assert main(["data", "validate", str(out / "train.jsonl")]) == 0
    assert f"unlabelled {lab_count}" in capsys.readouterr().out


def test_sandbox_probe_speaks_cli(capsys):
    assert main(["sandbox", "probe"]) in (0, 1)
    printed = capsys.readouterr().out
    if os.geteuid() == 0:  # the rlimits-only backend is refused to root: the way round it is a flag
        assert "--allow-unsafe on the command line" in printed and "allow_unsafe=True in Python" in printed


def test_rm_train_holds_the_output_lock_through_the_final_save(lang, tmp_path, monkeypatch):
    import filelock

    import rewardgauge.train.reward as reward

    out = tmp_path / "rm"
    seen = []

    def save_model(model, tokenizer, folder, extra):  # another writer tries the same --out at the very end
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(tmp_path / ".rm.lock", timeout=0).acquire()
        seen.append(folder)
        return real_save(model, tokenizer, folder, extra)

    real_save = reward.save_model
    monkeypatch.setattr(reward, "save_model", save_model)
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--max-steps", "1", "--no-progress", "--device", "cpu"]) == 0
    assert seen == [out]
    with filelock.FileLock(tmp_path / ".rm.lock", timeout=0):  # released when the command ends
        pass


def test_tensorboard_gets_each_aspect_loss_and_the_centering_term(lang, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "rm"
    assert main(["rm", "train", "--model", str(lang["model"]), "--data", str(lang["train"]), "--out", str(out),
                 "--loss", "multi", "--center-coef", "0.01", "--max-steps", "2", "--report-to", "tensorboard",
                 "--no-progress", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (events,) = {f.parent for f in (out / "tensorboard").rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(events))
    acc.Reload()
    for key in ("loss", "loss_brevity", "loss_tone", "loss_center"):
        assert [s.value for s in acc.Scalars(key)] == pytest.approx([r[key] for r in rows], rel=1e-5), key
    assert all(r["loss_center"] > 0 for r in rows)
