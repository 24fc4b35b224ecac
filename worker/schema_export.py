"""``ecash-worker schemas``: write (or check) the JSON Schema files of the message contracts.

The pydantic models in ``worker/contracts.py`` are the only source. ``ContractSchema`` turns what pydantic
generates into schemas that mainstream code generators (quicktype, Modelina) read into clean types:

- the dialect is draft-07 (``definitions``, not ``$defs``): the one both generators read;
- a nullable field is one property with ``"type": ["string", "null"]``, never ``anyOf`` with null (which
  Modelina turns into ``Object``/``interface{}``); an optional enum stays a named ``$ref``;
- what the worker publishes (results, dead letters, review records) is open: no
  ``additionalProperties: false``, so a consumer's generated code and validators accept the fields a later
  minor version adds. What the worker reads (commands, review decisions) stays closed, as the worker is;
- every named type has one name across all the files (the review record's command is ``ReviewedCommand``,
  not a second ``Command`` that would replace the producer's in a generator run over all the files).

``tests/unit/contracts`` checks the result against the models, the released schemas and the examples;
``tests/contracts/test_codegen.py`` runs the generators and compiles what they write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema

from worker.commandline import Command, arguments
from worker.contracts import CONTRACTS, READ_BY_THE_WORKER, SCHEMA_VERSION
from worker.schema_compat import breaking_changes

__all__ = [
    "DEFAULT_DIR",
    "DIALECT",
    "RENAMED_DEFINITIONS",
    "ContractSchema",
    "command",
    "drift",
    "incompatibilities",
    "render",
    "run",
    "schema_of",
]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "schemas"
DIALECT = "http://json-schema.org/draft-07/schema#"
RENAMED_DEFINITIONS: dict[str, dict[str, str]] = {"review_record": {"Command": "ReviewedCommand"}}


class ContractSchema(GenerateJsonSchema):
    """Pydantic's schema, rewritten as the module's docstring says. Set ``contract`` before use."""

    contract = ""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        generated = super().generate(schema, mode)
        renames = RENAMED_DEFINITIONS.get(self.contract, {})
        definitions = {
            renames.get(name, name): {**body, "title": renames[name]} if name in renames else body
            for name, body in generated.pop("$defs", {}).items()
        }
        closed = self.contract in READ_BY_THE_WORKER
        # No $id: Modelina would name the type after it (HttpsColonSlashSlash...) rather than its title
        out: dict[str, Any] = {"$schema": DIALECT}
        out.update(_rewrite(generated, renames, closed))
        if definitions:
            out["definitions"] = {name: _rewrite(body, renames, closed) for name, body in definitions.items()}
        return out


def _rewrite(node: Any, renames: dict[str, str], closed: bool) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, renames, closed) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _rewrite(value, renames, closed) for key, value in node.items()}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        # draft-07 ignores whatever stands beside a $ref (and quicktype would give a description here
        # to the named type): the reference alone
        return {"$ref": "#/definitions/" + renames.get(name, name)}
    if not closed and node.get("additionalProperties") is False:
        del node["additionalProperties"]
    properties = node.get("properties")
    if isinstance(properties, dict) and isinstance(node.get("required"), list):
        # may be null, so not required: generators then give it an optional type (a pointer in Go)
        node["required"] = [name for name in node["required"] if not _may_be_null(properties.get(name))]
    return _nullable(node)


def _may_be_null(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("type"), list) and "null" in node["type"]


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {"type": "null"}]`` as one property: ``X`` with ``null`` added to its type."""
    variants = node.get("anyOf")
    if not isinstance(variants, list) or len(variants) != 2 or {"type": "null"} not in variants:
        return node
    (other,) = [v for v in variants if v != {"type": "null"}]
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    if isinstance(other.get("type"), str):
        return {**other, **rest, "type": [other["type"], "null"]}
    # A nullable named type: the model leaves it out rather than writing null (``exclude_if``), so the
    # property is the plain reference, and not required (the tests check every such field does).
    return dict(other)


def schema_of(name: str) -> dict[str, Any]:
    generator = type("ContractSchemaFor", (ContractSchema,), {"contract": name})
    mode: JsonSchemaMode = "validation" if name in READ_BY_THE_WORKER else "serialization"
    return CONTRACTS[name].model_json_schema(mode=mode, schema_generator=generator)


def render() -> dict[str, str]:
    """File name -> content, deterministic."""
    return {f"{name}.schema.json": json.dumps(schema_of(name), indent=2) + "\n" for name in CONTRACTS}


def drift(directory: Path) -> list[str]:
    problems = []
    for file_name, content in render().items():
        path = directory / file_name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text() != content:
            problems.append(f"{path} differs from the pydantic models")
    return problems


def incompatibilities(released: Path | None = None) -> list[str]:
    """What in the models' schemas breaks the released version (``schemas/released/v<SCHEMA_VERSION>``)."""
    released = released or DEFAULT_DIR / "released" / f"v{SCHEMA_VERSION}"
    problems = []
    for name in CONTRACTS:
        path = released / f"{name}.schema.json"
        if not path.exists():
            problems.append(f"{path} is missing: a contract is released before it is published")
            continue
        for change in breaking_changes(
            json.loads(path.read_text()), schema_of(name), published=name not in READ_BY_THE_WORKER
        ):
            problems.append(
                f"{name}: {change} (breaks {path.parent.name}; docs/contracts.md, 'Versions and evolution')"
            )
    return problems


@click.command(
    "schemas",
    cls=Command,
    short_help="write or check schemas/*.schema.json from the contracts",
    help="Write or check schemas/*.schema.json from the contracts.",
)
@click.option(
    "--dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default="the repository's schemas/",
    help="where the schema files are",
)
@click.option(
    "--check",
    is_flag=True,
    help="exit 1 if the files drifted from the models, or the models break the released version",
)
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def run(args: SimpleNamespace) -> int:
    if args.check:
        problems = drift(args.dir) + incompatibilities()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for file_name, content in render().items():
        (args.dir / file_name).write_text(content)
        print(f"wrote {args.dir / file_name}")
    return 0
