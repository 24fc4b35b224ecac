"""Is a contract's schema compatible with the one released? A small, conservative comparator.

``breaking_changes(released, current, published=...)`` lists what would break someone, as sentences naming
the field. Two directions (docs/contracts.md, "Versions and evolution"):

- a contract the worker **reads** (commands, review decisions; ``published=False``): every message valid
  under the released schema must stay valid (producers keep sending it), so nothing may be narrowed: no
  property removed, none newly required, no type or enum value dropped, no tighter bound, pattern or format;
- a contract the worker **publishes** (results, dead letters, review records; ``published=True``): readers
  built on the released schema must read every new message, and readers built on the new one must read the
  records still retained from the old, so nothing may be widened either: no new type (null included), no
  new enum value, no looser bound, and a required property stays required.

Both ways: a removed property, a new required one, a changed pattern or format (no regex inclusion is
attempted), a removed or renamed named type (generated code names it). Adding an optional property is
what evolution is made of. Anything the comparator cannot compare (``anyOf``...) must be equal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Schema", "breaking_changes"]

Schema = dict[str, Any]
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_OPAQUE = ("anyOf", "oneOf", "allOf", "not", "if", "then", "else", "prefixItems")


def breaking_changes(released: Schema, current: Schema, *, published: bool) -> list[str]:
    problems: list[str] = []
    old_defs, new_defs = _definitions(released), _definitions(current)
    for name in sorted(set(old_defs) - set(new_defs)):
        problems.append(f"named type {name} was removed or renamed (generated code names it)")
    _compare(released, current, "", _Context(old_defs, new_defs, published), problems)
    return problems


class _Context:
    def __init__(self, old_defs: dict[str, Schema], new_defs: dict[str, Schema], published: bool) -> None:
        self.old_defs, self.new_defs, self.published = old_defs, new_defs, published
        self.seen: set[tuple[str, str]] = set()


def _definitions(schema: Schema) -> dict[str, Schema]:
    return {**schema.get("$defs", {}), **schema.get("definitions", {})}


def _resolve(node: Any, defs: dict[str, Schema]) -> tuple[Schema, str | None]:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        name = node["$ref"].rsplit("/", 1)[-1]
        return defs.get(name, {}), name
    return (node if isinstance(node, dict) else {}), None


def _types(node: Schema) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    return {"any"}


def _enum(node: Schema) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _open(node: Schema) -> bool:
    return node.get("additionalProperties", True) is not False


def _compare(old_node: Any, new_node: Any, path: str, ctx: _Context, problems: list[str]) -> None:  # noqa: C901 - one rule per JSON Schema keyword, each a line; split, they would hide the order
    old, old_name = _resolve(old_node, ctx.old_defs)
    new, new_name = _resolve(new_node, ctx.new_defs)
    where = path or "the message"
    if old_name and new_name:
        if old_name != new_name:
            problems.append(f"{where}: its type {old_name} is now {new_name}")
        if (old_name, new_name) in ctx.seen:
            return
        ctx.seen.add((old_name, new_name))
    for key in _OPAQUE:
        if old.get(key) != new.get(key):
            problems.append(f"{where}: {key} changed (the comparator does not judge it: keep it as released)")
    old_types, new_types = _types(old), _types(new)
    narrowed, widened = old_types - new_types - {"any"}, new_types - old_types
    if "any" in new_types and "any" not in old_types:
        widened = {"any"}
    if "any" in old_types and "any" not in new_types:
        narrowed = {"any value"}
    if ctx.published and widened:
        problems.append(f"{where}: may now be {', '.join(sorted(widened))}, which readers do not expect")
    if not ctx.published and narrowed:
        problems.append(f"{where}: no longer accepts {', '.join(sorted(narrowed))}")
    _compare_enum(_enum(old), _enum(new), where, ctx.published, problems)
    _compare_bounds(old, new, where, ctx.published, problems)
    for key in ("pattern", "format"):
        if old.get(key) != new.get(key):
            problems.append(f"{where}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")
    _compare_object(old, new, path, ctx, problems)
    if "items" in old or "items" in new:
        _compare(old.get("items", {}), new.get("items", {}), f"{path}[]", ctx, problems)


def _compare_enum(
    old: list[Any] | None, new: list[Any] | None, where: str, published: bool, out: list[str]
) -> None:
    if old is None and new is None:
        return
    if old is None or new is None:
        out.append(f"{where}: an enumeration was {'removed' if new is None else 'added'}")
        return
    removed = [v for v in old if v not in new]
    added = [v for v in new if v not in old]
    if removed and not published:
        out.append(f"{where}: no longer accepts {', '.join(map(repr, removed))}")
    if added and published:
        out.append(f"{where}: may now be {', '.join(map(repr, added))}, a value readers do not know")


def _compare_bounds(old: Schema, new: Schema, where: str, published: bool, out: list[str]) -> None:
    for key in _UPPER + _LOWER:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        upper = key in _UPPER
        # "tighter": a smaller upper bound, a larger lower bound, or a bound that was not there
        if before is None:
            tighter = True
        elif after is None:
            tighter = False
        else:
            tighter = after < before if upper else after > before
        if tighter != published:
            out.append(f"{where}: {key} changed from {before} to {after}")


def _compare_object(old: Schema, new: Schema, path: str, ctx: _Context, out: list[str]) -> None:  # noqa: C901 - one rule per JSON Schema keyword, each a line
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    prefix = f"{path}." if path else ""
    for name in old_props:
        if name not in new_props:
            out.append(f"{prefix}{name}: removed")
        elif name in old_required and name not in new_required and ctx.published:
            out.append(f"{prefix}{name}: no longer required, and readers rely on it")
    for name in sorted(new_required - old_required):
        out.append(f"{prefix}{name}: {'now required' if name in old_props else 'a new required property'}")
    if "properties" in old or "properties" in new:
        if ctx.published and not _open(old) and _open(new):
            out.append(f"{path or 'the message'}: now open to unknown properties, and was closed")
        if not ctx.published and _open(old) and not _open(new):
            out.append(f"{path or 'the message'}: now refuses unknown properties")
    for name in old_props:
        if name in new_props:
            _compare(old_props[name], new_props[name], f"{prefix}{name}", ctx, out)
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_extra, dict) and isinstance(new_extra, dict):
        _compare(old_extra, new_extra, f"{prefix}*", ctx, out)
    elif isinstance(old_extra, dict) != isinstance(new_extra, dict) and "properties" not in old:
        out.append(f"{path or 'the message'}: the type of its values changed")
