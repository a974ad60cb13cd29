"""Template values render like the reference engine (issue #20): `{{ x }}` is placed by where it
lands (quoted scalar, comment, block scalar, heading line), Python's `str.format`, and the
reference's globals. Through the real `glmx pp` / `glmx ls` and `glmx.Project`."""

from __future__ import annotations

from pathlib import Path

import yaml
from cli_helpers import glmx as run_glmx
from cli_helpers import ok

import glmx

MACROS = """\
-- macro h3(name)
{{ '# **' + name + '**' }}
-- endmacro
"""

CONFIG = """\
-- from 'macros.jinja' import h3
-- set desc = 'A, B: "c"'
-- set d = d if d is defined else 'x, y'
-- set n = n if n is defined else 1
# Description: {{ desc }}
{{ h3('Model') }}
model:
  desc: "{{ desc }}"
  single: '{{ desc }}'
  plain: {{ d }}
  text: |
    {{ d }}
  n: {{ n }}
"""


def _project(root: Path) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "meta.yaml").write_text("name: values\ndefault_config: main.yaml\n")
    (root / "templates" / "macros.jinja").write_text(MACROS)
    (root / "configs" / "main.yaml").write_text(CONFIG)
    return root


def test_values_land_like_the_reference(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    out = ok("-p", str(proj), "pp", "d=A, B", "n=3")
    assert out.splitlines()[:3] == ['# Description: A, B: "c"', "# **Model**", ""]
    assert '  desc: "A, B: \\"c\\""' in out.splitlines()
    assert "  single: 'A, B: \"c\"'" in out.splitlines()
    assert "  plain: A, B" in out.splitlines()
    model = yaml.safe_load(out)["model"]
    assert model == {
        "desc": 'A, B: "c"',
        "single": 'A, B: "c"',
        "plain": "A, B",
        "text": "A, B\n",
        "n": 3,
    }
    assert glmx.Project("main.yaml", project_dir=proj, d="A, B", n=3).pp() == out
    listing = ok("-p", str(proj), "ls")
    assert "main.yaml" in listing and "ERROR" not in listing


def test_injection_stays_one_string_wherever_it_lands(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    bad = '"\n  x: !!python/object/apply:os.system ["echo INJECTED"]\n#'
    run = run_glmx("-p", str(proj), "pp", f"d={yaml.safe_dump(bad).strip()}", "n=1")
    assert run.returncode == 0, run.stderr
    model = yaml.safe_load(run.stdout)["model"]
    assert set(model) == {"desc", "single", "plain", "text", "n"}
    assert model["plain"] == bad
    assert "!!python" in model["text"]
