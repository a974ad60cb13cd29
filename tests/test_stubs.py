"""The type stubs of the native modules (`python/glmx/_config.pyi`, `_glmx.pyi`) match the built
extensions: mypy's stubtest for both modules, plus a signature check of `glmx._glmx._testing`,
which stubtest cannot import as a module (a PyO3 submodule has no `sys.modules` entry)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch  # noqa: F401  (glmx._glmx links libtorch: torch must load first)

from glmx import _glmx

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "python" / "glmx" / "_glmx.pyi"

# Analyzing torch's own annotations triples stubtest's time (about 50 s against 20 s on two
# cores); signatures and names are compared either way, only `torch.*` annotations become Any.
# The full check: `.venv/bin/python -m mypy.stubtest glmx._config glmx._glmx`.
MYPY_INI = "[mypy]\n[mypy-torch.*]\nfollow_imports = skip\nfollow_imports_for_stubs = True\n"


def test_stubtest_reports_no_errors(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed; `pip install mypy` to check the stubs")
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_INI)
    cmd = [sys.executable, "-m", "mypy.stubtest", "glmx._config", "glmx._glmx"]
    cmd += ["--mypy-config-file", str(config)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stub_testing_functions() -> dict[str, list[tuple[str, bool]]]:
    """`{name: [(param, has_default)]}` of the `_TestingModule` class in the stub."""
    tree = ast.parse(STUB.read_text())
    cls = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "_TestingModule"
    )
    out = {}
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef):
            args = fn.args.args
            first_default = len(args) - len(fn.args.defaults)
            out[fn.name] = [(a.arg, i >= first_default) for i, a in enumerate(args)]
    return out


def test_testing_submodule_matches_stub():
    runtime = {}
    for name in _glmx._testing.__all__:
        params = inspect.signature(getattr(_glmx._testing, name)).parameters.values()
        runtime[name] = [(p.name, p.default is not inspect.Parameter.empty) for p in params]
    assert _stub_testing_functions() == runtime
