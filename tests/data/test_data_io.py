"""Round trips through JSONL and through `datasets` sources, with column mapping."""

import json

import pytest

from rewardgauge.cli import main
from rewardgauge.data.io import iter_rows, load_demonstrations, load_pairs, save_records
from rewardgauge.data.records import Demonstration, PreferencePair
from rewardgauge.errors import InputError

FULL = PreferencePair(
    prompt=[{"role": "user", "content": "Is 7 + 5 = 13?"}, {"role": "assistant", "content": "Let me see."},
            {"role": "user", "content": "Well?"}],
    chosen="No, 7 + 5 = 12. ✓", rejected="Yes, you are right!", id="p-1", votes=[1, 1, 0, 1],
    vote_fraction=0.75, annotators=["ann-a", "ann-b", "ann-c", "ann-d"], aspects={"honesty": 1.0, "style": 0.5},
    margin=1.5, difficulty="medium", source="unit", meta={"family": "premise", "gold": [0.9, -0.2]})
MINIMAL = PreferencePair(prompt="héllo", chosen="a", rejected="b")


def test_jsonl_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "p.jsonl"
    assert save_records(path, [FULL, MINIMAL]) == 2
    assert load_pairs(path) == [FULL, MINIMAL]
    # unset fields are left out of the file
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[1]) == {
        "prompt": "héllo", "chosen": "a", "rejected": "b"}
    demos = [Demonstration(prompt="q", response="r", id="d1", source="s", meta={"x": 1}),
             Demonstration(prompt=[{"role": "user", "content": "q"}], response="r2")]
    save_records(tmp_path / "d.jsonl", demos)
    assert load_demonstrations(tmp_path / "d.jsonl") == demos


