import random

import pytest

from rewardgauge.data.steps import LAB_SEPARATOR, StepRecord, save_step_records


def ok_bad_records(n: int, seed: int) -> list[StepRecord]:
    """Solutions whose steps say "ok ." (correct) or "bad ." (incorrect): a PRM reading each step at its end
    learns them in a few dozen steps; one reading the wrong position cannot."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        words = [rng.choice(("ok", "ok", "bad")) for _ in range(rng.randint(1, 4))]
        records.append(StepRecord(prompt="compute 1 + 1 .", steps=[f"{w} ." for w in words],
                                  labels=[w == "ok" for w in words], sources=["human"] * len(words),
                                  outcome="bad" not in words, id=f"okbad-{seed}-{i}"))
    return records


@pytest.fixture(scope="session")
def prm_lab(tmp_path_factory):
    """Lab step records (gold labels), ok/bad records, and a tiny Llama whose word tokenizer covers both."""
    from rewardgauge.io import write_jsonl_atomic
    from rewardgauge.lab.steps import sample_step_records
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("prm")
    lab = sample_step_records(120, seed=0)
    okbad = ok_bad_records(160, seed=0)
    save_step_records(root / "lab.jsonl", lab)
    save_step_records(root / "okbad.jsonl", okbad)
    save_step_records(root / "okbad_eval.jsonl", ok_bad_records(60, seed=1))
    corpus = [{"prompt": r.prompt, "response": r.solution(LAB_SEPARATOR)} for r in lab + okbad]
    write_jsonl_atomic(root / "corpus.jsonl", corpus)
    init_model([root / "corpus.jsonl"], root / "tiny", preset="tiny")
    return {"root": root, "model": root / "tiny", "lab": root / "lab.jsonl", "okbad": root / "okbad.jsonl",
            "okbad_eval": root / "okbad_eval.jsonl"}
