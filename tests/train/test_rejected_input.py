"""Every input is checked before the output folder is written: after a rejected input it does not exist, or is
exactly as it was (issue 16 item 1), for ``rm train`` and ``sft``."""

import hashlib
import json

import pytest

from rewardgauge.cli import main

BAD_PAIRS = {
    "empty": b"",
    "wrong_type": b'{"prompt": 1, "chosen": "a", "rejected": "b"}\n',
    "nan_margin": b'{"prompt": "p", "chosen": "a", "rejected": "b", "margin": NaN}\n',
    "chosen_is_rejected": b'{"prompt": "p", "chosen": "a", "rejected": "a"}\n',
    "latin1": b'{"prompt": "p", "chosen": "caf\xe9", "rejected": "b"}\n',
}
BAD_DEMOS = {
    "empty": b"",
    "wrong_type": b'{"prompt": "p", "response": 3}\n',
    "latin1": b'{"prompt": "p", "response": "caf\xe9"}\n',
}


def _snapshot(folder):
    """Every path under ``folder`` with its content's hash (None for folders) and modification time."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None,
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _command(kind, lang, data, out, *extra):
    if kind == "rm":
        return ["rm", "train", "--model", str(lang["model"]), "--data", str(data), "--out", str(out),
                "--batch-size", "16", "--no-progress", *extra]
    return ["sft", "--model", str(lang["model"]), "--data", str(data), "--out", str(out), "--batch-size", "16",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished(lang, tmp_path_factory):
    """A finished reward-model run and a finished SFT run (2 steps each)."""
    root = tmp_path_factory.mktemp("finished")
    runs = {"rm": root / "rm", "sft": root / "sft"}
    for kind, data in (("rm", lang["train"]), ("sft", lang["sft"])):
        assert main(_command(kind, lang, data, runs[kind], "--max-steps", "2")) == 0
    return runs


def _bad_inputs(kind, lang, tmp_path):
    """(name, command-line arguments) of rejected inputs, each with its own data file."""
    cases = []
    for name, content in (BAD_PAIRS if kind == "rm" else BAD_DEMOS).items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content)
        cases.append((name, path, ()))
    good = lang["train"] if kind == "rm" else lang["sft"]
    (tmp_path / "folder").mkdir(exist_ok=True)
    cases += [("missing_data", tmp_path / "nowhere.jsonl", ()), ("data_is_an_empty_folder", tmp_path / "folder", ()),
              ("missing_model", good, ("--model", str(tmp_path / "no-model"))),
              ("lr_inf", good, ("--lr", "inf")), ("max_grad_norm_nan", good, ("--max-grad-norm", "nan")),
              ("batch_size_0", good, ("--batch-size", "0"))]
    if kind == "rm":
        plain = tmp_path / "plain.jsonl"  # valid pairs without margins or aspect labels
        plain.write_text('{"prompt": "p", "chosen": "good cat .", "rejected": "bad cat ."}\n' * 40)
        cases += [("eval_data_missing", good, ("--eval-data", str(tmp_path / "none.jsonl"))),
                  ("margin_loss_without_margins", plain, ("--loss", "margin")),
                  ("multi_loss_without_aspects", plain, ("--loss", "multi"))]
    return cases


@pytest.mark.parametrize("kind", ["rm", "sft"])
def test_rejected_input_leaves_no_output_folder(kind, lang, tmp_path, capsys):
    for name, data, extra in _bad_inputs(kind, lang, tmp_path):
        out = tmp_path / f"out-{name}"
        assert main(_command(kind, lang, data, out, *extra)) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("rewardgauge: error: "), (name, err)
        assert not out.exists(), name


@pytest.mark.parametrize("kind", ["rm", "sft"])
def test_rejected_input_leaves_a_finished_run_unchanged(kind, lang, finished, tmp_path, capsys):
    run = finished[kind]
    before = _snapshot(run)
    assert json.loads(json.dumps(before))  # the finished run has files to compare
    for name, data, extra in _bad_inputs(kind, lang, tmp_path):
        for resume in ((), ("--resume",)):
            assert main(_command(kind, lang, data, run, *extra, *resume)) == 2, name
            assert len(capsys.readouterr().err.strip().splitlines()) == 1, name
            assert _snapshot(run) == before, name


@pytest.mark.parametrize("kind", ["rm", "sft"])
def test_output_folder_may_not_be_the_model_folder_or_inside_it(kind, lang, tmp_path, capsys):
    model = lang["model"]
    before = _snapshot(model)
    good = lang["train"] if kind == "rm" else lang["sft"]
    for out in (model, model / "run"):
        assert main(_command(kind, lang, good, out)) == 2
        assert capsys.readouterr().err == (f"rewardgauge: error: {out}: field 'out': the output folder must not be "
                                           f"the --model folder ({model}) or inside it\n")
        assert _snapshot(model) == before


def test_output_folder_that_is_a_file(lang, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("keep me")
    assert main(_command("rm", lang, lang["train"], out)) == 2
    assert capsys.readouterr().err == f"rewardgauge: error: {out}: field 'out': exists and is not a folder\n"
    assert out.read_text() == "keep me"
