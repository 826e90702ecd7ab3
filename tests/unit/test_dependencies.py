"""Every third-party module byoc imports is a dependency pyproject.toml declares.

``packaging`` was imported (image_packages) but installed only because other packages happened to
require it: an upgrade of those could drop it from the image, and the server would fail on its
first requirements.txt.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from byoc.image_packages import canonical

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "container" / "byoc"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """The top-level names a module imports when it runs (not under ``if TYPE_CHECKING:``)."""
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return found


def imported_distributions() -> dict[str, set[str]]:
    """{distribution: the byoc files importing it} for every third-party import under byoc."""
    providers = metadata.packages_distributions()
    used: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name == "byoc" or name in sys.stdlib_module_names:
                continue
            for dist in providers.get(name, [f"<no installed distribution provides {name}>"]):
                used.setdefault(canonical(dist), set()).add(str(path.relative_to(ROOT)))
    return used


def declared() -> set[str]:
    """The distributions pyproject's ``dependencies`` name, with the extras they ask for."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names: set[str] = set()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        names.add(canonical(requirement.name))
        for extra in requirement.extras:
            for needed in metadata.requires(requirement.name) or []:
                dependency = Requirement(needed)
                if dependency.marker is not None and dependency.marker.evaluate({"extra": extra}):
                    names.add(canonical(dependency.name))
    return names


def test_every_third_party_module_byoc_imports_is_a_declared_dependency():
    undeclared = {dist: files for dist, files in imported_distributions().items() if dist not in declared()}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_the_check_sees_imports_inside_functions_but_not_type_checking_ones():
    tree = ast.parse(
        "import a.b\nfrom c import d\nfrom . import e\n"
        "def f():\n    from g.h import i\n"
        "if TYPE_CHECKING:\n    import j\nelse:\n    import k\n"
    )
    assert _imports(tree) == {"a", "c", "g", "k"}
