"""glmx's PEP 517 build backend: maturin, plus the config-engine module and the shipped configs.

maturin builds one extension module per project: ``glmx._glmx`` (data loader, training loop,
checkpoints; links libtorch). ``glmx._config`` (the config engine) is a second extension that
does not link libtorch, so ``import glmx`` and the config tools start in ~0.1 s without torch.
This backend builds that second module with cargo and copies the ``configs/`` tree into the
package before handing over to maturin, so one wheel (and one ``pip install .``) holds both
modules and the configs. Every PEP 517 hook not defined here is maturin's own.

Build-time torch: ``tch`` compiles against the libtorch of torch==2.13.0. With pip's build
isolation that torch is added to the build requirements; with ``--no-build-isolation`` the
environment's own torch is used. ``LIBTORCH=/path/to/libtorch`` skips torch entirely.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import maturin
from maturin import *  # noqa: F401,F403  (the hooks this module does not override)

TORCH_REQUIREMENT = "torch==2.13.0"
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "glmx"
# The shipped copy of configs/ inside the package (generated; gitignored).
SHIPPED_CONFIGS = PACKAGE / "_configs"
# Paths an sdist needs beyond what maturin packs for glmx._glmx's crate graph.
SDIST_EXTRA = (
    "src/glmx-config",
    "src/glmx-config-py",
    "configs",
    "tools",
    "Cargo.toml",
    "Cargo.lock",
)


def _find_maturin_binary() -> None:
    """maturin's hooks run the ``maturin`` executable from PATH. With ``--no-build-isolation``
    and a venv that is not activated it sits beside this interpreter, not on PATH."""
    if shutil.which("maturin"):
        return
    for scripts in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (scripts / "maturin").is_file():
            os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
            return


_find_maturin_binary()


def _cargo_env() -> dict[str, str]:
    env = dict(os.environ)
    if "LIBTORCH" not in env:
        env.setdefault("LIBTORCH_USE_PYTORCH", "1")
    env.setdefault("PYO3_PYTHON", sys.executable)
    return env


def _build_config_module() -> None:
    """cargo-builds glmx._config (release) into python/glmx/."""
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--release", "-p", "glmx-config-py", "--features", "extension-module"]
    subprocess.run(cmd, cwd=ROOT, env=_cargo_env(), check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = target / "release" / "lib_config.so"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for stale in PACKAGE.glob("_config.*.so"):
        if stale.name != f"_config{suffix}":
            stale.unlink()
    # renamed into place: processes that have the old module mapped keep running
    tmp = PACKAGE / f".tmp_config{suffix}"
    shutil.copy2(built, tmp)
    os.replace(tmp, PACKAGE / f"_config{suffix}")


def _copy_configs() -> None:
    """configs/ -> python/glmx/_configs/ (the search-path entry of an installed glmx)."""
    src = ROOT / "configs"
    if not src.is_dir():
        if SHIPPED_CONFIGS.is_dir():
            return  # building from an sdist that already carries the copy
        raise RuntimeError(f"configs/ not found beside {ROOT / 'pyproject.toml'}")
    if SHIPPED_CONFIGS.exists():
        shutil.rmtree(SHIPPED_CONFIGS)
    shutil.copytree(src, SHIPPED_CONFIGS, ignore=shutil.ignore_patterns("__pycache__", "local"))


def _prepare() -> None:
    os.environ.update({k: v for k, v in _cargo_env().items() if k not in os.environ})
    _build_config_module()
    _copy_configs()


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    """maturin's requirements plus torch 2.13.0 (tch builds against it) unless LIBTORCH is set."""
    reqs = list(maturin.get_requires_for_build_wheel(config_settings))
    return reqs if "LIBTORCH" in os.environ else [*reqs, TORCH_REQUIREMENT]


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    """As for a wheel."""
    return get_requires_for_build_wheel(config_settings)


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    """Both extension modules and the configs in one wheel."""
    _prepare()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    """An editable install: both modules are placed in python/glmx."""
    _prepare()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    """maturin's sdist plus the config-engine crate, configs/ and this backend.

    maturin packs the crates that glmx._glmx depends on; the config engine and its bindings
    are not among them, so they (and the workspace manifest that lists them) are added here."""
    name = maturin.build_sdist(sdist_directory, config_settings)
    path = Path(sdist_directory) / name
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        (top,) = Path(tmp).iterdir()
        for rel in SDIST_EXTRA:
            src, dst = ROOT / rel, top / rel
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=_ignore_built)
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(top, arcname=top.name)
    return name


def _ignore_built(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "target", "local") or n.endswith(".so")]
