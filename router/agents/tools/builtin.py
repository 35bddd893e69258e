"""Built-in tools without I/O: `calculator` (safe arithmetic by walking the `ast`) and `current_time`."""

from __future__ import annotations

import ast
import math
import operator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import Tool, ToolError

MAX_EXPRESSION = 500  # characters
MAX_DEPTH = 40  # nesting of the syntax tree
MAX_INT_BITS = 4096  # integers larger than this are refused (no 10**10**10)
MAX_EXPONENT = 10_000

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
              "acos": math.acos, "atan": math.atan, "log": math.log, "log10": math.log10, "log2": math.log2,
              "exp": math.exp, "abs": abs, "round": round, "min": min, "max": max, "floor": math.floor,
              "ceil": math.ceil}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _check(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("only numbers are supported")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("the result is too large")
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise ToolError("the result is not a finite number")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError("the exponent is too large")
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and max(1, abs(base)).bit_length() * exponent > MAX_INT_BITS):
        raise ToolError("the result is too large")
    try:
        result = base ** exponent
    except OverflowError:
        raise ToolError("the result is too large") from None
    if isinstance(result, complex):
        raise ToolError("the result is not a real number")
    return result


def _eval(node: ast.AST, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ToolError("the expression is nested too deeply")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _check(_power(left, right))
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand, depth + 1)))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and 0 < len(node.args) <= 8):
        args = [_eval(a, depth + 1) for a in node.args]
        try:
            return _check(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ToolError(f"{node.func.id}: {exc}") from None
    raise ToolError(f"unsupported syntax: {type(node).__name__}")


def calculate(expression: str) -> int | float:
    """Evaluate arithmetic (+ - * / // % **, parentheses, math functions, pi/e/tau); never `eval`."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolError("the expression is not valid arithmetic") from None
    return _eval(tree)


async def _calculator(args: dict[str, Any]) -> dict[str, Any]:
    expression = args["expression"]
    return {"expression": expression, "result": calculate(expression)}


async def _current_time(args: dict[str, Any]) -> dict[str, Any]:
    name = args.get("timezone") or "UTC"
    try:
        zone = UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone '{name}' (use an IANA name such as Europe/Paris)") from None
    now = datetime.now(zone)
    return {"iso": now.isoformat(timespec="seconds"), "unix": int(now.timestamp()), "timezone": name,
            "weekday": now.strftime("%A")}


def calculator() -> Tool:
    return Tool("calculator", "Evaluate an arithmetic expression exactly: + - * / // % ** (or ^), parentheses, "
                "sqrt, sin, cos, tan, log, log10, exp, abs, round, min, max, floor, ceil, pi, e.",
                {"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. 2*(3+4)"}},
                 "required": ["expression"], "additionalProperties": False}, _calculator)


def current_time() -> Tool:
    return Tool("current_time", "The current date and time, in UTC or in a given IANA time zone.",
                {"type": "object", "properties": {"timezone": {"type": "string",
                                                               "description": "IANA name, e.g. Europe/Paris"}},
                 "additionalProperties": False}, _current_time)
