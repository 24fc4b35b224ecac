"""The compatibility rules (worker/schema_compat.py), case by case, and schemas/ against the release."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from worker.contracts import CONTRACTS, READ_BY_THE_WORKER, SCHEMA_VERSION
from worker.schema_compat import breaking_changes
from worker.schema_export import DEFAULT_DIR, incompatibilities, render

RELEASED = DEFAULT_DIR / "released"

BASE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind"],
    "properties": {
        "id": {"type": "string", "maxLength": 10, "pattern": "^[0-9]+$"},
        "kind": {"$ref": "#/definitions/Kind"},
        "note": {"type": ["string", "null"]},
        "count": {"type": "integer", "format": "int64", "minimum": 0},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "items": {"type": "array", "items": {"$ref": "#/definitions/Item"}},
    },
    "definitions": {
        "Kind": {"type": "string", "enum": ["a", "b"]},
        "Item": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
    },
}


def changed(edit: str, value: Any = None) -> dict[str, Any]:
    """BASE with one edit: 'path.to.key=' sets value, a leading '-' deletes the key."""
    schema = copy.deepcopy(BASE)
    delete = edit.startswith("-")
    *parents, last = edit.lstrip("-").split(".")
    node = schema
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return schema


# (edit, value, breaks a contract the worker reads, breaks a contract the worker publishes)
CASES = [
    ("properties.extra", {"type": "string"}, False, False),  # a new optional property: evolution
    ("-properties.note", None, True, True),  # removed
    ("required", ["id", "kind", "note"], True, True),  # an optional property now required
    ("required", ["id"], False, True),  # no longer required: readers relied on it
    ("properties.id.type", ["string", "null"], False, True),  # widened: null is new to readers
    ("properties.note.type", "string", True, False),  # narrowed: producers' null refused
    ("definitions.Kind.enum", ["a", "b", "c"], False, True),  # a new enum value
    ("definitions.Kind.enum", ["a"], True, False),  # an enum value removed
    ("properties.id.maxLength", 5, True, False),  # tighter
    ("properties.id.maxLength", 20, False, True),  # looser
    ("-properties.id.maxLength", None, False, True),  # no bound at all
    ("properties.count.minimum", 1, True, False),
    ("properties.id.pattern", "^[0-9]{1,10}$", True, True),  # not judged: any change breaks
    ("properties.count.format", "int32", True, True),
    ("properties.tags.additionalProperties", {"type": "integer"}, True, True),  # map values changed type
    ("definitions.Item.properties.n.type", "string", True, True),  # inside an array item
    ("definitions.Item.required", ["n", "m"], True, True),  # a new required property, nested
    ("additionalProperties", False, True, False),  # now closed: producers' extra fields refused
]


@pytest.mark.parametrize(("edit", "value", "reads", "publishes"), CASES)
def test_each_rule(edit: str, value: Any, reads: bool, publishes: bool) -> None:
    new = changed(edit, value)
    assert bool(breaking_changes(BASE, new, published=False)) == reads, breaking_changes(
        BASE, new, published=False
    )
    assert bool(breaking_changes(BASE, new, published=True)) == publishes, breaking_changes(
        BASE, new, published=True
    )


def test_a_renamed_named_type_breaks_generated_code() -> None:
    new = copy.deepcopy(BASE)
    new["definitions"]["Kind2"] = new["definitions"].pop("Kind")
    new["properties"]["kind"] = {"$ref": "#/definitions/Kind2"}
    problems = breaking_changes(BASE, new, published=True)
    assert "named type Kind was removed or renamed (generated code names it)" in problems
    assert "kind: its type Kind is now Kind2" in problems


def test_the_sentences_name_the_field() -> None:
    assert breaking_changes(BASE, changed("-properties.note"), published=True) == ["note: removed"]
    assert breaking_changes(BASE, changed("definitions.Kind.enum", ["a", "b", "c"]), published=True) == [
        "kind: may now be 'c', a value readers do not know"
    ]


def test_every_contract_is_released_at_the_current_version() -> None:
    assert sorted(p.name for p in RELEASED.iterdir()) == [f"v{n}" for n in range(1, SCHEMA_VERSION + 1)]
    assert sorted(p.name for p in (RELEASED / f"v{SCHEMA_VERSION}").glob("*.schema.json")) == sorted(render())


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_the_schemas_do_not_break_the_release(name: str) -> None:
    released = json.loads((RELEASED / f"v{SCHEMA_VERSION}" / f"{name}.schema.json").read_text())
    current = json.loads(render()[f"{name}.schema.json"])
    assert breaking_changes(released, current, published=name not in READ_BY_THE_WORKER) == [], (
        f"schemas/{name}.schema.json breaks schemas/released/v{SCHEMA_VERSION}: within a version a contract "
        "only gains optional fields (docs/contracts.md, 'Versions and evolution')"
    )


def test_the_released_schemas_are_never_edited_in_place() -> None:
    """A release is a copy: the same text the generator wrote then (no hand edits, no reformatting)."""
    for path in (RELEASED / f"v{SCHEMA_VERSION}").glob("*.schema.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path
    assert Path(RELEASED / f"v{SCHEMA_VERSION}" / "README.md").exists()


def test_schemas_check_reports_a_break_against_the_release(tmp_path: Path) -> None:
    for path in (RELEASED / f"v{SCHEMA_VERSION}").glob("*.schema.json"):
        (tmp_path / path.name).write_text(path.read_text())
    released = json.loads((tmp_path / "result.schema.json").read_text())
    released["definitions"]["Outcome"]["enum"].remove("unresolved")  # as if `unresolved` were new
    (tmp_path / "result.schema.json").write_text(json.dumps(released))
    assert incompatibilities(tmp_path) == [
        "result: outcome: may now be 'unresolved', a value readers do not know "
        f"(breaks {tmp_path.name}; docs/contracts.md, 'Versions and evolution')"
    ]
    assert incompatibilities() == []
