"""Every bad-input case: the exact one-line message naming file:line:field, exit code 2, nothing written."""

import json

import pytest

from rewardgauge.cli import main
from rewardgauge.data.io import load_demonstrations, load_pairs
from rewardgauge.data.validate import pair_from_dict
from rewardgauge.errors import InputError

GOOD = {"prompt": "q1", "chosen": "a", "rejected": "b"}
KNOWN = "prompt, chosen, rejected, id, votes, vote_fraction, annotators, aspects, margin, difficulty, source, meta"


def _line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _bad(**changes) -> bytes:
    """A record that differs from GOOD by ``changes`` (a value of ... removes the key)."""
    obj = {**GOOD, "prompt": "q2", **changes}
    return _line({k: v for k, v in obj.items() if v is not ...})


# (case, second line of the file, the message after "FILE:2: ")
CASES = [
    ("bad_json", b'{"prompt": "q", "chosen": \'a\', "rejected": "b"}\n', "invalid JSON: Expecting value (column 27)"),
    ("not_an_object", b'["q", "a", "b"]\n', "expected a JSON object, got list"),
    ("bad_utf8", b'{"prompt": "q\xff", "chosen": "a", "rejected": "b"}\n', "invalid UTF-8 at byte 13"),
    ("missing_field", _bad(rejected=...), "field 'rejected': missing required field"),
    ("missing_prompt", _bad(prompt=...), "field 'prompt': missing required field ('chosen' and 'rejected' share "
                                         "no leading words to take it from, as in TRL's implicit-prompt format)"),
    ("null_required", _bad(chosen=None), "field 'chosen': must not be null"),
    ("empty_field", _bad(chosen="  "), "field 'chosen': must not be empty"),
    ("empty_prompt", _bad(prompt=""), "field 'prompt': must not be empty"),
    ("empty_message_list", _bad(prompt=[]), "field 'prompt': must not be empty"),
    ("wrong_type_response", _bad(chosen=5), "field 'chosen': must be a string, got integer 5"),
    ("wrong_type_prompt", _bad(prompt={"text": "q"}),
     "field 'prompt': must be a string or a list of chat messages {\"role\", \"content\"}, "
     "got object {'text': 'q'}"),
    ("message_missing_content", _bad(prompt=[{"role": "user"}]), "field 'prompt[0].content': missing required field"),
    ("message_wrong_type", _bad(prompt=[{"role": "user", "content": "x"}, {"role": "assistant", "content": 3}]),
     "field 'prompt[1].content': must be a string, got integer 3"),
    ("chosen_equals_rejected", _bad(rejected="a "),
     "field 'rejected': is the same text as 'chosen' (up to Unicode normalisation and zero-width characters); "
     "a pair needs two different responses"),
    ("votes_out_of_range", _bad(votes=[1, 2]),
     "field 'votes[1]': must be 0 (preferred rejected) or 1 (preferred chosen), got 2"),
    ("votes_bool", _bad(votes=[True]), "field 'votes[0]': must be 0 (preferred rejected) or 1 (preferred chosen), "
                                       "got True"),
    ("votes_not_list", _bad(votes=1), "field 'votes': must be a list of 0/1 votes, got integer 1"),
    ("votes_empty", _bad(votes=[]), "field 'votes': must not be empty (leave it out when there are no votes)"),
    ("vote_fraction_out_of_range", _bad(vote_fraction=1.5), "field 'vote_fraction': must be a number in [0, 1], got 1.5"),
    ("vote_fraction_disagrees", _bad(votes=[1, 1, 0, 1], vote_fraction=0.5),
     "field 'vote_fraction': is 0.5 but the votes give 3/4 = 0.75"),
    ("unknown_difficulty", _bad(difficulty="extreme"),
     "field 'difficulty': must be one of easy, medium, hard, got 'extreme'"),
    ("annotators_length_mismatch", _bad(votes=[1, 0, 1], annotators=["ann1", "ann2"]),
     "field 'annotators': has 2 names but 'votes' has 3 votes (one annotator per vote)"),
    ("annotators_without_votes", _bad(annotators=["ann1"]),
     "field 'annotators': given without 'votes' (one annotator per vote)"),
    ("aspect_out_of_range", _bad(aspects={"safety": 2}),
     "field 'aspects.safety': must be a preference for chosen in [0, 1] (1 chosen better, 0 rejected better), got 2"),
    ("margin_not_number", _bad(margin="big"), "field 'margin': must be a finite number, got string 'big'"),
    ("meta_not_object", _bad(meta=[1]), "field 'meta': must be an object, got list [1]"),
    ("unknown_key", _bad(vote=[1]),
     f"field 'vote': unknown field; did you mean 'votes'? (known: {KNOWN}; pass a column mapping to read other "
     "columns)"),
]


