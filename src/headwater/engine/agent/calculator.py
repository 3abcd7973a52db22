"""The agent's `calculator`: arithmetic on a parsed expression tree, never `eval`.

Only number literals, + - * / // % **, unary signs, parentheses, the constants
`pi`, `e`, `tau` and a few math functions are accepted; every other node of the
tree (names, attributes, calls of anything else, comprehensions...) is refused
before anything is computed. Sizes are capped so an expression cannot exhaust the
server: long input, huge powers and factorials, and deep nesting are refused.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 50
MAX_POWER_BITS = 4096
MAX_FACTORIAL = 1000

Number = int | float


class CalculationError(ValueError):
    """The expression is not accepted or cannot be computed; the message says why, for the model."""


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(value: Number) -> int:
    if not float(value).is_integer() or not 0 <= value <= MAX_FACTORIAL:
        raise CalculationError(f"factorial takes a whole number from 0 to {MAX_FACTORIAL}")
    return math.factorial(int(value))


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "exp": math.exp,
    "log": math.log, "log10": math.log10, "log2": math.log2, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan, "floor": math.floor,
    "ceil": math.ceil, "factorial": _factorial,
}


def calculate(expression: str) -> Number:
    """The value of an arithmetic expression such as `(3 + 4) * sqrt(16) / 2`."""
    text = expression.strip()
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalculationError("not an arithmetic expression") from None
    try:
        return _value(tree.body, 0)
    except ZeroDivisionError:
        raise CalculationError("division by zero") from None
    except (OverflowError, ValueError, TypeError) as exc:
        if isinstance(exc, CalculationError):
            raise
        raise CalculationError(f"cannot compute: {exc}") from None


def _value(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculationError("the expression is nested too deeply")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _BINARY[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and node.args):
        return _FUNCTIONS[node.func.id](*(_value(arg, depth + 1) for arg in node.args))
    raise CalculationError(f"'{ast.unparse(node)[:40]}' is not allowed (numbers, + - * / // % **, "
                           f"parentheses, pi, e and {', '.join(sorted(_FUNCTIONS))})")


def _check_power(base: Number, exponent: Number) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_POWER_BITS:
            raise CalculationError("the power is too large")


def format_number(value: Number) -> str:
    """Whole floats without the trailing `.0`, so `6/3` reads `2`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)
