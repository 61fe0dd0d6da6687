"""The package's layers import one way only: each from the layers below it, never back up, never in a circle.

The order, from the ground up (docs/layout.md): errors and seeding, data,
models, training, sampling, store, runs, api, cli. Every import counts, the ones inside
functions too (the CLI imports lazily). And no code outside models/ asks a
model its type by name: a model answers through its ModelDef.
"""

import ast
import os
import re

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "makemore_jax")
RANK = {
    "_version": 0,
    "errors": 0,
    "seeding": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "sampling": 4,
    "store": 5,
    "runs": 6,
    "api": 7,
    "cli": 8,
    "__main__": 9,
}


def modules() -> dict[str, str]:
    """Dotted name under makemore_jax ('' for the package itself) -> file."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), PACKAGE)[:-3].replace(os.sep, ".")
                found[re.sub(r"(^|\.)__init__$", "", rel)] = os.path.join(folder, f)
    return found


MODULES = modules()


def imported(name: str, path: str) -> set[str]:
    """The package's modules that module `name` imports, anywhere in its file."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".") if package else []
            base = parts[: len(parts) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x` may name a module
                full = f"{target}.{alias.name}" if target else alias.name
                out.add(full if full in MODULES else target)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out.update(n[len("makemore_jax.") :] for n in names if n.startswith("makemore_jax."))
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int | None:
    return RANK.get(name.split(".")[0]) if name else None


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m and layer(m) is None] == []


def test_no_import_runs_back_up():
    upward = [(a, b) for a, targets in GRAPH.items() for b in targets if a and b and layer(b) > layer(a)]
    assert upward == []


def test_no_circles():
    state, circles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The checks above can fail: a data module importing the trainer is one arrow up."""
    path = tmp_path / "probe.py"
    path.write_text("from ..training import trainer\n\ndef f():\n    from ..cli import commands\n")
    assert imported("data.probe", str(path)) == {"training.trainer", "cli.commands"}
    assert all(layer(b) > layer("data.probe") for b in imported("data.probe", str(path)))


# a type compared with a model's name written out: .type == "counts", type in ("counts", "ngram"), "ngram" != x.type
TYPE_BY_NAME = re.compile(r"""\btype\b\)?\s*(==|!=|in|not in)\s*[(\[{]?\s*["']|["']\s*(==|!=)\s*[\w.]*\btype\b""")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m and not m.startswith("models")))
def test_no_model_asked_its_type_by_name_outside_models(name):
    lines = [line.strip() for line in open(MODULES[name], encoding="utf-8") if TYPE_BY_NAME.search(line)]
    assert lines == []


MAX_FUNCTION_LINES = 60  # a function fits on a screen (docs: STYLE.md)


def long_functions(path: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """(file, function, length) for each function or method in the file longer than `limit` lines.

    A length counts from the `def` line to the function's last line (decorators
    not counted); nested functions are measured on their own too.
    """
    rel = os.path.relpath(path, ROOT)
    tree = ast.parse(open(path, encoding="utf-8").read())
    return [
        (rel, node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_is_longer_than_60_lines():
    too_long = [entry for path in sorted(MODULES.values()) for entry in long_functions(path)]
    assert too_long == []


def test_the_check_sees_a_long_function(tmp_path):
    """The check above can fail: a function of 61 lines is one too many, one of 60 is fine."""
    path = tmp_path / "probe.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    path.write_text(f"@decorated\ndef short():\n{body}\n\ndef long():\n{body}    return x0\n")
    assert [(name, length) for _, name, length in long_functions(str(path))] == [("long", 61)]
