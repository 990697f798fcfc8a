"""Property-based tests of the data layer (issue 16): whatever a file holds -- any JSON value, text with lone
surrogates and combining marks, NaN and infinities, deep nesting, huge lines, random bytes -- reading it ends in
valid records or in ``InputError``, never in another exception; and a valid record always writes back as strict
JSON in UTF-8 that reads back equal.

Settings: ``EXAMPLES`` examples per test (raise it with REWARDGAUGE_HYPOTHESIS_EXAMPLES for a long hunt), no
deadline (the machine is shared), no example database (nothing written into the repository).
"""

from __future__ import annotations

import json
import math
import os
import string
import unicodedata

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rewardgauge.data.adapters import hh_rlhf_pairs, multi_aspect_overall_pairs, multi_aspect_pairs
from rewardgauge.data.io import load_demonstrations, load_pairs, save_records
from rewardgauge.data.records import PreferencePair
from rewardgauge.data.validate import MAX_DEPTH, demonstration_from_dict, pair_from_dict, same_text
from rewardgauge.errors import InputError

EXAMPLES = int(os.environ.get("REWARDGAUGE_HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------- strategies

def mostly(common: st.SearchStrategy, rare: st.SearchStrategy, percent_rare: int) -> st.SearchStrategy:
    """``rare`` in about ``percent_rare`` % of draws (one_of alone would draw each branch equally often)."""
    return st.integers(0, 99).flatmap(lambda i: rare if i < percent_rare else common)


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
COMBINING = st.characters(categories=["Mn", "Me"])
ODD = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\n", "\t", "\x00", "\u202e",
                       "e\u0301", "\u00e9", "\U0001f600", "\ufffd"])
WORDS = st.tuples(st.text(string.ascii_letters, min_size=1, max_size=6),
                  st.text(string.ascii_letters + " .,!?", max_size=10)).map("".join)
# Clean text: any Unicode except surrogates (what a valid record may hold).
CLEAN = mostly(WORDS, st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12), 30)
# Text as a hub dataset may hold it: mostly words, sometimes any Unicode, lone surrogates, combining marks,
# invisible marks.
TEXT = mostly(CLEAN, st.lists(st.one_of(WORDS, st.text(max_size=4), SURROGATES, COMBINING, ODD), max_size=8).map(
    "".join), 8)
NUMBER = st.one_of(st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
                   st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 1, 0.5, -0.0, 1e308, -1e308]))
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)


def deep(depth: int, leaf=None) -> object:
    value: object = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


DEEP = st.integers(min_value=MAX_DEPTH - 3, max_value=MAX_DEPTH + 3).map(deep)
MESSAGES = st.lists(st.fixed_dictionaries({"role": mostly(st.sampled_from(["user", "assistant", "system"]), TEXT, 10),
                                           "content": TEXT}, optional={"name": mostly(WORDS, JSON, 10)}),
                    min_size=1, max_size=3)


