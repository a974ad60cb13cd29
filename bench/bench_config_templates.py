"""Render + load of a config with a 5-level template inheritance chain (target: < 5 ms).

Run: .venv/bin/python bench/bench_config_templates.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import glmx

LEVELS = 5


def write_project(root: Path) -> None:
    (root / "templates").mkdir()
    (root / "configs").mkdir()
    (root / "meta.yaml").write_text("name: bench\ndefault_config: main.yaml\n")
    (root / "templates" / "level0.yaml").write_text(
        "-- set ns = namespace(width=8)\n[globals]\n[model]\n"
        "model: &model !singleton:dict\n  width: {{ ns.width }}\n"
        "  layers: !dlist\n-- for i in range(12)\n    l{{ i }}: !factory:dict {i: {{ i }}}\n"
        "-- endfor\n[main]\nmain: !singleton:dict\n  model: *model\n"
    )
    for level in range(1, LEVELS):
        (root / "templates" / f"level{level}.yaml").write_text(
            f'-- extends "level{level - 1}.yaml"\n[globals]\n== super()\n'
            f"-- set ns.width = ns.width + {level}\n[main]\n== super()\n  extra{level}: {level}\n"
        )
    (root / "configs" / "main.yaml").write_text(
        f'-- extends "level{LEVELS - 1}.yaml"\n[model]\n== super()\nlr: 0.001\n'
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root)
        glmx.Project("main.yaml", project_dir=root)  # warm the page cache and imports
        times = []
        for _ in range(200):
            start = time.perf_counter()
            proj = glmx.Project("main.yaml", project_dir=root)
            times.append(time.perf_counter() - start)
        times.sort()
        median = times[len(times) // 2] * 1e3
        p95 = times[int(len(times) * 0.95)] * 1e3
        start = time.perf_counter()
        proj()
        build = (time.perf_counter() - start) * 1e3
        print(
            f"render+load, {LEVELS}-level extends chain: median {median:.3f} ms, p95 {p95:.3f} ms"
        )
        print(f"materialize main: {build:.3f} ms (target render+load < 5 ms)")


if __name__ == "__main__":
    main()
