"""`glmx pp` keeps the blank line that separates a `[block]` from what follows.

The blank lines (and `##` comment lines) between a block's last line and the next header, or the
end of the file, belong to the text after the block: they stay when the block renders as is and
when a child template (`-- extends`) overrides it. Each case runs through the real CLI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import ok

import glmx

PARENT = "[a]\nx: 1\n\n[b]\ny: 2\n\n[c]\nz: 3\n"
EXTENDS = "-- extends 'parent.yaml'\n"

# name: (parent template or None, config text, expected `glmx pp` output)
CASES: dict[str, tuple[str | None, str, str]] = {
    "blank_then_header": (None, "[a]\nx: 1\n\n[b]\ny: 2\n", "x: 1\n\ny: 2\n"),
    # only a header closes a block: the key after the blank line is still in `a`
    "blank_then_key": (None, "[a]\nx: 1\n\ny: 2\n", "x: 1\n\ny: 2\n"),
    "block_at_eof": (None, "[a]\nx: 1\n\n", "x: 1\n\n"),
    "header_right_after": (None, "[a]\nx: 1\n[b]\ny: 2\n", "x: 1\ny: 2\n"),
    "nested": (
        None,
        "[o]\nm:\n  [i]\n  x: 1\n\n  [j]\n  y: 2\n\n[p]\nz: 3\n",
        "m:\n  x: 1\n\n  y: 2\n\nz: 3\n",
    ),
    # a trimmed block takes the blank lines after it (Forgather's `[head!]` leaves nothing)
    "trimmed": (None, "[a!]\n\nx: 1\n\n[b]\ny: 2\n", "x: 1\ny: 2\n"),
    "trimmed_statements_only": (
        None,
        "-- set ns = namespace(x=0)\n[head!]\n  [in]\n  -- set ns.x = 3\n\n[b]\nx: {{ ns.x }}\n",
        "x: 3\n",
    ),
    "trailing_comments": (
        None,
        "[a]  ## first\nx: 1  ## why\n\n## about b\n[b]\ny: 2\n",
        "x: 1\n\ny: 2\n",
    ),
    "crlf": (None, "[a]\r\nx: 1\r\n\r\n[b]\r\ny: 2\r\n", "x: 1\r\n\r\ny: 2\r\n"),
    "child_overrides_first": (PARENT, EXTENDS + "[a]\nx: 2\n", "x: 2\n\ny: 2\n\nz: 3\n"),
    "child_overrides_middle": (PARENT, EXTENDS + "[b]\ny: 3\n", "x: 1\n\ny: 3\n\nz: 3\n"),
    "child_super": (
        PARENT,
        EXTENDS + "[a]\n== super()\nw: 2\n",
        "x: 1\n\nw: 2\n\ny: 2\n\nz: 3\n",
    ),
    "child_nested": (
        "[o]\nm:\n  [i]\n  x: 1\n\n[p]\ny: 2\n",
        EXTENDS + "  [i]\n  x: 5\n",
        "m:\n  x: 5\n\ny: 2\n",
    ),
    "child_of_trimmed": (
        "[a!]\nx: 1\n\n[b]\ny: 2\n",
        EXTENDS + "[a]\n\nx: 2\n\n",
        "x: 2\ny: 2\n",
    ),
    "child_trims_own_override": (
        "[a]\nx: 1\n\n[b]\ny: 2\n",
        EXTENDS + "[a!]\n\nx: 2\n\n",
        "x: 2\n\ny: 2\n",
    ),
    "child_of_commented": (
        "[a]  ## first\nx: 1  ## why\n\n## about b\n[b]\ny: 2\n",
        EXTENDS + "[a]\nx: 2\n",
        "x: 2\n\ny: 2\n",
    ),
    # a child file without a final line break: its last block still ends its line
    "child_unterminated": (PARENT, EXTENDS + "[a]\nx: 2", "x: 2\n\ny: 2\n\nz: 3\n"),
    "child_crlf": (
        "[a]\r\nx: 1\r\n\r\n[b]\r\ny: 2\r\n",
        "-- extends 'parent.yaml'\r\n[a]\r\nx: 2\r\n",
        "x: 2\r\n\r\ny: 2\r\n",
    ),
}


def _project(root: Path, parent: str | None, config: str) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "meta.yaml").write_text("name: blocks\n")
    if parent is not None:
        (root / "templates" / "parent.yaml").write_bytes(parent.encode())
    # bytes: CRLF files must reach the engine as written
    (root / "configs" / "main.yaml").write_bytes(config.encode())
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_pp_keeps_blank_line_after_block(tmp_path, case):
    parent, config, expected = CASES[case]
    proj = _project(tmp_path / case, parent, config)
    # bytes, so a CRLF file's line endings are checked as written
    run = subprocess.run(
        [sys.executable, "-m", "glmx.cli", "-p", str(proj), "-t", "main.yaml", "pp"],
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout.decode()
    assert out == expected
    assert glmx.Project("main.yaml", project_dir=proj).pp() == expected
    if parent is None and "-- " not in config:
        # headers only mark blocks: the YAML is the file's with the header lines removed
        plain = re.sub(r"(?m)^[ \t]*\[\w+!?\][ \t]*(##.*)?\r?$", "", config)
        assert yaml.safe_load(out) == yaml.safe_load(plain)


def test_pp_debug_shows_block_end_before_the_blank_line(tmp_path):
    proj = _project(tmp_path / "dbg", None, "[a]\nx: 1\n\n[b]\ny: 2\n")
    lines = ok("-p", str(proj), "-t", "main.yaml", "pp", "-d").splitlines()[1:]
    assert [line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else "" for line in lines] == [
        "{% block a %}",
        "x: 1",
        "{% endblock a +%}",
        "{% block b %}",
        "y: 2",
        "{% endblock b %}",
    ]
