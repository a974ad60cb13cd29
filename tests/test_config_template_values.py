"""Template values render like the reference engine (issue #20): `{{ x }}` is placed by where it
lands (quoted scalar, comment, block scalar, heading line), Python's `str.format`, and the
reference's globals. Through the real `glmx pp` / `glmx ls` and `glmx.Project`."""

from __future__ import annotations

from pathlib import Path

import pytest
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


FORMATTING = """\
-- macro h1(title)
#{{ "{:-^39}".format(title) }}
-- endmacro
{{ h1('Model') }}
width: {{ '{:>6.2f}'.format(3.14159) }}
name: {{ '{0}_{n:03d}'.format('run', n=7) }}
module: {{ modname_from_path('src/models/causal_lm.py') }}
cwd: {{ getcwd() }}
home: {{ user_home_dir() }}
config_dir: {{ forgather_config_dir() }}
stamp: {{ utcisotime() }}
file_stamp: {{ filetime() }}
"""


def test_str_format_and_reference_globals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "p")
    (proj / "configs" / "fmt.yaml").write_text(FORMATTING)
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    out = ok("-p", str(proj), "-t", "fmt.yaml", "pp", cwd=tmp_path, env=env)
    assert out.startswith("#-----------------Model-----------------\n")
    cfg = yaml.safe_load(out)
    assert cfg["width"] == 3.14 and out.count("width:   3.14") == 1
    assert cfg["name"] == "run_007"
    assert cfg["module"] == "causal_lm"
    assert cfg["cwd"] == str(tmp_path)
    assert cfg["home"] == str(home)
    assert cfg["config_dir"] == f"{home}/.config/forgather"
    assert len(str(cfg["stamp"])) >= 19 and len(cfg["file_stamp"]) == 19
    listing = ok("-p", str(proj), "ls", cwd=tmp_path, env=env)
    assert "fmt.yaml" in listing and "ERROR" not in listing
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mine = glmx.Project("fmt.yaml", project_dir=proj).pp()
    stamps = ("stamp:", "file_stamp:")
    same = [line for line in mine.splitlines() if not line.startswith(stamps)]
    assert same == [line for line in out.splitlines() if not line.startswith(stamps)]


def test_unsupported_format_spec_names_file_and_line(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    (proj / "configs" / "bad.yaml").write_text("a: 1\nb: {{ '{:.1%}'.format(0.5) }}\n")
    run = run_glmx("-p", str(proj), "-t", "bad.yaml", "pp")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    first, *rest = run.stderr.strip().splitlines()
    assert "bad.yaml:2" in first and "str.format" in first and "'%'" in first, run.stderr
    assert rest == ["  | b: {{ '{:.1%}'.format(0.5) }}"]  # the template line, as for every error


CONTAINERS = """\
{% set langs = ["en", "de"] %}
{% set quirks = ["it's", 'say "hi"', "back\\\\slash"] %}
# languages: {{ langs }}
model:
  langs: {{ langs }}
  quirks: {{ quirks }}
  mixed: {{ [1, 2.5, True, None, {"k": langs}] }}
  joined: {{ langs + ["fr"] }}
  order: {{ {"z": 1, "a": {"y": 2, "b": 3}} }}
  loop: "{% for k, v in {"z": 1, "a": 2}.items() %}{{ k }}{% endfor %}"
  empty: [{{ [] }}, {{ {} }}]
  text: "{{ langs }}"
"""


def test_lists_and_dicts_render_as_jinja2_does(tmp_path: Path) -> None:
    """`{{ ["en"] }}` is Python's repr, `['en']`, as in the reference engine (Jinja2, which
    torch installs, renders the same text here as the reference)."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 (a torch dependency) is the reference")
    proj = _project(tmp_path / "p")
    (proj / "configs" / "containers.yaml").write_text(CONTAINERS)
    out = ok("-p", str(proj), "-t", "containers.yaml", "pp")
    want = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True).from_string(CONTAINERS)
    assert out == want.render()
    assert "  langs: ['en', 'de']" in out.splitlines()
    assert "  order: {'z': 1, 'a': {'y': 2, 'b': 3}}" in out.splitlines()  # insertion order
    # YAML reads the repr back (single-quoted YAML keeps a backslash as it is, as with Jinja2)
    assert yaml.safe_load(out)["model"]["quirks"] == ["it's", 'say "hi"', "back\\\\slash"]
