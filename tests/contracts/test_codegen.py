"""The contracts as a producer team meets them: code generated in Java, Go and TypeScript.

quicktype (from the JSON Schema files) and Modelina (from the AsyncAPI document), pinned in
tools/codegen/package-lock.json and installed by scripts/ensure-codegen-tools.sh (``make test`` runs it),
generate models; the test fails on any field typed ``Object``/``any``/``unknown``/``interface{}`` or any
anonymous type, compiles the Go (``go vet``, ``go build``), the TypeScript (``tsc --strict``) and the Java
(``javac``), and round-trips every example of docs/contracts.md through the Go and TypeScript of both
generators: decode (Go refuses unknown fields), encode, compare. It also matches the amount pattern with
Go's regexp (RE2) and JavaScript's RegExp against the worker's own rule. Nothing is skipped: a missing
tool fails the test, naming the script that installs it.

What a round trip may change, as a consumer's code would: a null or empty optional field may come back
absent (Go's ``omitempty``), and a timestamp may be written differently for the same instant (quicktype's
TypeScript reads ``date-time`` as a JavaScript ``Date``: milliseconds; docs/contracts.md says so).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticCustomError

from tests.contract_examples import Example, examples
from worker.amount_rules import AMOUNT_TEXT_PATTERN, command_amount
from worker.contracts import CONTRACTS
from worker.schema_export import DEFAULT_DIR

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "codegen"
INSTALL = "bash scripts/ensure-codegen-tools.sh (make test runs it)"
GENERATORS = ("quicktype", "modelina")
TOP_LEVEL = {"Command", "Result", "DeadLetter", "ReviewRecord", "ReviewDecision", "ReviewedCommand"}
NAMED = {"CommandType", "Outcome", "ResolvedBy", "Header", "Attempt", "AttemptOperation", "ReviewState"}
TIMEOUT_S = 240


@dataclass(frozen=True)
class Generated:
    out: Path
    summary: dict[str, dict[str, list[str]]]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: {INSTALL} checks for it and says what to install")
    return path


def _run(argv: list[str], cwd: Path, stdin: str | None = None) -> str:
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOPROXY": "off", "CGO_ENABLED": "0"}
    done = subprocess.run(
        argv, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    node = _tool("node")
    if not (TOOLS / "node_modules" / ".ecash-lock-sha256").exists():
        pytest.fail(f"the code generators are not installed in {TOOLS}/node_modules: {INSTALL}")
    out = tmp_path_factory.mktemp("codegen")
    summary = json.loads(_run([node, str(TOOLS / "generate.mjs"), str(DEFAULT_DIR), str(out)], cwd=TOOLS))
    return Generated(out, summary)


@pytest.fixture(scope="module")
def go_roundtrip(generated: Generated) -> Path:
    go = _tool("go")
    module = generated.out / "go"
    (module / "go.mod").write_text("module contractscheck\n\ngo 1.22\n")
    (module / "cmd" / "roundtrip").mkdir(parents=True)
    shutil.copy(TOOLS / "harness" / "roundtrip.go", module / "cmd" / "roundtrip" / "main.go")
    _run([go, "vet", "./..."], cwd=module)
    _run([go, "build", "-o", "roundtrip", "./cmd/roundtrip"], cwd=module)
    return module / "roundtrip"


@pytest.fixture(scope="module")
def ts_roundtrip(generated: Generated) -> Path:
    _tool("node")
    project = generated.out / "ts"
    shutil.copy(TOOLS / "harness" / "roundtrip.ts", project / "roundtrip.ts")
    config = {
        "compilerOptions": {
            "target": "ES2022",
            "lib": ["ES2022"],
            "module": "commonjs",
            "strict": True,
            "noEmitOnError": True,
            "outDir": "build",
            "types": ["node"],
            "typeRoots": [str(TOOLS / "node_modules" / "@types")],
        },
        "files": ["roundtrip.ts"],
    }
    (project / "tsconfig.json").write_text(json.dumps(config))
    _run([str(TOOLS / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=project)
    return project / "build" / "roundtrip.js"


# --- no untyped field, no anonymous type -------------------------------------------------------------------

# A field's declared type, per language: what the generators write for a property.
_FIELD = {
    "java": re.compile(r"^\s*private\s+(?:final\s+)?([\w.<>,\[\] ?]+?)\s+\w+\s*;", re.MULTILINE),
    "go": re.compile(r"^\s*[A-Z]\w*\s+([^`\s]+)\s+`json:", re.MULTILINE),
    "ts": re.compile(r"^\s*(?:private\s+)?_?\w+\??:\s*([^;=]+);", re.MULTILINE),
}
_UNTYPED = {
    "java": re.compile(r"\bObject\b"),
    "go": re.compile(r"interface\s*\{\s*\}|\bany\b|json\.RawMessage"),
    "ts": re.compile(r"\bany\b|\bunknown\b|\bobject\b|\{\s*\}"),
}
_ANONYMOUS = re.compile(r"AnonymousSchema|Anonymous\w*|\bPurple\w*|\bFluffy\w*|\bTentacled\w*")
# quicktype's TypeScript marks an open object (a published contract, whose readers ignore unknown fields)
# with an index signature: not a field, and `unknown` is what an unknown field's value is.
_OPEN_OBJECT = "[property: string]: unknown;"


def _sources(generated: Generated, lang: str, generator: str) -> dict[str, str]:
    folder = generated.out / lang / ("qt" if generator == "quicktype" else "mdl")
    return {path.name: path.read_text() for path in sorted(folder.rglob(f"*.{lang}"))}


def untyped(lang: str, text: str) -> tuple[int, list[str]]:
    """(fields found, the untyped or anonymous ones) in one generated file."""
    fields, found = 0, []
    for match in _FIELD[lang].finditer(text.replace(_OPEN_OBJECT, "")):
        fields += 1
        if _UNTYPED[lang].search(match.group(1)):
            found.append(match.group(0).strip())
    found += [m.group(0) for m in _ANONYMOUS.finditer(text)]
    # a Go struct that only wraps another type: Modelina's form for a schema it could not name
    found += [m.group(0) for m in re.finditer(r"type \w+ struct \{\s*\*?\w+\s*(`[^`]*`)?\s*\}", text)]
    return fields, found


@pytest.mark.parametrize(
    ("lang", "text"),
    [  # what the generators wrote from the schemas before version 1
        ("java", "  private Map<String, Object> metadata;"),
        ("java", "  private Object amount;"),
        ("go", '  Metadata map[string]interface{} `json:"metadata,omitempty"`'),
        ("go", '  Amount any `json:"amount"`'),
        ("go", 'type AnonymousSchema_25 struct {\n  CommandType `json:"-,omitempty`\n}'),
        ("go", "type Msisdn struct {\n  string\n}"),
        ("ts", "  private _metadata?: Record<string, any>;"),
        ("ts", "    amount: number | string | any;"),
        ("ts", "    headers?: Array<unknown[]>;"),
    ],
)
def test_the_check_finds_what_it_is_for(lang: str, text: str) -> None:
    assert untyped(lang, text)[1] != []


@pytest.mark.parametrize("lang", ["java", "go", "ts"])
@pytest.mark.parametrize("generator", GENERATORS)
def test_every_field_has_a_real_type(generated: Generated, generator: str, lang: str) -> None:
    sources = _sources(generated, lang, generator)
    assert sources, f"{generator} wrote no {lang}"
    fields, problems = 0, []
    for name, text in sources.items():
        count, found = untyped(lang, text)
        fields += count
        problems += [f"{name}: {problem}" for problem in found]
    assert fields >= 60, f"{generator} {lang}: only {fields} fields found: is the pattern still right?"
    assert problems == [], f"{generator} {lang} has untyped or anonymous types:\n" + "\n".join(problems)


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_contract_and_enum_is_a_named_type(generated: Generated, generator: str) -> None:
    names = set(generated.summary[generator]["java"])
    assert names >= TOP_LEVEL | NAMED, f"{generator} misses {sorted(TOP_LEVEL | NAMED - names)}"
    if generator == "modelina":
        assert set(generated.summary["modelina"]["go"]) == set(generated.summary["modelina"]["ts"]) == names


def test_java_compiles(generated: Generated) -> None:
    javac = _tool("javac")
    sources = [str(p) for p in sorted((generated.out / "java").rglob("*.java"))]
    _run([javac, "-d", str(generated.out / "java-classes"), *sources], cwd=generated.out / "java")


# --- round trips ---------------------------------------------------------------------------------------


def _normalized(value: Any, *, milliseconds: bool) -> Any:
    if isinstance(value, dict):
        kept = {k: _normalized(v, milliseconds=milliseconds) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalized(item, milliseconds=milliseconds) for item in value]
    if isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value
    ):
        moment = datetime.fromisoformat(value)
        if milliseconds:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return ("instant", moment)
    return value


def _round_trip(binary: list[str], cases: list[Example]) -> dict[str, dict[str, Any]]:
    requests = [
        {"id": f"{generator}/{case.id}", "contract": f"{generator}/{case.contract}", "message": case.message}
        for case in cases
        for generator in GENERATORS
    ]
    stdout = _run(binary, cwd=ROOT, stdin="".join(json.dumps(r) + "\n" for r in requests))
    answers = {a["id"]: a for a in map(json.loads, stdout.splitlines())}
    assert len(answers) == len(requests)
    return answers


@pytest.mark.parametrize("lang", ["go", "ts"])
def test_every_documented_example_round_trips(lang: str, request: pytest.FixtureRequest) -> None:
    cases = examples()
    assert {case.contract for case in cases} == set(CONTRACTS), "docs/contracts.md needs an example of each"
    binary = request.getfixturevalue(f"{lang}_roundtrip")
    answers = _round_trip([str(binary)] if lang == "go" else [_tool("node"), str(binary)], cases)
    failures = []
    for case in cases:
        for generator in GENERATORS:
            answer = answers[f"{generator}/{case.id}"]
            if "error" in answer:
                failures.append(f"{generator} {lang} {case.id}: {answer['error']}")
                continue
            ms = lang == "ts" and generator == "quicktype"
            if _normalized(answer["encoded"], milliseconds=ms) != _normalized(case.message, milliseconds=ms):
                failures.append(
                    f"{generator} {lang} {case.id}:\n  in:  {case.message}\n  out: {answer['encoded']}"
                )
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("lang", ["go", "ts"])
def test_a_result_of_a_later_minor_version_is_read_by_version_1_code(
    lang: str, request: pytest.FixtureRequest
) -> None:
    """The evolution rule, as a consumer's generated code meets it: one more field is no error."""
    binary = request.getfixturevalue(f"{lang}_roundtrip")
    later = [e for e in examples() if e.contract in ("result", "dead_letter", "review_record")]
    lines = [
        json.dumps(
            {
                "id": f"{generator}/{case.id}",
                "contract": f"{generator}/{case.contract}",
                "lenient": True,
                "message": {**case.message, "added_in_1_1": {"any": ["shape", 1]}},
            }
        )
        + "\n"
        for case in later
        for generator in GENERATORS
    ]
    argv = [str(binary)] if lang == "go" else [_tool("node"), str(binary)]
    answers = list(map(json.loads, _run(argv, cwd=ROOT, stdin="".join(lines)).splitlines()))
    assert len(answers) == len(lines)
    assert [a for a in answers if "error" in a] == []


