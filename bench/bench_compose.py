"""Compose a lightning-hydra-template-sized tree with glmx and with hydra-core; time --cfg job.

Tree: tests/fixtures/hydra/lht (32 files, 11 user groups + glmx's hydra/* groups), composed with
`experiment=example` in one process by both engines (same overrides, same machine).
Targets: glmx >= 20x faster than hydra-core; `--cfg job` in a fresh process < 150 ms.
Run: .venv/bin/python bench/bench_compose.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "tests" / "fixtures" / "hydra" / "lht"
OVERRIDES = ["experiment=example", "trainer.max_epochs=3"]


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    import glmx
    from glmx.hydra.compose import PACKAGE_CONFIGS

    extra = Path(tempfile.mkdtemp())
    for group in ("hydra_logging", "job_logging"):
        (extra / "hydra" / group).mkdir(parents=True)
        (extra / "hydra" / group / "colorlog.yaml").write_text(
            (PACKAGE_CONFIGS / "hydra" / group / "colorlog.yaml").read_text()
        )
    ovs = [*OVERRIDES, f"hydra.searchpath=[file://{extra}]"]

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def hydra_once() -> None:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(TREE), version_base=None):
            compose("train", overrides=ovs)

    def glmx_once() -> None:
        glmx.compose("train", ovs, TREE, resolve=False)

    hydra_once(), glmx_once()  # warm imports and caches of both
    h_best, h_med = _best(hydra_once, 20)
    g_best, g_med = _best(glmx_once, 200)
    print(f"hydra-core compose: best {h_best * 1e3:.2f} ms, median {h_med * 1e3:.2f} ms")
    print(f"glmx compose:       best {g_best * 1e3:.3f} ms, median {g_med * 1e3:.3f} ms")
    print(f"speedup (median): {h_med / g_med:.1f}x  (target >= 20x)")

    code = (
        "from glmx.hydra import runner\n"
        f"argv = ['-cp', {str(TREE)!r}, '-cn', 'train', '--cfg', 'job', *{OVERRIDES!r}]\n"
        "runner.run(lambda c: None, argv)\n"
    )
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    best, med = min(walls) * 1e3, statistics.median(walls) * 1e3
    print(f"--cfg job wall (fresh process): best {best:.0f} ms, median {med:.0f} ms (target 150)")


if __name__ == "__main__":
    main()