@pytest.mark.parametrize("case,line2,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_message_exit_code_and_nothing_written(tmp_path, capsys, case, line2, message):
    src = tmp_path / "in.jsonl"
    src.write_bytes(_line(GOOD) + line2)
    expected = f"rewardgauge: error: {src}:2: {message}\n"

    with pytest.raises(InputError) as err:
        load_pairs(src)
    assert f"rewardgauge: error: {err.value}\n" == expected
    assert err.value.line == 2 and err.value.path == str(src)

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for argv in (["data", "validate", str(src)],
                 ["data", "convert", "--format", "jsonl", "--input", str(src), "--out", str(out_dir / "o.jsonl")],
                 ["data", "split", "--input", str(src), "--out-dir", str(out_dir / "split")]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.err == expected, argv
        assert captured.out == ""
    assert list(out_dir.iterdir()) == []  # no output, no temp file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]


def test_convert_over_existing_output_keeps_it_on_bad_input(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(_line(GOOD) + _bad(votes=[3]))
    out.write_text("old\n")
    assert main(["data", "convert", "--input", str(src), "--out", str(out)]) == 2
    assert out.read_text() == "old\n"
    assert "in.jsonl:2: field 'votes[0]'" in capsys.readouterr().err


def test_missing_file_and_unsupported_type(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err == f"rewardgauge: error: {tmp_path / 'nope.jsonl'}: no such file or folder\n"
    odd = tmp_path / "x.txt"
    odd.write_text("hi")
    assert main(["data", "validate", str(odd)]) == 2
    assert capsys.readouterr().err.startswith(f"rewardgauge: error: {odd}: unsupported file type '.txt'")


def test_demonstration_errors(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"prompt": "q", "response": "r"}) + "\n" + json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(InputError) as err:
        load_demonstrations(src)
    assert str(err.value) == f"{src}:2: field 'response': missing required field"
    src.write_text(json.dumps({"prompt": "q", "response": "r", "chosen": "x"}) + "\n")
    with pytest.raises(InputError, match=r"d.jsonl:1: field 'chosen': unknown field"):
        load_demonstrations(src)


def test_column_mapping_names_the_users_column(tmp_path):
    row = {"question": "q", "response_a": "", "response_b": "b", "extra": 1}
    with pytest.raises(InputError) as err:
        pair_from_dict(row, path="f.csv", line=7,
                       columns={"prompt": "question", "chosen": "response_a", "rejected": "response_b"})
    assert str(err.value) == "f.csv:7: field 'response_a': must not be empty (column mapped to 'chosen')"
    with pytest.raises(InputError) as err:
        pair_from_dict(row, columns={"chosn": "response_a"})
    assert str(err.value) == ("field 'chosn': column mapping names an unknown field; did you mean 'chosen'? "
                              f"(fields: {KNOWN})")


def test_valid_values_are_normalised():
    pair = pair_from_dict({"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b",
                           "id": 7, "votes": [1, 0, 1], "vote_fraction": 0.667, "annotators": ["x", "y", "z"],
                           "aspects": {"safety": 1}, "margin": 2, "difficulty": "hard", "source": "s",
                           "meta": {"k": [1]}})
    assert pair.id == "7" and pair.aspects == {"safety": 1.0} and pair.margin == 2.0
    assert pair.preference == pytest.approx(2 / 3)
    # null means "not set" for optional fields (datasets fills absent columns with nulls)
    pair = pair_from_dict({**GOOD, "votes": None, "difficulty": None, "meta": None, "source": None})
    assert pair.votes is None and pair.meta == {} and pair.source == ""
