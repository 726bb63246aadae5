"""A safe evaluator for alarm expressions over several tags (no ``eval``).

Expressions use Python syntax restricted to: numbers, ``True``/``False``, names bound to
tag values, ``+ - * / %``, unary ``-``/``not``, comparisons (chained too), ``and``/``or``,
and the functions ``abs``, ``min``, ``max``. Anything else is refused when the rule is saved.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from gongyun.errors import InvalidInput

MAX_LENGTH = 1000
MAX_NODES = 200

_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max}


class ExpressionInvalid(InvalidInput):
    """An alarm expression uses syntax or names that are not allowed."""

    code = "alarm_expression_invalid"
    title = "Invalid alarm expression"


class MissingInput(Exception):
    """A name in the expression has no value yet (the condition is unknown)."""


class Expression:
    """A parsed, checked expression; ``evaluate(values)`` returns its boolean result."""

    def __init__(self, text: str, names: set[str]) -> None:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
            raise ExpressionInvalid(f"an expression is 1..{MAX_LENGTH} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionInvalid(f"syntax error: {exc.msg}", expression=text) from exc
        count = sum(1 for _ in ast.walk(tree))
        if count > MAX_NODES:
            raise ExpressionInvalid(f"expression too complex ({count} nodes > {MAX_NODES})")
        self.text = text
        self.names = names
        self._tree = tree.body
        self._check(self._tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | bool):
                raise ExpressionInvalid(f"only numbers and booleans are allowed, got {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id not in self.names and node.id not in ("True", "False"):
                raise ExpressionInvalid(f"unknown name {node.id!r}: bind it to a tag in 'inputs'")
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.Not | ast.USub):
                raise ExpressionInvalid("only 'not' and unary '-' are allowed")
            self._check(node.operand)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BIN:
                raise ExpressionInvalid(f"operator {type(node.op).__name__} is not allowed")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.Compare):
            if any(type(op) not in _CMP for op in node.ops):
                raise ExpressionInvalid("only <, <=, >, >=, ==, != comparisons are allowed")
            for v in (node.left, *node.comparators):
                self._check(v)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
                raise ExpressionInvalid(f"only the functions {', '.join(_FUNCS)} are allowed")
            for a in node.args:
                self._check(a)
        else:
            raise ExpressionInvalid(f"{type(node).__name__} is not allowed in an expression")

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """True or False; raises ``MissingInput`` when a referenced name has no value."""
        return bool(self._eval(self._tree, values))

    def _eval(self, node: ast.AST, values: Mapping[str, float]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                return node.id == "True"
            if node.id not in values:
                raise MissingInput(node.id)
            return values[node.id]
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, values) for v in node.values)
            return any(self._eval(v, values) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            return (not operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, values), self._eval(node.right, values)
            try:
                return _BIN[type(node.op)](left, right)
            except ZeroDivisionError:
                return float("nan")  # comparisons with NaN are false: the condition is not met
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comp, values)
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _FUNCS[node.func.id](*(self._eval(a, values) for a in node.args))
        raise ExpressionInvalid(f"{type(node).__name__} is not allowed")  # unreachable after _check