# --- the amount pattern in RE2 and ECMA-262 ---------------------------------------------------------------


def _worker_accepts(text: str) -> bool:
    try:
        command_amount(text)
    except PydanticCustomError:
        return False
    return True


def _amount_corpus() -> list[str]:
    rng = random.Random(16)
    corpus = ["0", "0.00", "0.01", "000000000.01", "0000000000.01", "000000001", "0000000001", "999999999.99"]
    corpus += [
        "1000000000",
        "1.",
        ".5",
        "5\n",
        "\n5",
        "1.000",
        "00.10",
        "1e5",
        "-5",
        "+5",
        " 5",
        "1,5",
        "\u0661",
    ]
    for _ in range(3000):
        corpus.append("".join(rng.choice("0123456789.00") for _ in range(rng.randint(0, 13))))
    return corpus


@pytest.mark.parametrize("lang", ["go", "ts"])
def test_the_amount_pattern_agrees_with_the_worker_in_re2_and_ecma(
    lang: str, request: pytest.FixtureRequest
) -> None:
    binary = request.getfixturevalue(f"{lang}_roundtrip")
    corpus = _amount_corpus()
    line = json.dumps({"id": "amounts", "pattern": AMOUNT_TEXT_PATTERN, "texts": corpus}) + "\n"
    argv = [str(binary)] if lang == "go" else [_tool("node"), str(binary)]
    (answer,) = map(json.loads, _run(argv, cwd=ROOT, stdin=line).splitlines())
    disagreements = [t for t, m in zip(corpus, answer["matches"], strict=True) if m != _worker_accepts(t)]
    assert disagreements == []