def test_cli_convert_jsonl_round_trip_and_summary(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    save_records(src, [FULL, MINIMAL])
    assert main(["data", "convert", "--input", str(src), "--out", str(out)]) == 0
    assert load_pairs(out) == [FULL, MINIMAL]
    capsys.readouterr()
    assert main(["data", "validate", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{out}: 2 valid pairs, 2 distinct prompts (1 as chat messages)",
        "  with votes: 1 (4 votes; 1 with annotator names); vote fraction only: 0; with margin: 1",
        "  aspects: honesty 1, style 1",
        "  difficulty: medium 1, unlabelled 1",
        "  sources: unit 1, unset 1",
    ]


def test_save_to_disk_folder_with_column_mapping(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([
        {"question": "q1", "response_a": "good", "response_b": "bad", "annotator_votes": [1, 1, 0], "uid": 10,
         "notes": "ignored"},
        {"question": "q2", "response_a": "fine", "response_b": "poor", "annotator_votes": [0, 1, 1], "uid": 11,
         "notes": "ignored"},
    ])
    folder = tmp_path / "ds"
    ds.save_to_disk(str(folder))
    columns = {"prompt": "question", "chosen": "response_a", "rejected": "response_b", "votes": "annotator_votes",
               "id": "uid"}
    pairs = load_pairs(folder, columns)
    assert [p.to_dict() for p in pairs] == [
        {"prompt": "q1", "chosen": "good", "rejected": "bad", "votes": [1, 1, 0], "id": "10"},
        {"prompt": "q2", "chosen": "fine", "rejected": "poor", "votes": [0, 1, 1], "id": "11"},
    ]
    # without the mapping the foreign columns are an error naming row 1
    with pytest.raises(InputError) as err:
        load_pairs(folder)
    assert str(err.value).startswith(f"{folder}:1: field 'question': unknown field")
    # a bad value in row 2 is reported as line 2, under the user's column name
    datasets.Dataset.from_list([{"question": "q", "response_a": "x", "response_b": "y", "annotator_votes": [1]},
                                {"question": "q", "response_a": "x", "response_b": "y", "annotator_votes": [5]}]
                               ).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(InputError) as err:
        load_pairs(tmp_path / "bad", columns={k: v for k, v in columns.items() if k != "id"})
    assert str(err.value) == (f"{tmp_path / 'bad'}:2: field 'annotator_votes[0]': must be 0 (preferred rejected) "
                              "or 1 (preferred chosen), got 5 (column mapped to 'votes')")


def test_dataset_dict_splits_and_nested_nulls(tmp_path):
    datasets = pytest.importorskip("datasets")
    # Arrow unifies struct keys across rows: the first row's aspects gain "style": null, which must not
    # become an aspect the row never had.
    rows = [{"prompt": "a", "chosen": "x", "rejected": "y", "aspects": {"safety": 1.0}, "difficulty": None},
            {"prompt": "b", "chosen": "x", "rejected": "y", "aspects": {"style": 0.0}, "difficulty": "easy"}]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                               "test": datasets.Dataset.from_list(rows[:1])})
    dd.save_to_disk(str(tmp_path / "dd"))
    train = load_pairs(tmp_path / "dd", split="train")
    assert [p.aspects for p in train] == [{"safety": 1.0}, {"style": 0.0}]
    assert [p.difficulty for p in train] == [None, "easy"]
    assert len(load_pairs(tmp_path / "dd", split="test")) == 1
    with pytest.raises(InputError) as err:
        load_pairs(tmp_path / "dd")
    assert str(err.value) == f"{tmp_path / 'dd'}: field 'split': has several splits (train, test); choose one"
    with pytest.raises(InputError, match=r"field 'split': no split 'dev' \(splits: train, test\)"):
        load_pairs(tmp_path / "dd", split="dev")


def test_csv_parquet_and_json_array_sources(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    rows = [{"q": "q1", "a": "yes", "b": "no", "frac": 0.8}, {"q": "q2", "a": "up", "b": "down", "frac": 0.3}]
    columns = {"prompt": "q", "chosen": "a", "rejected": "b", "vote_fraction": "frac"}
    expected = [PreferencePair(prompt="q1", chosen="yes", rejected="no", vote_fraction=0.8),
                PreferencePair(prompt="q2", chosen="up", rejected="down", vote_fraction=0.3)]
    (tmp_path / "d.csv").write_text("q,a,b,frac\nq1,yes,no,0.8\nq2,up,down,0.3\n")
    assert load_pairs(tmp_path / "d.csv", columns) == expected
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    capsys.readouterr()  # its progress bar
    assert load_pairs(tmp_path / "d.parquet", columns) == expected
    (tmp_path / "d.json").write_text(json.dumps(rows, indent=1))
    assert load_pairs(tmp_path / "d.json", columns) == expected
    # a folder of data files goes through datasets.load_dataset
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "train.csv").write_text("q,a,b,frac\nq1,yes,no,0.8\nq2,up,down,0.3\n")
    assert load_pairs(tmp_path / "folder", columns) == expected
    # the CLI takes the same mapping as NAME=COLUMN pairs
    out = tmp_path / "out.jsonl"
    assert main(["data", "convert", "--format", "datasets", "--input", str(tmp_path / "d.parquet"),
                 "--out", str(out), "--columns", "prompt=q,chosen=a,rejected=b,vote_fraction=frac"]) == 0
    assert load_pairs(out) == expected
    # a bad csv row is reported as its row number
    (tmp_path / "bad.csv").write_text("q,a,b,frac\nq1,yes,no,0.8\nq2,up,down,1.3\n")
    assert main(["data", "convert", "--format", "datasets", "--input", str(tmp_path / "bad.csv"),
                 "--out", str(tmp_path / "o2.jsonl"), "--columns", "prompt=q,chosen=a,rejected=b,vote_fraction=frac"]
                ) == 2
    assert capsys.readouterr().err == (f"rewardgauge: error: {tmp_path / 'bad.csv'}:2: field 'frac': must be a number "
                                       "in [0, 1], got 1.3 (column mapped to 'vote_fraction')\n")
    assert not (tmp_path / "o2.jsonl").exists()


def test_bad_columns_flag_and_json_array_errors(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    save_records(src, [MINIMAL])
    assert main(["data", "validate", str(src), "--columns", "chosen"]) == 2
    assert capsys.readouterr().err == ("rewardgauge: error: --columns: expected NAME=VALUE[,NAME=VALUE...], "
                                       "got 'chosen'\n")
    arr = tmp_path / "a.json"
    arr.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"}, 3]')
    with pytest.raises(InputError, match=r"a.json:2: expected a JSON object, got int"):
        list(iter_rows(arr))


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv", "sub/data.json"])
def test_latin1_file_in_a_data_folder_is_one_line_naming_it(tmp_path, capsys, name):
    """datasets met the bytes deep in pyarrow: a UnicodeDecodeError traceback, exit 1 (a review of issue 14)."""
    folder = tmp_path / "data"
    (folder / name).parent.mkdir(parents=True)
    row = (b"prompt,chosen,rejected\ncaf\xe9,a,b\n" if name.endswith(".csv")
           else b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    (folder / name).write_bytes(row)
    line = 2 if name.endswith(".csv") else 1
    assert main(["data", "validate", str(folder)]) == 2
    assert capsys.readouterr().err == (f"rewardgauge: error: {folder / name}:{line}: invalid UTF-8 at byte "
                                       f"{3 if line == 2 else 15} of the line; save the file as UTF-8\n")
