"""Build records from untrusted dicts, checking every field. Every problem is one ``InputError`` that names
the file, the line and the field (``votes[2]``, ``prompt[0].content``, ``aspects.safety``), so the CLI can
print one line and exit 2.

Rules (a record is either a ``PreferencePair`` or a ``Demonstration``):
- ``prompt``: a non-blank string, or a non-empty list of chat messages ``{"role": str, "content": str}``.
- ``chosen`` / ``rejected`` / ``response``: non-blank strings; ``chosen`` and ``rejected`` must differ, also
  after Unicode NFC normalisation and removal of zero-width characters (``same_text``).
- ``votes``: non-empty list of 0/1 integers (1 = the annotator preferred ``chosen``).
- ``vote_fraction``: a number in [0, 1]; when ``votes`` is also given it must equal their mean (within 1e-3,
  so rounded fractions pass).
- ``annotators``: list of non-blank strings, one per vote (so ``votes`` is required with it).
- ``aspects``: object mapping aspect name -> preference for ``chosen`` in [0, 1].
- ``margin``: a finite number. ``difficulty``: one of easy / medium / hard. ``id``: string (an integer is
  accepted and turned into a string). ``source``: string. ``meta``: object.
- ``null`` for an optional field means "not set" (``datasets`` fills absent columns with nulls).
- Everywhere in a record, ``meta`` included (``check_values``): no lone surrogate (``"\\ud800"`` parses from
  JSON but is not Unicode and cannot be written as UTF-8), no NaN or infinity (not JSON numbers; they would be
  written back as bare ``NaN``), nesting at most ``MAX_DEPTH`` levels.
- Keys that are not fields are an error (a typo guard: ``vote`` instead of ``votes`` would otherwise be lost
  silently) unless a column mapping is given, in which case only the mapped / same-named columns are read.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from rewardgauge.data.records import DIFFICULTIES, Demonstration, PreferencePair
from rewardgauge.errors import InputError

PAIR_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PreferencePair))
DEMONSTRATION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Demonstration))

# Soft labels are often written rounded (0.333); a larger gap means votes and fraction disagree.
_FRACTION_TOLERANCE = 1e-3
# Deeper nesting is refused: no record needs it, and deep structures exhaust recursion in JSON writers.
MAX_DEPTH = 100
# Characters that render as nothing (zero-width space, non-joiner, joiner, word joiner, BOM).
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def same_text(a: str, b: str) -> bool:
    """Whether two responses are the same text for a reader: equal after NFC normalisation (an accent as one
    code point or as a letter plus a combining mark), removal of zero-width characters, and outer whitespace."""
    def canonical(text: str) -> str:
        return unicodedata.normalize("NFC", text.translate(_ZERO_WIDTH)).strip()
    return canonical(a) == canonical(b)


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (JSON's ``"\\ud800"``), or None when it is valid Unicode."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def show(value: Any) -> str:
    """A short repr of a bad value, for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool), not NaN or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RecordChecker:
    """Checks the fields of one record (file `path`, line `line`); `fail` builds the InputError, naming the
    user's column when a column mapping renamed the field."""

    def __init__(self, path: Any, line: int | None, columns: Mapping[str, str] | None):
        self.path, self.line, self.columns = path, line, dict(columns or {})

    def fail(self, field: str, message: str) -> InputError:
        root = field
        for sep in "[.":
            root = root.split(sep, 1)[0]
        source = self.columns.get(root, root)
        if source != root:
            field = source + field[len(root):]
            message = f"{message} (column mapped to '{root}')"
        return InputError(message, path=self.path, line=self.line, field=field)

    def check_values(self, obj: Mapping) -> None:
        """Every value of ``obj`` however deep (keys too): strings valid Unicode, numbers finite, nesting at
        most ``MAX_DEPTH``. Walks with a stack, not recursion, so depth cannot exhaust Python's stack."""
        stack: list[tuple[str, Any, int]] = [(str(k), v, 1) for k, v in reversed(list(obj.items()))]
        while stack:
            where, value, depth = stack.pop()
            if depth > MAX_DEPTH:
                top = where.split("[", 1)[0].split(".", 2)
                raise self.fail(".".join(top[:2]), f"is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, str):
                at = lone_surrogate(value)
                if at is not None:
                    raise self.fail(where, f"has a lone surrogate U+{ord(value[at]):04X} at character {at} "
                                           "(not valid Unicode text; it cannot be written as UTF-8)")
            elif isinstance(value, float) and not math.isfinite(value):
                raise self.fail(where, f"is {value}, which is not a JSON number; use null or a finite number")
            elif isinstance(value, Mapping):
                for key, item in reversed(list(value.items())):
                    key = str(key)
                    if lone_surrogate(key) is not None:
                        raise self.fail(where, f"has a key with a lone surrogate: {show(key)}")
                    stack.append((f"{where}.{key}", item, depth + 1))
            elif isinstance(value, (list, tuple)):
                stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in reversed(list(enumerate(value))))

    def text(self, obj: Mapping, name: str, required: bool, field: str | None = None) -> str | None:
        """``obj[name]`` as a string (non-blank when required); ``field`` names it in errors."""
        field = field or name
        value = obj.get(name)
        if value is None:
            if required:
                raise self.fail(field, "missing required field" if name not in obj else "must not be null")
            return None
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, got {json_type(value)} {show(value)}")
        if required and not value.strip():
            raise self.fail(field, "must not be empty")
        return value

    def prompt(self, obj: Mapping) -> str | list[dict[str, str]]:
        value = obj.get("prompt")
        if isinstance(value, str) or value is None:
            return self.text(obj, "prompt", required=True)
        if not isinstance(value, (list, tuple)):
            raise self.fail("prompt", "must be a string or a list of chat messages "
                                      f"{{\"role\", \"content\"}}, got {json_type(value)} {show(value)}")
        messages = self.messages(value, "prompt")
        if not any(m["content"].strip() for m in messages):
            raise self.fail("prompt", "every message's content is empty")
        return messages

    def messages(self, value: Any, field: str) -> list[dict[str, str]]:
        """A non-empty list of chat messages ``{"role", "content", ...}`` with string values (``field`` names it)."""
        if not isinstance(value, (list, tuple)):
            raise self.fail(field, f"must be a list of chat messages {{\"role\", \"content\"}}, got "
                                   f"{json_type(value)} {show(value)}")
        if not value:
            raise self.fail(field, "must not be empty")
        messages = []
        for i, message in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(message, Mapping):
                raise self.fail(where, f"must be a chat message {{\"role\", \"content\"}}, "
                                       f"got {json_type(message)} {show(message)}")
            for key in ("role", "content"):
                if key not in message or message[key] is None:
                    raise self.fail(f"{where}.{key}", "missing required field")
            for key, item in message.items():
                if not isinstance(item, str):
                    raise self.fail(f"{where}.{key}", f"must be a string, got {json_type(item)} {show(item)}")
            if not message["role"].strip():
                raise self.fail(f"{where}.role", "must not be empty")
            messages.append(dict(message))
        return messages

    def ident(self, obj: Mapping) -> str:
        value = obj.get("id")
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.fail("id", f"must be a string, got {json_type(value)} {show(value)}")
        return value

    def meta(self, obj: Mapping) -> dict[str, Any]:
        value = obj.get("meta")
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail("meta", f"must be an object, got {json_type(value)} {show(value)}")
        return dict(value)

    def unknown_keys(self, obj: Mapping, known: tuple[str, ...]) -> None:
        for key in obj:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise InputError(f"unknown field; {hint}(known: {', '.join(known)}; "
                                 "pass a column mapping to read other columns)",
                                 path=self.path, line=self.line, field=str(key))


