"""Templates of flow nodes: sandboxed Jinja2 over earlier nodes' outputs and `sys.*`.

Only template text written in the app definition is ever compiled. Values
(start inputs, messages, human answers, model and HTTP outputs) enter as
context data, so a user typing `{{ 7*7 }}` gets those characters back, never 49.

The environment is Jinja's immutable sandbox (no attribute escapes, no mutation
of data) plus caps on what a template author could use to exhaust the server:
output size, `range` length and total iterations, string/list repetition and
big powers. A template that is a single `{{ expr }}` evaluates to the native
value (list, number, dict), which is what `iteration.items`, `condition.when`
and `end.outputs` need.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from headwater.engine.errors import NodeFailed

MAX_TEMPLATE_CHARS = 50_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_RANGE_TOTAL = 100_000  # all range() items of one render together
MAX_LOOP_DEPTH = 2
MAX_POWER_BITS = 4096

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_range_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("template_range_budget", default=None)


class TemplateFailed(NodeFailed):
    def __init__(self, detail: str):
        super().__init__(detail, code="template_error", status_code=422)


def _budgeted_range(*args: int) -> range:
    items = range(*args)
    budget = _range_budget.get()
    if budget is not None:
        budget[0] += len(items)
        if budget[0] > MAX_RANGE_TOTAL:
            raise SecurityError(f"templates may iterate over at most {MAX_RANGE_TOTAL} range() items")
    return items


def _finalize(value: Any) -> Any:
    """What `{{ x }}` prints: nothing for None, JSON for structures (not Python reprs)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _fromjson(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


class FlowTemplateEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `{{ start.items }}` means the input named "items", not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    if len(seq) * max(count, 0) > MAX_OUTPUT_CHARS:
                        raise SecurityError("repetition result too large")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and right * math.log2(abs(left)) > MAX_POWER_BITS:
                raise SecurityError("power result too large")
        return super().call_binop(context, operator, left, right)


_env = FlowTemplateEnvironment(undefined=ChainableUndefined, autoescape=False, finalize=_finalize)
# Only these globals: no lipsum/cycler/joiner/namespace, and a range() with a budget.
_env.globals = {"range": _budgeted_range, "dict": dict}
_env.filters["fromjson"] = _fromjson


@lru_cache(maxsize=8192)
def _compiled(source: str):
    return _env.from_string(source)


@lru_cache(maxsize=2048)
def _compiled_expression(expression: str):
    return _env.compile_expression(expression, undefined_to_none=True)


def single_expression(source: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(source)
    return match.group("expr").strip() if match else None


def render(source: str, context: dict[str, Any]) -> str:
    """Render to text, capped in size; failures become a node error naming the cause."""
    plain = _plain_render(source, context)
    if plain is not None:
        return plain
    token = _range_budget.set([0])
    try:
        parts: list[str] = []
        size = 0
        for chunk in _compiled(source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateFailed(f"template output exceeds {MAX_OUTPUT_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)
    except SecurityError as exc:
        raise TemplateFailed(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"template failed: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailed(f"template failed: {exc.__class__.__name__}: {exc}") from None
    finally:
        _range_budget.reset(token)


# The templates most graphs are made of: `{{ llm.text }}`, `{{ sys.query }}`, and the string literals
# implied graphs quote user text with. Rendered without Jinja, to exactly what Jinja renders.
_VARIABLE_PATH = re.compile(r"^\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}$")
_STRING_LITERAL = re.compile(r'^\{\{ ("(?:[^"\\]|\\.)*") \}\}$', re.DOTALL)


def _plain_render(source: str, context: dict[str, Any]) -> str | None:
    """`source` rendered when it is one variable path that names a string, or one string literal; else None."""
    if not source.startswith("{{"):
        return None
    if (path := _VARIABLE_PATH.match(source)) is not None:
        value: Any = context
        for name in path.group(1).split("."):
            if not isinstance(value, dict) or name not in value:
                return None  # undefined, or not a plain mapping: Jinja knows what that renders to
            value = value[name]
        return value if isinstance(value, str) and len(value) <= MAX_OUTPUT_CHARS else None
    if (literal := _STRING_LITERAL.match(source)) is not None:
        try:
            text = json.loads(literal.group(1))
        except ValueError:
            return None
        return text if isinstance(text, str) and len(text) <= MAX_OUTPUT_CHARS else None
    return None


def evaluate(source: str, context: dict[str, Any]) -> Any:
    """A lone `{{ expr }}` gives the native value; any other text renders to a string."""
    expression = single_expression(source)
    if expression is None:
        return render(source, context)
    token = _range_budget.set([0])
    try:
        value = _compiled_expression(expression)(**context)
    except SecurityError as exc:
        raise TemplateFailed(f"expression refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"expression failed: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailed(f"expression failed: {exc.__class__.__name__}: {exc}") from None
    finally:
        _range_budget.reset(token)
    if isinstance(value, ChainableUndefined):
        return None
    return value


def truthy(value: Any) -> bool:
    """Condition semantics: text 'false', '0', 'no' and blanks are false, as a person would read them."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


class TemplateProblem(ValueError):
    """A template that cannot be accepted at save time (the caller names the node)."""


def references(source: str) -> dict[str, set[str]]:
    """Root names a template reads, each with the attributes read directly off it.

    `{{ gen.text }} {{ sys.history[0] }}` -> {"gen": {"text"}, "sys": set()}.
    Raises TemplateProblem for syntax errors, oversize text, or loops nested too deep.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        ast = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    if _loop_depth(ast) > MAX_LOOP_DEPTH:
        raise TemplateProblem(f"template loops may nest at most {MAX_LOOP_DEPTH} deep")
    roots = _free_names(ast) - set(_env.globals)
    found: dict[str, set[str]] = {name: set() for name in roots}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in found:
            continue
        if isinstance(node, nodes.Getattr):
            found[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[target.name].add(node.arg.value)
    return found


def _free_names(ast: nodes.Template) -> set[str]:
    """Names read but never bound in the template (a cheap AST walk; jinja2.meta compiles the template)."""
    loaded, stored = set(), {"loop", "self", "caller", "varargs", "kwargs"}
    for name in ast.find_all(nodes.Name):
        (loaded if name.ctx == "load" else stored).add(name.name)
    return loaded - stored


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        child_depth = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, child_depth))
    return deepest
