"""One config dataclass per recipe; a YAML file maps one-to-one onto it and CLI flags override it.

``add_config_args(parser, Cfg)`` gives every field a ``--flag`` (help from ``field(metadata={"help": ...})``,
the value checked when the command line is parsed), ``config_from_args(Cfg, args)`` builds the dataclass
from ``--config FILE`` then the flags given.

Nested sections: a field whose type is itself a dataclass is a section. In YAML it is a mapping, in flags
each of its fields is ``--SECTION.FIELD`` (the section's name as written in YAML, the field's with dashes),
so a section ``generation`` with a field ``max_new_tokens`` is::

    generation:                      # YAML
      temperature: 0.7
      max-new-tokens: 64             # keys may use dashes (the flags' spelling) or underscores

    --generation.temperature 0.7 --generation.max-new-tokens 64      # flags

Checks, each naming the file, line and dotted field: unknown keys, duplicate keys, values of the wrong type,
values outside a ``Literal``'s choices, and non-finite numbers (nan, inf) in float fields, unless the field
says ``metadata={"allow_nonfinite": True}``. A file that is not UTF-8 is a one-line error naming it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rewardgauge.errors import InputError

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, allow_nonfinite: bool = False) -> Any:
    """Check/convert a YAML or CLI value to the field type; raise ValueError with a readable reason."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError("must not be null")
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"must be one of {list(allowed)}, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"must be an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"must be a number, got {value!r}") from None
        if not (allow_nonfinite or math.isfinite(number)):
            raise ValueError(f"must be a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"must be a string, got {value!r}")
        return str(value)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        out = [_coerce(v.strip() if isinstance(v, str) else v, item_tp, allow_nonfinite) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _parse_mapping(value)
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2:
            return {_coerce(k, args[0], allow_nonfinite): _coerce(v, args[1], allow_nonfinite)
                    for k, v in value.items()}
        return dict(value)
    return value


def _parse_mapping(text: str) -> dict:
    """A mapping on the command line: a JSON object, or ``NAME=VALUE[,NAME=VALUE...]``."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"must be a JSON object, got {text!r} ({e.msg})") from None
    out = {}
    for item in (part.strip() for part in text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE[,NAME=VALUE...], got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _schema(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Field name -> (field, resolved type) of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _key(key: Any) -> str:
    """YAML keys accept the flags' spelling: ``max-steps`` is ``max_steps``."""
    return str(key).replace("-", "_")


def _key_lines(node: yaml.Node, path: Path, prefix: str = "") -> dict[str, int]:
    """Line of each (dotted) key in the YAML tree; a key given twice in one mapping is an InputError."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = prefix + _key(key_node.value)
            line = key_node.start_mark.line + 1
            if dotted in lines:
                raise InputError(f"duplicate key (first given on line {lines[dotted]})", path=path, line=line,
                                 field=dotted)
            lines[dotted] = line
            lines.update(_key_lines(value_node, path, dotted + "."))
    return lines


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    """A YAML file's content and the line of each dotted key; bad encoding, bad YAML and duplicate keys are
    one-line InputErrors naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path=path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8", path=path,
                         line=line) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines = _key_lines(node, path) if node is not None else {}
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', None) or e}", path=path,
                         line=None if mark is None else mark.line + 1) from None
    return raw, lines


def _flatten(raw: dict, cls: type, path: Path, lines: dict[str, int], prefix: str = "") -> dict[str, tuple[Any, int | None]]:
    """YAML mapping -> {dotted field: (value, line)}, descending into sections; unknown keys are errors."""
    schema = _schema(cls)
    flat: dict[str, tuple[Any, int | None]] = {}
    for key, value in raw.items():
        name, dotted = _key(key), prefix + _key(key)
        if name not in schema:
            raise InputError(f"unknown config field (known: {', '.join(sorted(schema))})", path=path,
                             line=lines.get(dotted), field=dotted)
        tp, _ = _unwrap_optional(schema[name][1])
        if _is_section(tp):
            if not isinstance(value, dict):
                raise InputError(f"must be a mapping of {', '.join(sorted(_schema(tp)))}", path=path,
                                 line=lines.get(dotted), field=dotted)
            flat.update(_flatten(value, tp, path, lines, dotted + "."))
        else:
            flat[dotted] = (value, lines.get(dotted))
    return flat


def _leaf(cls: type, dotted: str) -> dataclasses.Field | None:
    """The field a dotted name points to (None if there is none, or it is a section)."""
    head, _, rest = dotted.partition(".")
    entry = _schema(cls).get(head)
    if entry is None:
        return None
    tp, _ = _unwrap_optional(entry[1])
    if rest:
        return _leaf(tp, rest) if _is_section(tp) else None
    return None if _is_section(tp) else entry[0]


