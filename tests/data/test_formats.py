"""TRL's preference layouts (and hh-rlhf transcripts) read by the one loader: each layout rendered from known
pairs and read back to the same pairs, from JSONL and from datasets sources; extra columns kept in meta."""

import json
import logging
from pathlib import Path

import pytest

from rewardgauge.cli import main
from rewardgauge.data.formats import split_shared_text
from rewardgauge.data.io import load_pairs, read_pairs
from rewardgauge.data.records import prompt_text
from rewardgauge.errors import InputError

# (prompt messages, chosen, rejected): one single-turn and one multi-turn conversation with a system message.
PAIRS = [
    ([{"role": "user", "content": "What color is the sky?"}], "Blue, as a rule.", "Green."),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is 7 + 5 = 13?"},
      {"role": "assistant", "content": "Let me check."}, {"role": "user", "content": "Well?"}],
     "No, 7 + 5 = 12.", "Yes, you are right!"),
]


def _assistant(text):
    return [{"role": "assistant", "content": text}]


def _text(messages):
    return "\n".join(m["content"] for m in messages)


# Each layout: the row for one of PAIRS, and the prompt that reading it gives back.
LAYOUTS = {
    "conversational": (lambda p, c, r: {"prompt": p, "chosen": _assistant(c), "rejected": _assistant(r)},
                       lambda p: p),
    "conversational_ultrafeedback": (  # chosen/rejected repeat the prompt's messages
        lambda p, c, r: {"prompt": p, "chosen": p + _assistant(c), "rejected": p + _assistant(r)}, lambda p: p),
    "conversational_implicit": (lambda p, c, r: {"chosen": p + _assistant(c), "rejected": p + _assistant(r)},
                                lambda p: p),
    "implicit": (lambda p, c, r: {"chosen": f"{_text(p)} {c}", "rejected": f"{_text(p)} {r}"}, _text),
    "hh-rlhf": (lambda p, c, r: {k: "".join(f"\n\n{'Human' if m['role'] != 'assistant' else 'Assistant'}: "
                                            f"{m['content']}" for m in p) + f"\n\nAssistant: {v}"
                                 for k, v in (("chosen", c), ("rejected", r))},
                lambda p: [{"role": "user" if m["role"] != "assistant" else "assistant", "content": m["content"]}
                           for m in p]),
}


def _rows(layout):
    render, _ = LAYOUTS[layout]
    return [render(*pair) for pair in PAIRS]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_reads_back_to_the_same_pairs(layout, tmp_path):
    _, prompt_of = LAYOUTS[layout]
    pairs, found = read_pairs(_write(tmp_path / "d.jsonl", _rows(layout)))
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(prompt_of(p), c, r) for p, c, r in PAIRS]
    assert set(found.layouts) == {layout.replace("_ultrafeedback", "")} and not found.extra_columns
    # ... and what convert writes is our layout, which reads back to the same records
    out = tmp_path / "ours.jsonl"
    assert main(["data", "convert", "--input", str(tmp_path / "d.jsonl"), "--out", str(out)]) == 0
    again, found = read_pairs(out)
    assert again == pairs and set(found.layouts) == {"rewardgauge"}


def test_datasets_folder_and_parquet_of_conversational_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [dict(r, score_chosen=8.0, score_rejected=3.0) for r in _rows("conversational_implicit")]
    ds = datasets.Dataset.from_list(rows)
    ds.save_to_disk(str(tmp_path / "folder"))
    ds.to_parquet(str(tmp_path / "d.parquet"))
    for source in (tmp_path / "folder", tmp_path / "d.parquet"):
        pairs, found = read_pairs(source)
        assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == PAIRS
        assert [p.meta for p in pairs] == [{"score_chosen": 8.0, "score_rejected": 3.0}] * 2
        assert dict(found.extra_columns) == {"score_chosen": 2, "score_rejected": 2}