def field_value(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value for a field, sometimes anything at all (any JSON value, deep nesting)."""
    return mostly(valid, st.one_of(JSON, DEEP), 6)


PAIR = st.fixed_dictionaries(
    {"prompt": field_value(st.one_of(TEXT, MESSAGES)), "chosen": field_value(TEXT), "rejected": field_value(TEXT)},
    optional={"id": field_value(st.one_of(TEXT, st.integers())),
              "votes": field_value(st.lists(st.sampled_from([0, 1]), max_size=5)),
              "vote_fraction": field_value(st.floats(0, 1)),
              "annotators": field_value(st.lists(TEXT, max_size=5)),
              "aspects": field_value(st.dictionaries(TEXT, st.floats(0, 1), max_size=3)),
              "margin": field_value(NUMBER),
              "difficulty": field_value(st.sampled_from(["easy", "medium", "hard"])),
              "source": field_value(TEXT),
              "meta": field_value(st.dictionaries(TEXT, JSON, max_size=4))})
CLEAN_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                                       allow_infinity=False), CLEAN),
                          lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(CLEAN, inner, max_size=3)),
                          max_leaves=8)
VALID_PAIR = st.builds(
    PreferencePair, prompt=st.one_of(CLEAN, st.lists(st.fixed_dictionaries({"role": WORDS, "content": CLEAN}),
                                                     min_size=1, max_size=3)),
    chosen=CLEAN, rejected=CLEAN, votes=st.one_of(st.none(), st.lists(st.sampled_from([0, 1]), min_size=1, max_size=5)),
    aspects=st.one_of(st.none(), st.dictionaries(CLEAN, st.floats(0, 1), max_size=3)),
    margin=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    meta=st.dictionaries(CLEAN, CLEAN_JSON, max_size=3))
DEMO = st.fixed_dictionaries({"prompt": field_value(st.one_of(TEXT, MESSAGES)), "response": field_value(TEXT)},
                             optional={"meta": field_value(st.dictionaries(TEXT, JSON, max_size=4)),
                                       "id": field_value(TEXT)})

# ---------------------------------------------------------------- what a valid record must satisfy


def strict_json_line(record) -> str:
    """The record as the writers write it; raises if it is not strict JSON in valid UTF-8."""
    line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True, allow_nan=False)
    line.encode("utf-8")  # no lone surrogate anywhere
    return line


def check_pair(pair: PreferencePair) -> None:
    line = strict_json_line(pair)
    assert not same_text(pair.chosen, pair.rejected)
    assert pair_from_dict(json.loads(line)) == pair  # what we write, we read back unchanged
    assert 0.0 <= pair.preference <= 1.0


@SETTINGS
@given(PAIR)
def test_any_pair_dict_is_a_valid_pair_or_input_error(obj):
    try:
        pair = pair_from_dict(obj, path="x.jsonl", line=1)
    except InputError as e:
        assert str(e).startswith("x.jsonl:1") and "\n" not in str(e)
        return
    check_pair(pair)


@SETTINGS
@given(DEMO)
def test_any_demonstration_dict_is_valid_or_input_error(obj):
    try:
        demo = demonstration_from_dict(obj)
    except InputError:
        return
    assert demonstration_from_dict(json.loads(strict_json_line(demo))) == demo


def valid_dict(pair: PreferencePair) -> dict:
    """``pair`` as a file row, when it passes validation (hypothesis draws blank and equal texts too)."""
    try:
        return pair_from_dict(pair.to_dict()).to_dict()
    except InputError:
        assume(False)


@SETTINGS
@given(VALID_PAIR, st.sampled_from([math.nan, math.inf, -math.inf]), st.lists(CLEAN, min_size=1, max_size=4),
       st.booleans())
def test_a_non_finite_number_anywhere_in_meta_is_refused_naming_it(pair, bad, keys, in_list):
    row = valid_dict(pair)
    value: object = [1, bad] if in_list else bad
    for key in reversed(keys[1:]):
        value = {key: value}
    row["meta"] = {**row.get("meta", {}), keys[0]: value}
    try:
        pair_from_dict(row)
    except InputError as e:
        assert e.field.startswith("meta.") and "not a JSON number" in e.message
    else:
        raise AssertionError(f"{bad} in meta accepted")


STRING_FIELDS = ("prompt", "chosen", "rejected", "source", "id")


@SETTINGS
@given(VALID_PAIR, st.sampled_from(STRING_FIELDS + ("meta key", "meta value")), SURROGATES, st.integers(0, 40))
def test_a_lone_surrogate_in_any_text_is_refused_naming_its_field(pair, where, surrogate, at):
    row = valid_dict(pair)
    if where.startswith("meta"):
        key = "k" + surrogate if where == "meta key" else "k"
        row["meta"] = {**row.get("meta", {}), key: "v" + surrogate if where == "meta value" else "v"}
    elif isinstance(row.get(where, ""), str):
        text = row.get(where, "x")
        row[where] = text[:at] + surrogate + text[at:]
    else:  # a prompt of chat messages
        message = row[where][0]
        message["content"] = message["content"][:at] + surrogate + message["content"][at:]
    try:
        pair_from_dict(row)
    except InputError as e:
        assert "lone surrogate" in e.message and e.field.split("[")[0].split(".")[0] == where.split()[0]
    else:
        raise AssertionError(f"lone surrogate in {where} accepted")


@SETTINGS
@given(st.dictionaries(TEXT, JSON, max_size=6))
def test_any_object_with_any_keys_is_a_valid_pair_or_input_error(obj):
    try:
        check_pair(pair_from_dict(obj))
    except InputError:
        pass


def _line_bytes(value, how: int) -> bytes:
    """One line of a file: the value serialised as Python would (NaN, Infinity, escaped surrogates), raw
    (surrogates written as surrogatepass bytes, i.e. invalid UTF-8), or with a BOM."""
    text = json.dumps(value, ensure_ascii=bool(how % 2))
    data = text.encode("utf-8", "surrogatepass")
    return (b"\xef\xbb\xbf" + data if how == 2 else data) + b"\n"


LINE = st.one_of(st.tuples(st.one_of(PAIR, JSON), st.integers(0, 2)).map(lambda t: _line_bytes(*t)),
                 st.binary(max_size=60).map(lambda b: b + b"\n"),
                 st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n + b"\n"),
                 st.just(b'{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"n": ' + b"9" * 5000 + b"}}\n"))


@SETTINGS
@given(st.lists(LINE, max_size=5), st.sampled_from([".jsonl", ".json"]))
def test_any_file_loads_as_valid_pairs_or_input_error(tmp_path_factory, lines, suffix):
    path = tmp_path_factory.mktemp("f") / f"in{suffix}"
    path.write_bytes(b"".join(lines))
    for load in (load_pairs, load_demonstrations):
        try:
            records = load(path)
        except InputError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            continue
        for r in records:
            strict_json_line(r)


@SETTINGS
@given(st.lists(VALID_PAIR, min_size=1, max_size=4))
def test_valid_pairs_write_and_read_back_equal(tmp_path_factory, candidates):
    pairs = []
    for candidate in candidates:  # through validation, as a file's rows would go (blank or equal texts drop out)
        try:
            pairs.append(pair_from_dict(candidate.to_dict()))
        except InputError:
            pass
    assume(pairs)
    path = tmp_path_factory.mktemp("w") / "out.jsonl"
    assert save_records(path, pairs) == len(pairs)
    assert load_pairs(path) == pairs


@settings(SETTINGS, max_examples=max(4, EXAMPLES // 30))
@given(st.integers(1, 3), st.sampled_from(["", "\ud800", "\u0000", "e\u0301"]))
def test_huge_lines_are_read_or_refused(tmp_path_factory, megabytes, tail):
    """A line of 1-3 MB: read whole, or refused with one line when it ends in a lone surrogate."""
    chosen = "word " * (megabytes * 200_000) + tail
    path = tmp_path_factory.mktemp("h") / "in.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": chosen, "rejected": "no"}) + "\n")
    try:
        pairs = load_pairs(path)
    except InputError as e:
        assert tail == "\ud800" and "field 'chosen': has a lone surrogate U+D800" in str(e)
        return
    assert pairs[0].chosen == chosen and tail != "\ud800"


HH_TRANSCRIPT = st.lists(st.tuples(st.sampled_from(["\n\nHuman:", "\n\nAssistant:", ""]), TEXT), max_size=4).map(
    lambda turns: "".join(m + " " + t for m, t in turns))


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"chosen": field_value(HH_TRANSCRIPT), "rejected": field_value(HH_TRANSCRIPT)}),
                max_size=4), st.sampled_from(["messages", "text"]))
def test_hh_rlhf_rows_give_valid_pairs_or_input_error(rows, prompt_format):
    try:
        pairs, skipped = hh_rlhf_pairs(enumerate(rows, 1), prompt_format=prompt_format)
    except InputError:
        return
    assert len(pairs) + sum(skipped.values()) == len(rows)
    for pair in pairs:
        check_pair(pair)


RATED = st.fixed_dictionaries({"text": field_value(TEXT),
                               "ratings": field_value(st.dictionaries(st.sampled_from(["a", "b"]), NUMBER))})


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"prompt": field_value(TEXT), "responses": field_value(st.lists(RATED,
                                                                                               max_size=3))},
                                      optional={"meta": JSON}), max_size=3), st.booleans())
def test_multi_aspect_rows_give_valid_pairs_or_input_error(rows, overall):
    try:
        pairs, _ = (multi_aspect_overall_pairs if overall else multi_aspect_pairs)(enumerate(rows, 1))
    except InputError:
        return
    for pair in pairs:
        check_pair(pair)


@SETTINGS
@given(TEXT.filter(lambda t: t.strip() and not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_same_text_ignores_normalisation_and_zero_width_characters(text):
    assert same_text(text, unicodedata.normalize("NFD", text))
    assert same_text(text, "\u200b".join(text))
    assert not same_text(text, text + " x")


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@SETTINGS
@given(st.lists(st.tuples(WORDS, st.dictionaries(st.sampled_from(["a", "b"]), FINITE, min_size=1)), min_size=2,
                max_size=3, unique_by=lambda r: r[0]),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b"]), FINITE, min_size=1)))
def test_any_finite_ratings_give_finite_margins_or_input_error(responses, weights):
    """Ratings and weights of any finite size: a pair's margin is their (weighted) gap, which can overflow."""
    rows = [(1, {"prompt": "q", "responses": [{"text": t, "ratings": r} for t, r in responses]})]
    for make in (lambda: multi_aspect_pairs(rows), lambda: multi_aspect_overall_pairs(rows, weights=weights)):
        try:
            pairs, _ = make()
        except InputError as e:
            assert e.field in ("responses", "weights")
            continue
        for pair in pairs:
            check_pair(pair)