def _leaf_type(cls: type, dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    tp = _schema(cls)[head][1]
    return _leaf_type(_unwrap_optional(tp)[0], rest) if rest else tp


def flag_name(dotted: str) -> str:
    """``generation.max_new_tokens`` -> ``--generation.max-new-tokens``."""
    return "--" + dotted.replace("_", "-")


def _build(cls: type[T], values: dict[str, Any], path: Path | None, prefix: str = "", base: Any = None) -> T:
    """The dataclass from {dotted field: coerced value}; what is not mentioned comes from ``base`` (the
    section's own default instance, e.g. from a default_factory that customises it) or else the defaults."""
    kwargs, missing = {}, []
    for name, (f, tp) in _schema(cls).items():
        dotted = prefix + name
        inner, _ = _unwrap_optional(tp)
        if _is_section(inner):
            mentioned = any(k.startswith(dotted + ".") for k in values)
            if mentioned or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
                # a section given one field keeps the other fields of its default instance, not the class's
                sub_base = getattr(base, name) if base is not None else _default(f)
                kwargs[name] = _build(inner, values, path, dotted + ".", sub_base if _is_section(type(sub_base))
                                      else None)
            elif base is not None:
                kwargs[name] = copy.deepcopy(getattr(base, name))
        elif dotted in values:
            kwargs[name] = values[dotted]
        elif base is not None:
            kwargs[name] = copy.deepcopy(getattr(base, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            missing.append(dotted)
    if missing:
        flags = ", ".join(flag_name(m) for m in missing)
        several = len(missing) > 1
        raise InputError(f"missing required option{'s' if several else ''} {flags}"
                         + (f" (or set {'them' if several else 'it'} in --config)" if path is None else ""), path=path)
    cfg = cls(**kwargs)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise InputError(f"{prefix}{e}" if prefix else str(e), path=path) from None
    return cfg


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from a YAML file (optional) and overrides ({dotted field: value}, e.g. from flags);
    unknown, duplicate or ill-typed keys raise InputError naming the file, line and dotted field."""
    raw, lines = None, {}
    if path is not None:
        path = Path(path)
        raw, lines = read_yaml(path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError("expected a mapping of config fields", path=path)
    return config_from_mapping(cls, raw, path, lines, overrides=overrides)


def config_from_mapping(cls: type[T], raw: dict | None, path: str | Path | None = None,
                        lines: dict[str, int] | None = None, prefix: str = "",
                        overrides: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from a mapping read from the YAML file ``path`` (``read_yaml`` gives it and ``lines``),
    found there under the dotted key ``prefix`` (e.g. ``stages.sft.``, so that errors name the whole key and
    its line), then ``overrides``."""
    values: dict[str, Any] = {}
    path = None if path is None else Path(path)
    for dotted, (value, line) in _flatten(raw or {}, cls, path, lines or {}, prefix).items():
        name = dotted[len(prefix):]
        f = _leaf(cls, name)
        try:
            values[name] = _coerce(value, _leaf_type(cls, name), f.metadata.get("allow_nonfinite", False))
        except ValueError as e:
            raise InputError(str(e), path=path, line=line, field=dotted) from None
    for dotted, value in (overrides or {}).items():
        dotted = _key(dotted)
        f = _leaf(cls, dotted)
        if f is None:
            raise InputError(f"unknown config field '{dotted}'")
        try:
            values[dotted] = _coerce(value, _leaf_type(cls, dotted), f.metadata.get("allow_nonfinite", False))
        except ValueError as e:
            raise InputError(f"{flag_name(dotted)}: {e}") from None
    return _build(cls, values, path)


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) of every non-section field, sections' fields after the top-level ones."""
    out, sections = [], []
    for name, (f, tp) in _schema(cls).items():
        inner, _ = _unwrap_optional(tp)
        if _is_section(inner):
            sections.append((prefix + name, inner))
        else:
            out.append((prefix + name, f, tp))
    for dotted, inner in sections:
        out += _leaves(inner, dotted + ".")
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _parse_type(tp: Any, allow_nonfinite: bool, name: str):
    """argparse ``type=``: the value is checked (type, choices, finiteness) when the command line is parsed,
    before any work starts. A bad value is an InputError (one line, exit 2), not an argparse usage error."""
    def parse(text: str) -> Any:
        try:
            return _coerce(text, tp, allow_nonfinite)
        except ValueError as e:
            raise InputError(f"{name}: {e}") from None
    parse.__name__ = getattr(_unwrap_optional(tp)[0], "__name__", "value")
    return parse


def add_config_args(parser: argparse.ArgumentParser, cls: type, positional: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field (``--section.field`` in sections). Flags default to None so only
    what the user typed overrides YAML; help shows each default once."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="YAML file whose keys are the fields below (sections as nested mappings; keys may "
                             "be spelt with - or _); flags given override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dotted, f, tp in _leaves(cls):
        inner, _ = _unwrap_optional(tp)
        section = dotted.rpartition(".")[0]
        target = parser
        if section:
            if section not in groups:
                groups[section] = parser.add_argument_group(f"{section} (YAML section '{section}:')")
            target = groups[section]
        default = _default(f)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        help_text = f.metadata.get("help", "")
        if not required and "default" not in help_text and default is not None:
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) and default else default
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        if dotted in positional:
            target.add_argument(dotted, nargs=None, default=None, help=help_text,
                                type=_parse_type(tp, f.metadata.get("allow_nonfinite", False), dotted))
            continue
        if inner is bool:
            target.add_argument(flag_name(dotted), dest=dotted, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
            continue
        metavar = None
        if typing.get_origin(inner) is typing.Literal:
            metavar = "{" + ",".join(map(str, typing.get_args(inner))) + "}"
        target.add_argument(flag_name(dotted), dest=dotted, default=None, metavar=metavar,
                            type=_parse_type(tp, f.metadata.get("allow_nonfinite", False), flag_name(dotted)),
                            help=help_text + (" [required unless in --config]" if required else ""))


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    overrides = {dotted: getattr(args, dotted) for dotted, _, _ in _leaves(cls)
                 if getattr(args, dotted, None) is not None}
    return load_config(cls, getattr(args, "config", None), overrides)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML/JSON values (sections as nested dicts, paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
