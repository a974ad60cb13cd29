"""Issue #14: the config engine under a 2 GiB address-space limit (``ulimit -v``).

A child process replays the issue's reproductions and seeded random inputs (deep nesting, alias
bombs, malformed overrides, template text) through compose, the override parser, the template
engine and the graph builder. Every input must end in a result or a ``GlmxError``: no rc 134
(abort), 139 (segfault), other exception or hang. The child prints its case count and rate.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT_BYTES = 2 * 1024**3

CHILD = textwrap.dedent(
    r"""
    import json, os, random, sys, time
    from pathlib import Path
    from glmx import _config, config
    from glmx.errors import GlmxError
    from glmx.hydra.compose import compose

    root = Path(sys.argv[1])
    cases = int(sys.argv[2])
    rng = random.Random(14)
    counts = {"ok": 0, "error": 0}

    def laughs(levels, fan=10):
        out = ["l0: &l0 [lol]"]
        for i in range(1, levels + 1):
            out.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i-1}"] * fan) + "]")
        return "\n".join(out) + "\n"

    def case(fn, *args, **kw):
        try:
            fn(*args, **kw)
            counts["ok"] += 1
        except GlmxError:
            counts["error"] += 1

    def write(name, text):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    write("train.yaml", "a: 1\nb: ${a}\n")
    write("experiment/loop.yaml", "defaults:\n  - /experiment/loop\n")
    write("chain.yaml", "".join(f"v{i}: ${{v{i+1}}}\n" for i in range(20000)) + "v20000: 1\n")
    write("laughs.yaml", laughs(9))
    write("deep.yaml", "a: " + "[" * 200000 + "]" * 200000 + "\n")
    t0 = time.perf_counter()
    # the reproductions of issue #14
    case(compose, "train", ["+experiment=loop"], config_dir=root)
    case(compose, "chain", config_dir=root)
    case(compose, "laughs", config_dir=root)
    case(compose, "deep", config_dir=root)
    for opener in ("[", "{", "${", "{a:", "choice("):
        case(compose, "train", ["+x=" + opener * 20000], config_dir=root)
    case(_config.sweep_jobs, ["+a=range(0,100000)", "+b=range(0,100000)"], [])
    case(config.load, laughs(9))
    case(lambda: config.load(laughs(3)).code("l3"))
    case(config.render, "{% include '../../../../etc/passwd' %}")
    case(compose, "train", ["experiment=../../outside"], config_dir=root)

    frags = ["[", "]", "{", "}", "${", "a", ",", ":", "=", "'", '"', "\\", "(", ")",
             "range(", "choice(", "x.y", " ", "1", "??", "${a}", "${.b}", "oc.env:", "~",
             "+", "@", "\u00e9", "glob(*)", "extend_list("]
    yfrags = ["a: ", "- ", "&x ", "*x", "[", "]", "{", "}", "\n", "  ", "<<: ", "!!str ",
              "${a}", "${b.c}", "? ", ": ", "'", '"', "#", "1", "null", ",", "&y [*x, *x]"]
    tfrags = ["{{ v }}", "{%", "%}", "-- set x = 1", "== x", "{% include 'a' %}", "\n",
              "x: ", "!singleton:dict", "[", "]", "{{", "}}", "'", "*x", "&x "]
    for i in range(cases):
        n = rng.randrange(1, 60)
        if rng.random() < 0.1:  # deep nesting
            n = 0
            o = rng.choice(["[", "{a:", "${"]) * rng.randrange(150, 3000)
        else:
            o = "".join(rng.choice(frags) for _ in range(n))
        case(_config.parse_override, "+k=" + o)
        case(_config.sweep_jobs, ["+k=" + o], [], max_jobs=1000)
        y = "".join(rng.choice(yfrags) for _ in range(rng.randrange(1, 80)))
        write("f.yaml", "a: 1\nb: {c: 2}\n" + y)
        case(compose, "f", [], config_dir=root)
        t = "".join(rng.choice(tfrags) for _ in range(rng.randrange(1, 40)))
        case(config.render, t, v=y)
        case(lambda: config.load(y, v=o).materialize_many(config.load(y).targets))
    dt = time.perf_counter() - t0
    total = counts["ok"] + counts["error"]
    print(json.dumps({**counts, "cases": total, "seconds": round(dt, 2),
                      "per_second": round(total / dt)}))
    """
)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def test_config_engine_survives_fuzz_under_2gb(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), "1000"],
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=_limit,
    )
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["cases"] > 1000 * 5 and stats["error"] > 0
    print(stats)
