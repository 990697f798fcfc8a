"""`rewardgauge serve --rm FOLDER` end to end: a real (tiny) Hugging Face reward model served by the command,
scored through load_reward_model(URL) as in-process; SIGTERM stops it cleanly."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from rewardgauge.rewards.loading import load_reward_model

PROMPTS = ["compute 2 + 3 .", "i think 3 + 4 is 8 . right ?", "what is the capital of japan ?"]
RESPONSES = ["2 + 3 = 5 . answer 5 .", "yes , you are right .", "the capital of japan is tokyo ."]


@pytest.fixture(scope="module")
def rm_folder(tmp_path_factory):
    """A tiny Llama reward model saved to a folder (its score head fixed in the file, so every process that
    loads it computes the same rewards)."""
    from rewardgauge.modeling.loading import load_sequence_classifier, load_tokenizer
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("serve_rm")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in zip(PROMPTS, RESPONSES)))
    init_model([corpus], root / "lm", preset="tiny")
    torch.manual_seed(0)
    load_sequence_classifier(root / "lm", num_labels=1).save_pretrained(root / "rm")
    load_tokenizer(root / "lm").save_pretrained(root / "rm")
    return root / "rm"


def test_serve_command_scores_like_in_process(rm_folder):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("REWARDGAUGE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "rewardgauge.cli", "serve", "--rm", str(rm_folder), "--port", "0",
                             "--device", "cpu"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert f"rewardgauge serve: {rm_folder} on http://127.0.0.1:" in line, line
        url = line.split(" on ")[1].split()[0]
        remote, local = load_reward_model(url), load_reward_model(str(rm_folder), device="cpu")
        got, want = remote.score(PROMPTS, RESPONSES), local.score(PROMPTS, RESPONSES)
        assert torch.allclose(got.reward, want.reward, atol=1e-5) and got.reward.abs().sum() > 0
        proc.send_signal(signal.SIGTERM)
        # uvicorn drains, then re-raises the signal it caught, as a process stopped by SIGTERM should exit
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
