"""Reading a message's JSON so that nothing in it can raise later, or mean two things. Pure.

Two passes over the bytes. ``orjson`` first, because it is strict: UTF-8 only (no BOM, no encoded
surrogates), no lone ``\\ud800`` escapes, no ``NaN``/``Infinity``, no number that overflows a double, at
most 1024 levels. Then, once that passed and the nesting is known to be shallow, the standard library's
``json`` with hooks, whose result is the one kept: it sees every key of every object, so duplicated keys
are found (orjson, like every dict, keeps the last silently), and it reads integers exactly (orjson turns
an integer above 2**64 into a float) while refusing numbers longer than ``MAX_NUMBER_CHARS``, so Python's
int-to-string limit (``sys.set_int_max_str_digits``) can never be reached.

Whatever the input, ``read`` returns a ``Document`` or an ``Unreadable``; it never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "Document", "Duplicate", "Unreadable", "nesting_depth", "read"]

MAX_DEPTH = 32  # a command is an object of scalars plus a metadata object: 32 levels is plenty
MAX_NUMBER_CHARS = 40  # longer than any integer or decimal a command can mean


@dataclass(frozen=True)
class Duplicate:
    path: str  # "trace_number", "metadata.order_id"
    same_values: bool  # every occurrence had the same value


@dataclass(frozen=True)
class Document:
    data: Any
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass(frozen=True)
class Unreadable:
    reason: Literal["not_json", "too_deep", "number_too_large"]  # dead-letter labels (worker.events)
    detail: str


class _NumberTooLong(ValueError):
    pass


def read(value: bytes) -> Document | Unreadable:
    try:
        strict = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _orjson_refusal(str(exc))
    depth = nesting_depth(strict)
    if depth > MAX_DEPTH:
        return Unreadable("too_deep", f"the JSON is nested {depth} levels deep (at most {MAX_DEPTH})")
    return _read_exactly(value)


def _orjson_refusal(message: str) -> Unreadable:
    # orjson's wording is pinned by tests; anything else stays not_json, which is still a dead letter.
    if "depth limit" in message or "recursion" in message:
        return Unreadable("too_deep", f"the JSON is nested too deep to read: {message}")
    if "infinity" in message or ("number" in message and "large" in message):
        return Unreadable("number_too_large", f"the JSON holds a number too large to read: {message}")
    return Unreadable("not_json", f"the message is not JSON: {message}")


def _read_exactly(value: bytes) -> Document | Unreadable:
    found: list[tuple[dict[str, Any], str, bool]] = []  # the object itself: its id stays unique

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: dict[str, list[Any]] = {}
            for key, item in pairs:
                seen.setdefault(key, []).append(item)
            for key, values in seen.items():
                if len(values) > 1:
                    found.append((obj, key, all(_same(values[0], v) for v in values[1:])))
        return obj

    try:
        data = json.loads(
            value.decode("utf-8"),
            object_pairs_hook=pairs_hook,
            parse_int=_bounded_int,
            parse_float=_bounded_float,
            parse_constant=_no_constant,
        )
    except _NumberTooLong as exc:
        return Unreadable("number_too_large", f"the JSON holds a number too large to read: {exc}")
    except RecursionError:
        return Unreadable("too_deep", "the JSON is nested too deep to read")
    except ValueError as exc:  # includes UnicodeDecodeError and json.JSONDecodeError
        return Unreadable("not_json", f"the message is not JSON: {exc}")
    if not found:
        return Document(data)
    paths = _paths(data)
    # An object no longer in the document sat under a key that was itself repeated (the last one won):
    # that key is reported, in its own object.
    duplicates = [Duplicate(_join(paths[id(obj)], key), same) for obj, key, same in found if id(obj) in paths]
    return Document(data, duplicates)


def _same(a: Any, b: Any) -> bool:
    # type-exact: 1, 1.0 and true are different values in JSON
    return type(a) is type(b) and bool(a == b)


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong(f"an integer of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return float(text)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def nesting_depth(data: Any) -> int:
    """Levels of arrays and objects: ``1`` is 0, ``{}`` is 1, ``{"a": [1]}`` is 2. Iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _paths(data: Any) -> dict[int, str]:
    """The path of every object in the document, by identity (only walked when a key was repeated)."""
    paths: dict[int, str] = {}
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            paths[id(item)] = path
            stack.extend((child, _join(path, str(key))) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, _join(path, str(index))) for index, child in enumerate(item))
    return paths


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
