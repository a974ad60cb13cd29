"""The trainer package has no import circle: each module imports alone in a fresh
interpreter, and the graph of imports between its modules (function-level ones included,
type-checking-only ones excluded) is acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import glmx.trainer

PKG = Path(glmx.trainer.__file__).parent
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks are not imports at run time
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "glmx.trainer":
                found.update(a.name for a in node.names if a.name in MODULES)
            elif node.module.startswith("glmx.trainer."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("glmx.trainer."):
                    found.add(a.name.split(".")[2])
    return found & set(MODULES)


def test_no_import_cycle() -> None:
    graph = {m: _imports(PKG / f"{m}.py") - {m} for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path, m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for dep in sorted(graph[m]):
            visit(dep, [*path, m])
        state[m] = 2

    for m in MODULES:
        visit(m, [])


_FORKED_IMPORTS = """
import os, sys, traceback
import numpy, torch  # third-party only: the glmx modules are imported fresh in each child
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__("glmx.trainer." + name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
print("failed:", ",".join(failed))
sys.exit(1 if failed else 0)
"""


def test_each_module_imports_alone() -> None:
    """A fresh `python -c`; each module is imported first thing in its own forked child (no
    glmx module loaded before it), so an import that only works in some order fails here."""
    r = subprocess.run(
        [sys.executable, "-c", _FORKED_IMPORTS, *MODULES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "failed:"
