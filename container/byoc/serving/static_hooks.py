"""Which hook names a user's inference program binds, read from its source and never run.

serve takes a hook with ``getattr(module, name)`` after importing the program, so any binding of
the name in the module's namespace counts, not only a top-level ``def``: an assignment (``predict_fn
= lambda ...``), an import (``from helper import predict_fn``), a ``def`` under a module-level
``if``/``try``/``with``/``for``/``while``, a ``global`` statement in a function the import may call.
What the source cannot tell is reported as such: ``from x import *`` and a module ``__getattr__``
may answer any name, and so may code that binds names by running text or by writing the
namespace (``exec``, ``eval``, ``globals()``, ``vars()``, ``sys.modules``), wherever it stands: a
function the import calls binds as much as a module-level statement.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from dataclasses import dataclass

# Nodes whose body is a scope of its own: only their name (and what is evaluated where they stand:
# decorators, defaults, bases) binds in the module.
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# Builtins through which running code may bind any name in the module (with no arguments, for
# the two that otherwise read another object's namespace).
_RUNS_TEXT = ("exec", "eval")
_NAMESPACES = ("globals", "vars")


@dataclass(frozen=True)
class Bindings:
    """What a module binds at its top level: ``names`` for certain; ``open_ended``, how it may
    bind names the source does not spell (``from x import *`` on line 3, a module ``__getattr__``)."""

    names: frozenset[str]
    open_ended: tuple[str, ...]

    def hooks(self, hook_names: Collection[str]) -> list[str]:
        """The names of ``hook_names`` bound for certain, in their order."""
        return [name for name in hook_names if name in self.names]


def _module_level(node: ast.AST) -> Iterator[ast.AST]:
    """``node``'s descendants evaluated in the module's own scope (not inside a function, class
    or lambda body, nor a comprehension's loop variables, which are the comprehension's own)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, _SCOPES):
            outer: list[ast.AST] = [*getattr(child, "decorator_list", ())]
            if isinstance(child, ast.ClassDef):
                outer += [*child.bases, *child.keywords]
            else:
                outer += [*child.args.defaults, *(d for d in child.args.kw_defaults if d is not None)]
            for part in outer:
                yield part
                yield from _module_level(part)
        elif isinstance(child, _COMPREHENSIONS):
            # a walrus inside binds in the module; the loop targets do not
            parts: list[ast.AST] = (
                [child.key, child.value] if isinstance(child, ast.DictComp) else [child.elt]
            )
            parts += [part for loop in child.generators for part in (loop.iter, *loop.ifs)]
            for part in parts:
                yield part
                yield from _module_level(part)
        elif isinstance(child, ast.AnnAssign) and child.value is None:  # ``name: T`` binds nothing
            yield child.annotation
            yield from _module_level(child.annotation)
        else:
            yield from _module_level(child)


def _bound(node: ast.AST) -> Iterator[str]:
    """The names one module-level node binds."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield alias.asname or alias.name.split(".")[0]
    elif isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        yield node.name
    elif isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest


def _writes_namespace(node: ast.AST) -> str | None:
    """How ``node`` may bind names the source does not spell, or None: ``exec(...)``/``eval(...)``
    run text; ``globals()``, ``vars()`` and ``sys.modules`` hand out the module's namespace."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name in _RUNS_TEXT:
            return f"{name}(...)"
        if name in _NAMESPACES and not node.args and not node.keywords:
            return f"{name}()"
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ):
        return "sys.modules"
    return None


def module_bindings(tree: ast.Module) -> Bindings:
    """The names ``tree`` binds at module level, and how it may bind others."""
    names: set[str] = set()
    open_ended: list[str] = []
    for node in _module_level(tree):
        for name in _bound(node):
            names.add(name)
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            source = "." * node.level + (node.module or "")
            open_ended.append(f"from {source} import * (line {node.lineno})")
    # a function declaring a name global binds it in the module when the import calls it
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
        said = _writes_namespace(node)
        if said is not None:
            open_ended.append(f"{said} (line {getattr(node, 'lineno', '?')})")
    if "__getattr__" in names:
        open_ended.append("a module __getattr__")
    names.discard("*")
    return Bindings(frozenset(names), tuple(open_ended))