def select_columns(row: Mapping, fields: tuple[str, ...], columns: Mapping[str, str]) -> dict[str, Any]:
    """Our record dict from a source row: field ``f`` is read from column ``columns.get(f, f)``.

    Columns that map to no field are ignored; a mapping key that is not a field is an error.
    """
    for name in columns:
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"column mapping names an unknown field; {hint}(fields: {', '.join(fields)})",
                             field=name)
    return {f: row[columns.get(f, f)] for f in fields if columns.get(f, f) in row}


def pair_from_dict(obj: Mapping[str, Any], *, path: Any = None, line: int | None = None,
                   columns: Mapping[str, str] | None = None) -> PreferencePair:
    """A validated ``PreferencePair`` from a JSON object (see the module docstring for the rules)."""
    check = RecordChecker(path, line, columns)
    if columns is None:
        check.unknown_keys(obj, PAIR_FIELDS)
    else:
        obj = select_columns(obj, PAIR_FIELDS, columns)
    check.check_values(obj)
    prompt = check.prompt(obj)
    chosen = check.text(obj, "chosen", required=True)
    rejected = check.text(obj, "rejected", required=True)
    if same_text(chosen, rejected):
        raise check.fail("rejected", "is the same text as 'chosen' (up to Unicode normalisation and zero-width "
                                     "characters); a pair needs two different responses")

    votes = obj.get("votes")
    if votes is not None:
        if not isinstance(votes, (list, tuple)):
            raise check.fail("votes", f"must be a list of 0/1 votes, got {json_type(votes)} {show(votes)}")
        if not votes:
            raise check.fail("votes", "must not be empty (leave it out when there are no votes)")
        for i, v in enumerate(votes):
            if isinstance(v, bool) or not isinstance(v, int) or v not in (0, 1):
                raise check.fail(f"votes[{i}]", "must be 0 (preferred rejected) or 1 (preferred chosen), "
                                                f"got {show(v)}")
        votes = list(votes)

    fraction = obj.get("vote_fraction")
    if fraction is not None:
        if not is_finite_number(fraction) or not 0.0 <= fraction <= 1.0:
            raise check.fail("vote_fraction", f"must be a number in [0, 1], got {show(fraction)}")
        if votes and abs(fraction - sum(votes) / len(votes)) > _FRACTION_TOLERANCE:
            raise check.fail("vote_fraction", f"is {fraction} but the votes give "
                                              f"{sum(votes)}/{len(votes)} = {sum(votes) / len(votes):.4g}")
        fraction = float(fraction)

    annotators = obj.get("annotators")
    if annotators is not None:
        if not isinstance(annotators, (list, tuple)):
            raise check.fail("annotators", f"must be a list of annotator names, got {json_type(annotators)} "
                                           f"{show(annotators)}")
        for i, a in enumerate(annotators):
            if not isinstance(a, str) or not a.strip():
                raise check.fail(f"annotators[{i}]", f"must be a non-empty string, got {show(a)}")
        if votes is None:
            raise check.fail("annotators", "given without 'votes' (one annotator per vote)")
        if len(annotators) != len(votes):
            raise check.fail("annotators", f"has {len(annotators)} names but 'votes' has {len(votes)} votes "
                                           "(one annotator per vote)")
        annotators = list(annotators)

    aspects = obj.get("aspects")
    if aspects is not None:
        if not isinstance(aspects, Mapping):
            raise check.fail("aspects", f"must be an object {{aspect: preference in [0, 1]}}, got "
                                        f"{json_type(aspects)} {show(aspects)}")
        for name, value in aspects.items():
            if not str(name).strip():
                raise check.fail("aspects", "has an empty aspect name")
            if not is_finite_number(value) or not 0.0 <= value <= 1.0:
                raise check.fail(f"aspects.{name}", "must be a preference for chosen in [0, 1] "
                                                    f"(1 chosen better, 0 rejected better), got {show(value)}")
        aspects = {str(k): float(v) for k, v in aspects.items()}

    margin = obj.get("margin")
    if margin is not None:
        if not is_finite_number(margin):
            raise check.fail("margin", f"must be a finite number, got {json_type(margin)} {show(margin)}")
        margin = float(margin)

    difficulty = obj.get("difficulty")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise check.fail("difficulty", f"must be one of {', '.join(DIFFICULTIES)}, got {show(difficulty)}")

    return PreferencePair(
        prompt=prompt, chosen=chosen, rejected=rejected, id=check.ident(obj), votes=votes,
        vote_fraction=fraction, annotators=annotators, aspects=aspects, margin=margin, difficulty=difficulty,
        source=check.text(obj, "source", required=False) or "", meta=check.meta(obj))


def demonstration_from_dict(obj: Mapping[str, Any], *, path: Any = None, line: int | None = None,
                            columns: Mapping[str, str] | None = None) -> Demonstration:
    """A validated ``Demonstration`` (prompt, response) from a JSON object."""
    check = RecordChecker(path, line, columns)
    if columns is None:
        check.unknown_keys(obj, DEMONSTRATION_FIELDS)
    else:
        obj = select_columns(obj, DEMONSTRATION_FIELDS, columns)
    check.check_values(obj)
    return Demonstration(
        prompt=check.prompt(obj), response=check.text(obj, "response", required=True), id=check.ident(obj),
        source=check.text(obj, "source", required=False) or "", meta=check.meta(obj))
