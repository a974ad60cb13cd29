"""`glmx` inspect commands through the real entry point, on fixture projects."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import glmx, ok

CHAIN = Path(__file__).parent / "fixtures" / "projects" / "chain"
MINE = [
    "ls",
    "pp",
    "meta",
    "targets",
    "tlist",
    "trefs",
    "graph",
    "code",
    "construct",
    "index",
    "train",
    "tb",
    "control",
    "logs",
    "ws",
    "project",
]


def test_help_for_every_command():
    assert "COMMAND" in ok("--help")
    for cmd in MINE:
        out = ok(cmd, "--help")
        assert out.startswith("usage: glmx"), cmd
    for sub in (["control", "status"], ["logs", "plot"], ["project", "create"], ["ws", "create"]):
        assert "usage" in ok(*sub, "--help")


def test_ls_lists_configs_descriptions_and_parse_errors():
    out = ok("-p", str(CHAIN), "ls")
    lines = out.splitlines()
    assert lines[0] == "chain: Fixture: FIVE levels of extends"
    main = next(line for line in lines if "main.yaml" in line)
    assert main.startswith(" *") and "Level 4: the config" in main
    cycle = next(line for line in lines if "cycle.yaml" in line)
    assert "PARSE ERROR" in cycle and "cycle" in cycle.split("PARSE ERROR")[1]
    broken = next(line for line in lines if "broken_undefined.yaml" in line)
    assert "PARSE ERROR" in broken and "missing_width" in broken
    data = json.loads(ok("-p", str(CHAIN), "ls", "--format", "json"))
    by_name = {c["config"]: c for c in data["configs"]}
    assert by_name["main.yaml"]["error"] is None and "main" in by_name["main.yaml"]["targets"]
    assert by_name["cycle.yaml"]["error"]


def test_ls_recursive_finds_projects(tmp_path):
    out = ok("-p", str(CHAIN.parent), "ls", "-r")
    assert "chain: Fixture" in out and "dir:" in out
    r = glmx("-p", str(tmp_path), "ls")
    assert r.returncode == 2 and "no meta.yaml" in r.stderr


def test_inspect_commands_do_not_import_torch():
    # the real entry function in a fresh interpreter; sys.modules tells what was imported
    code = (
        "import sys, contextlib, io\n"
        "from glmx.cli import main\n"
        f"p = {str(CHAIN)!r}\n"
        "for argv in (['ls'], ['pp'], ['targets'], ['graph'], ['code'], ['trefs'], ['index']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(['-p', p, *argv]) == 0, argv\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
        "print('glmx.cli.inspect' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "True"]


def _big_project(root: Path, n: int) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "meta.yaml").write_text(
        "name: big\ndescription: fifty configs\ndefault_config: c0.yaml\n"
    )
    (root / "templates" / "base.yaml").write_text(
        "-- set ns = namespace(width=8)\n[globals]\n[meta]\nmeta:\n    description: {{ ns.desc }}\n"
        "[model]\nmodel: !singleton:dict\n    width: {{ ns.width }}\nmain: !singleton:dict { model: 1 }\n"
    )
    for i in range(n):
        (root / "configs" / f"c{i}.yaml").write_text(
            f'-- extends "base.yaml"\n[globals]\n    -- set ns.width = {i}\n    -- set ns.desc = "config {i}"\n'
        )
    return root


def test_ls_fifty_configs_is_fast(tmp_path):
    root = _big_project(tmp_path / "big", 50)
    ok("-p", str(root), "ls")  # warm the file cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = ok("-p", str(root), "ls")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert out.count("config ") == 50 and "c49.yaml  config 49" in out
    # CPU time of the whole process, interpreter start included (typically ~0.2 s): unlike
    # wall-clock time it does not grow when other processes share the machine
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 2.0, cpu


def test_pp_meta_targets_tlist():
    pp = ok("-p", str(CHAIN), "pp")
    assert pp == (CHAIN / "expected" / "main.rendered.yaml").read_text()
    debug = ok("-p", str(CHAIN), "pp", "-d").splitlines()
    assert debug[1].split() == ["1", "{%", "extends", '"level3.yaml"', "%}"]
    assert "#----- optim.inline -----" in "\n".join(debug)
    meta = json.loads(ok("-p", str(CHAIN), "meta", "--format", "json"))
    assert meta["default_config"] == "main.yaml" and meta["config_prefix"] == "configs"
    assert json.loads(ok("-p", str(CHAIN), "targets", "--format", "json")) == [
        "model",
        "optimizer",
        "schedule",
        "lr",
        "callbacks",
        "main",
    ]
    assert ok("-p", str(CHAIN), "-t", "main.yaml", "targets").split()[0] == "model"
    tl = json.loads(ok("-p", str(CHAIN), "tlist", "--format", "json"))
    names = {t["template"] for t in tl}
    assert {"base.yaml", "level3.yaml", "configs/main.yaml"} <= names
    assert not any(n.startswith("templates/") for n in names)


def test_trefs_text_md_json():
    text = ok("-p", str(CHAIN), "trefs", "-t", "main.yaml")
    assert "    extends level2.yaml" in text and "  include optim.inline" in text
    md = ok("-p", str(CHAIN), "trefs", "-t", "main.yaml", "--format", "md")
    assert md.startswith("- `configs/main.yaml`") and "        - extends `base.yaml`" in md
    cyc = json.loads(ok("-p", str(CHAIN), "trefs", "-t", "cycle.yaml", "--format", "json"))
    inner = cyc[0]["refs"][0]["refs"][0]["refs"][0]
    assert inner["file"].startswith("(cycle:")


def test_graph_code_construct_index():
    graph = ok("-p", str(CHAIN), "graph")
    assert "!singleton:helpers.py:Box" in graph
    code = ok("-p", str(CHAIN), "code", "--target", "model")
    assert "def construct(" in code
    assert ok("-p", str(CHAIN), "graph", "--format", "python", "--target", "model") == code
    built = ok("-p", str(CHAIN), "construct", "--target", "model", "depth=7")
    assert "Box" in built and "7" in built
    index = ok("-p", str(CHAIN), "index")
    assert index.startswith("# chain") and "| main.yaml |" in index and "PARSE ERROR" in index


def test_errors_are_one_line_exit_2():
    r = glmx("-p", str(CHAIN), "-t", "nope.yaml", "pp")
    assert r.returncode == 2
    assert r.stderr.startswith("glmx pp: error:") and "main.yaml" in r.stderr
    r = glmx("-p", str(CHAIN), "construct", "--target", "nope")
    assert r.returncode == 2 and "no target 'nope'" in r.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_list_empty(tmp_path, fmt):
    out = ok("control", "list", "--format", fmt, env={"GLMX_CONTROL_DIR": str(tmp_path / "ctl")})
    assert out.strip() in ("", "[]")


def test_a_closed_stdout_ends_any_command_quietly():
    """`glmx pp | head -1`: the reader goes away; glmx exits 0 without a BrokenPipeError
    traceback (every command, not only `glmx client`)."""
    cmd = [sys.executable, "-m", "glmx.cli", "-p", str(CHAIN), "pp"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()
    proc.stderr.close()


def test_a_closed_stdout_fd_is_not_a_traceback():
    """`glmx pp >&-`: Python has no stdout at all; glmx still exits without a traceback."""
    cmd = f"{sys.executable} -m glmx.cli -p {CHAIN} pp >&-"
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