def test_extra_columns_are_kept_in_meta_and_reported_once(tmp_path, caplog):
    rows = [dict(r, prompt_id=f"p{i}", messages=r["chosen"], meta={"prompt_id": "own"})
            for i, r in enumerate(_rows("conversational"))]
    path = _write(tmp_path / "uf.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="rewardgauge.data"):
        pairs = load_pairs(path)
    assert pairs[1].meta == {"prompt_id": "own", "messages": rows[1]["chosen"]}  # the row's own meta wins
    assert pairs[0].meta["prompt_id"] == "own" and "messages" in pairs[0].meta
    assert [r.getMessage() for r in caplog.records] == [
        f"note: {path}: layout: conversational 2",
        f"note: {path}: extra columns kept in meta: messages (2 rows), prompt_id (2 rows)"]


def test_typos_and_foreign_rows_are_still_refused(tmp_path):
    path = _write(tmp_path / "t.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "vote": [1]}])
    with pytest.raises(InputError, match=r"t.jsonl:1: field 'vote': unknown field; did you mean 'votes'\?"):
        load_pairs(path)
    path = _write(tmp_path / "f.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(InputError, match=r"f.jsonl:1: field 'question': unknown field"):
        load_pairs(path)
    for row, message in [
        ({"chosen": _assistant("a"), "rejected": _assistant("b")}, "field 'prompt': missing required field"),
        ({"prompt": "q", "chosen": _assistant("a") * 2, "rejected": _assistant("b")},
         "field 'chosen': expected one assistant message, got 2 \\(assistant, assistant\\)"),
        ({"chosen": [{"role": "user", "content": "q"}] + _assistant("a") * 2,
          "rejected": [{"role": "user", "content": "q"}] + _assistant("b")},
         "field 'chosen': expected one assistant message after the 1 prompt message\\(s\\) it shares with the "
         "other side, got 2"),
        ({"prompt": "q", "chosen": [{"role": "assistant"}], "rejected": _assistant("b")},
         "field 'chosen\\[0\\].content': missing required field"),
        ({"chosen": "\n\nHuman: hi\n\nAssistant: ", "rejected": "\n\nHuman: hi\n\nAssistant: yo"},
         "do not form a pair \\(empty_response\\)"),
    ]:
        with pytest.raises(InputError, match=message):
            load_pairs(_write(tmp_path / "bad.jsonl", [row]))


def test_shared_text_is_cut_at_a_word():
    assert split_shared_text("The sky is blue.", "The sky is green.") == ("The sky is", "blue.", "green.")
    # TRL would cut inside "bright"; here both responses keep the whole word
    assert split_shared_text("The sky is bright blue.", "The sky is brighter.") == (
        "The sky is", "bright blue.", "brighter.")
    assert split_shared_text("Yes.", "No.") is None
    # the implicit format cannot tell a prompt from words both responses start with: they go to the prompt
    assert split_shared_text("Q? It is blue.", "Q? It is green.") == ("Q? It is", "blue.", "green.")


def test_today_cases_validate_and_convert(tmp_path, capsys):
    """The issue's cases: validate on conversational data; convert --format hh-rlhf on the text-only format."""
    conv = _write(tmp_path / "conv.jsonl", _rows("conversational_implicit"))
    assert main(["data", "validate", str(conv)]) == 0
    out = capsys.readouterr().out
    assert f"{conv}: 2 valid pairs, 2 distinct prompts (2 as chat messages)" in out
    assert "  layout: conversational_implicit 2" in out
    text = _write(tmp_path / "text.jsonl", _rows("implicit"))
    assert main(["data", "convert", "--format", "hh-rlhf", "--input", str(text), "--out",
                 str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "gives no preference pairs (skipped: no_shared_assistant_turn 2); these are not hh-rlhf" in err
    assert not (tmp_path / "o.jsonl").exists()
    assert main(["data", "convert", "--input", str(text), "--out", str(tmp_path / "o.jsonl")]) == 0
    assert [p.chosen for p in load_pairs(tmp_path / "o.jsonl")] == ["Blue, as a rule.", "No, 7 + 5 = 12."]


def test_the_readme_examples_read_as_the_layouts_it_names(tmp_path, capsys):
    """README's data-format section: one row per layout, each the same boiled-egg pair but the last."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Data formats", 1)[1].split("```jsonl\n", 1)[1].split("```", 1)[0]
    src = tmp_path / "readme.jsonl"
    src.write_text(block)
    pairs, found = read_pairs(src)
    assert dict(found.layouts) == {"rewardgauge": 2, "conversational": 1, "conversational_implicit": 1,
                                   "implicit": 1, "hh-rlhf": 1}
    egg = [(prompt_text(p.prompt), p.chosen, p.rejected) for p in pairs[:5]]
    assert {e[1:] for e in egg} == {("Boil it for eight minutes.", "No idea.")}
    assert {e[0] for e in egg} <= {"How do I boil an egg?", "user: How do I boil an egg?"}
    full = pairs[5]
    assert (full.votes, full.aspects, full.margin, full.difficulty) == ([1, 1, 1, 0, 1], {"correctness": 1.0,
                                                                                         "brevity": 0.5}, 2.0, "easy")
