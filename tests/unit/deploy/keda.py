"""What KEDA does with the ScaledObject's scalingModifiers, for the tests: the formula, then the HPA's count.

The formula is the one form the ScaledObject uses, ``CONDITION ? A : B`` over the triggers' names (KEDA
evaluates it with expr-lang, where ``?:`` is the conditional); anything else fails the test rather than
being guessed. With ``metricType: AverageValue`` the HPA wants ``ceil(value / target)`` replicas, within
``minReplicaCount`` and ``maxReplicaCount``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_CONDITIONAL = re.compile(r"^\s*(?P<cond>[^?:]+)\?(?P<then>[^?:]+):(?P<else>[^?:]+)$")
_ALLOWED = re.compile(r"^[\w\s.*+\-/<>=!()]+$")


def formula_names(formula: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", formula))


def evaluate_formula(formula: str, values: Mapping[str, float]) -> float:
    match = _CONDITIONAL.match(formula)
    assert match is not None, f"not CONDITION ? A : B: {formula}"
    parts = {key: match.group(key).strip() for key in ("cond", "then", "else")}
    for part in parts.values():
        assert _ALLOWED.match(part), f"unexpected syntax in {part!r}"
        assert formula_names(part) <= set(values), f"{part!r} names a value not given: {values}"
    scope: dict[str, Any] = {"__builtins__": {}, **values}
    chosen = parts["then"] if eval(parts["cond"], scope) else parts["else"]  # noqa: S307 (checked above)
    return float(eval(chosen, scope))  # noqa: S307


def desired_replicas(spec: Mapping[str, Any], values: Mapping[str, float]) -> int:
    """The replica count the HPA asks for when the triggers report ``values`` (by trigger name)."""
    modifiers = spec["advanced"]["scalingModifiers"]
    assert modifiers["metricType"] == "AverageValue"
    value = evaluate_formula(modifiers["formula"], values)
    wanted = math.ceil(value / float(modifiers["target"]))
    return int(min(max(wanted, spec["minReplicaCount"]), spec["maxReplicaCount"]))
