"""`start`: the run's inputs. Declares them (name, type, required, default); outputs their values.

In a chatflow the user's message is also an output, `query` (and `sys.query`).
Inputs are checked and coerced by `accept_inputs()` before a run is created,
so a missing required input is a 422 to the caller, not a failed run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type
from headwater.errors import InvalidInput

InputType = Literal["string", "number", "integer", "boolean", "object", "array", "any"]
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class InputSpec(NodeConfig):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: InputType = "string"
    required: bool = False
    default: Any = None
    description: str = ""


class StartConfig(NodeConfig):
    inputs: list[InputSpec] = Field(default_factory=list, max_length=100)

    @field_validator("inputs")
    @classmethod
    def _unique(cls, inputs: list[InputSpec]) -> list[InputSpec]:
        names = [i.name for i in inputs]
        if len(names) != len(set(names)):
            raise ValueError("input names must be unique")
        return inputs


@node_type("start")
class StartNode(Node):
    instant = True
    Config = StartConfig
    allowed_in_iteration = False

    def output_names(self) -> set[str] | None:
        names = {spec.name for spec in self.config.inputs}
        if self.graph_kind == "chatflow":
            names.add("query")
        return names

    def accept_inputs(self, given: dict[str, Any], message: str | None) -> dict[str, Any]:
        """The declared inputs, checked and coerced; unknown keys are left out."""
        values: dict[str, Any] = {}
        for spec in self.config.inputs:
            raw = given.get(spec.name)
            if raw is None and spec.name == "query" and message is not None:
                raw = message
            if raw is None:
                if spec.required and spec.default is None:
                    raise InvalidInput(f"input '{spec.name}' is required")
                values[spec.name] = spec.default
                continue
            values[spec.name] = _coerce(spec, raw)
        if self.graph_kind == "chatflow":
            values.setdefault("query", message or "")
            if values["query"] is None:
                values["query"] = message or ""
        return values

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(outputs=dict(ctx.run.inputs))


def _coerce(spec: InputSpec, value: Any) -> Any:
    kind = spec.type
    try:
        if kind == "any":
            return value
        if kind == "string":
            if isinstance(value, (dict, list)):
                raise ValueError
            return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if kind in ("number", "integer"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value) if isinstance(value, str) else value
            if not isinstance(number, (int, float)):
                raise ValueError
            if kind == "integer":
                if float(number) != int(number):
                    raise ValueError
                return int(number)
            return number
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError
        if kind == "object" and isinstance(value, dict):
            return value
        if kind == "array" and isinstance(value, list):
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    raise InvalidInput(f"input '{spec.name}' must be of type {kind}")
