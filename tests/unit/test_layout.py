"""The package's shape (issue 13's proof): no import circle, no long module without a reason.

The import graph
----------------
Every ``import`` and ``from ... import`` statement in ``aiotwinne/`` is read
with :mod:`ast` (nothing is imported), relative ones resolved against their
module, and ``from package import name`` counted as an import of the
submodule ``package.name`` when that file exists, else of the package. The
parents Python imports implicitly on the way (``aiotwinne.cli`` before
``aiotwinne.cli._demo``) are not edges: a package's ``__init__`` importing its
own children would otherwise be a circle everywhere.

Imports inside functions count: a lazy import is still a dependency, and a
circle closed by one only moves the failure from import time to the first
call. Imports under ``if TYPE_CHECKING:`` do not: they never run, and they are
the sanctioned way for a lower module to name a higher one's types in
annotations (``models`` naming ``errors.TwinneError``, the CLI naming the
emulator's classes) without depending on it. A circle through them costs
nothing at run time and would only push those names into strings.

Long modules
------------
No module is over :data:`MAX_LINES` lines unless its opening docstring says
why, in a line that starts with ``Why this module is long:`` (the reason
follows on that line and may continue on the next ones).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

PACKAGE: Final = Path(__file__).resolve().parents[2] / "aiotwinne"
MAX_LINES: Final = 500
REASON: Final = "Why this module is long:"


def module_name(path: Path) -> str:
    """``aiotwinne/cli/_demo.py`` -> ``aiotwinne.cli._demo``; a package is its ``__init__``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, anywhere, except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:  # an else branch does run
                yield from _statements(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _statements(node)


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module *name* imports explicitly."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                # The package a relative import starts from: the module's own
                # package (itself for an __init__), then one up per extra dot.
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # Each name is a submodule when that file exists, else a name of the package.
            submodules = (f"{source}.{alias.name}" for alias in node.names)
            targets = [target if target in known else source for target in submodules]
        found.update(target for target in targets if target in known and target != name)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first == last), or ``None``: a depth-first search."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target in on_stack:
                return [*stack[stack.index(target) :], target]
            if target not in done:
                circle = visit(target)
                if circle is not None:
                    return circle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for start in sorted(edges):
        if start not in done:
            circle = visit(start)
            if circle is not None:
                return circle
    return None


def test_the_import_graph_has_no_circle() -> None:
    """No module of aiotwinne/ reaches itself through its imports."""
    circle = find_circle(graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_graph_sees_every_kind_of_import() -> None:
    """In the real package the reader finds relative and lazy imports (or it proves nothing)."""
    edges = graph()
    assert "aiotwinne._protocol" in edges["aiotwinne.cli._common"]  # from .. import _protocol
    assert "aiotwinne.client" in edges["aiotwinne.cli._common"]  # from ..client import ...
    assert "aiotwinne.testing" in edges["aiotwinne.cli._emulator"]  # lazy, inside a function
    assert "aiotwinne.cli._site" in edges["aiotwinne.cli._demo"]  # from . import _site, lazy
    assert "aiotwinne.cli" in edges["aiotwinne.__main__"]  # from .cli import main
    # TYPE_CHECKING-only: the CLI names the emulator's classes in annotations only.
    assert "aiotwinne.testing" not in edges["aiotwinne.cli._demo"]


def test_the_reader_resolves_every_spelling(tmp_path: Path) -> None:
    """Absolute, relative, submodule-or-name and else-of-TYPE_CHECKING imports, on a sample."""
    sample = tmp_path / "mod.py"
    sample.write_text(
        "import aiotwinne.client\n"
        "from aiotwinne import models, __version__\n"
        "from . import sibling\n"
        "from .. import _redact\n"
        "import typing\n"
        "if typing.TYPE_CHECKING:\n"
        "    from . import hidden\n"
        "else:\n"
        "    from . import shown\n"
        "def later():\n"
        "    from .sibling import thing\n",
        encoding="utf-8",
    )
    names = ["client", "models", "_redact", "pkg", "pkg.sibling", "pkg.hidden", "pkg.shown"]
    known = {"aiotwinne": sample} | {f"aiotwinne.{name}": sample for name in names}
    assert imports("aiotwinne.pkg.mod", sample, known) == {
        "aiotwinne",  # __version__ is a name of the package, not a module
        "aiotwinne.client",
        "aiotwinne.models",
        "aiotwinne._redact",
        "aiotwinne.pkg.sibling",
        "aiotwinne.pkg.shown",
    }


def test_the_circle_finder_finds_circles() -> None:
    """A planted circle is reported as a path; a chain is not a circle."""
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def within(name: str, *packages: str) -> bool:
    """Whether module *name* is one of *packages* or inside one ("client" is not "cli")."""
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_the_layers_point_one_way() -> None:
    """The core imports none of web, testing or cli; only __main__ imports cli (DESIGN.md)."""
    edges = graph()
    edges.pop("aiotwinne.__main__")  # `python -m aiotwinne` is the CLI's other door
    for name, targets in edges.items():
        if not within(name, "aiotwinne.cli"):
            assert not any(within(t, "aiotwinne.cli") for t in targets), name
        if not within(name, "aiotwinne.web", "aiotwinne.testing", "aiotwinne.cli"):
            outward = sorted(t for t in targets if within(t, "aiotwinne.web", "aiotwinne.testing"))
            assert not outward, f"{name} imports {outward}"


def long_modules() -> dict[str, bool]:
    """Modules over MAX_LINES lines -> whether their opening docstring gives the reason."""
    found: dict[str, bool] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        reasons = [
            line.removeprefix(REASON).strip()
            for line in docstring.splitlines()
            if line.startswith(REASON)
        ]
        found[path.relative_to(PACKAGE.parent).as_posix()] = any(reasons)
    return found


def test_no_module_is_long_without_a_reason() -> None:
    """A module over 500 lines says why in its docstring ("Why this module is long: ...")."""
    long = long_modules()
    assert "aiotwinne/client.py" in long  # the check sees the long modules it judges
    assert sorted(path for path, explained in long.items() if not explained) == []
