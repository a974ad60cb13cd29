"""Scaffolding: new workspaces and projects that train a tiny model on CPU out of the box.

``create_project(path)`` writes a template project (``meta.yaml``, ``templates/``, ``configs/``,
a small DNA file in ``data/``); with ``hydra=True`` it writes a Hydra-style ``configs/`` tree
(``train.yaml`` plus ``model/ data/ trainer/ callbacks/ logger/ experiment/`` groups) instead.
``create_workspace(path)`` writes a directory whose ``templates/`` the projects created inside
it share. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from glmx.errors import GlmxError

__all__ = ["WORKSPACE_FILE", "create_project", "create_workspace", "write_tiny_fasta"]

_HERE = Path(__file__).parent
WORKSPACE_FILE = "workspace.yaml"


def _check_target(path: Path, force: bool) -> None:
    if path.exists() and any(path.iterdir()) and not force:
        raise GlmxError(f"{path} exists and is not empty; choose another directory or pass --force")
    path.mkdir(parents=True, exist_ok=True)


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _yaml_str(value: str) -> str:
    # the placeholders sit inside double quotes in the YAML templates
    return json.dumps(value)[1:-1]


def write_tiny_fasta(path: Path, n_seqs: int = 8, length: int = 4000, seed: int = 0) -> Path:
    """A small random genome (seeded, with soft-masked lowercase stretches) for smoke training."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        for i in range(n_seqs):
            seq = "".join(rng.choice("ACGT") for _ in range(length))
            start = rng.randrange(0, length - 200)
            seq = seq[:start] + seq[start : start + 200].lower() + seq[start + 200 :]
            f.write(f">chr{i + 1}\n")
            f.writelines(seq[j : j + 80] + "\n" for j in range(0, length, 80))
    return path


def find_workspace(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``workspace.yaml``."""
    for d in [start, *start.parents]:
        if (d / WORKSPACE_FILE).is_file():
            return d
    return None


def _workspace_search_path(workspace: Path) -> list[str]:
    """The ``search_path`` entries of ``workspace.yaml`` (``glmx ws create --search-path``)."""
    import yaml

    try:
        data = yaml.safe_load((workspace / WORKSPACE_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise GlmxError(f"{workspace / WORKSPACE_FILE}: cannot read ({err})") from None
    extra = data.get("search_path") or [] if isinstance(data, dict) else []
    if not isinstance(extra, list) or not all(isinstance(d, str) for d in extra):
        raise GlmxError(f"{workspace / WORKSPACE_FILE}: search_path must be a list of directories")
    return extra


def create_workspace(
    path: str | os.PathLike[str],
    name: str | None = None,
    description: str = "",
    force: bool = False,
    search_path: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Creates a workspace: ``workspace.yaml``, shared ``templates/`` and a README.

    ``search_path`` directories (absolute or relative to the current directory) are added to
    the template search path of every project created below the workspace."""
    root = Path(path)
    extra = []
    for d in search_path:
        if not Path(d).is_dir():
            raise GlmxError(f"--search-path '{d}' is not a directory")
        extra.append(str(Path(d).resolve()))
    _check_target(root, force)
    name = name or root.resolve().name
    (root / WORKSPACE_FILE).write_text(
        f'## glmx workspace: projects created below share templates/.\nname: "{_yaml_str(name)}"\n'
        f'description: "{_yaml_str(description)}"\nsearch_path: {json.dumps(extra)}\n',
        encoding="utf-8",
    )
    (root / "templates").mkdir(exist_ok=True)
    shutil.copy(
        _HERE / "project" / "templates" / "gpn_train.yaml", root / "templates" / "gpn_train.yaml"
    )
    (root / "README.md").write_text(
        f"# {name}\n\n{description}\n\nCreate a project: `glmx project create --name NAME` in this directory.\n"
        "Templates in `templates/` are shared by every project below.\n",
        encoding="utf-8",
    )
    return root


def create_project(
    path: str | os.PathLike[str],
    name: str | None = None,
    description: str = "",
    default_config: str = "tiny_cpu.yaml",
    hydra: bool = False,
    force: bool = False,
    copy_config: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Creates a project in ``path`` that trains a tiny GPN on CPU with ``glmx train``.

    ``copy_config`` files are copied into ``configs/``; the first becomes the default config.
    """
    root = Path(path)
    for c in copy_config:
        if not Path(c).is_file():
            raise GlmxError(f"--copy-config '{c}' is not a file")
        if not re.fullmatch(r"[\w.-]+\.ya?ml", Path(c).name):
            raise GlmxError(f"--copy-config '{c}': the file name must end in .yaml or .yml")
    if copy_config:
        default_config = Path(copy_config[0]).name
    _check_target(root, force)
    name = name or root.resolve().name
    if not re.fullmatch(r"[\w.-]+\.ya?ml", default_config):
        raise GlmxError(
            f"default config must be a file name ending in .yaml, got {default_config!r}"
        )
    write_tiny_fasta(root / "data" / "tiny.fa")
    values = {"NAME": name, "DESCRIPTION": description}
    if hydra:
        shutil.copytree(_HERE / "hydra" / "configs", root / "configs", dirs_exist_ok=True)
        readme = _fill((_HERE / "project" / "README.md").read_text(encoding="utf-8"), values)
        (root / "README.md").write_text(
            readme.replace("glmx train ", "glmx train --hydra "), encoding="utf-8"
        )
        return root
    workspace = find_workspace(root.resolve().parent)
    searchdirs = ["templates"]
    if workspace is not None:
        searchdirs.append(os.path.relpath(workspace / "templates", root.resolve()))
        searchdirs += _workspace_search_path(workspace)
    values.update(
        NAME=_yaml_str(name),
        DESCRIPTION=_yaml_str(description),
        DEFAULT_CONFIG=default_config,
        SEARCHDIR=json.dumps(searchdirs),
    )
    src = _HERE / "project"
    (root / "templates").mkdir(exist_ok=True)
    (root / "configs").mkdir(exist_ok=True)
    (root / "meta.yaml").write_text(
        _fill((src / "meta.yaml").read_text(encoding="utf-8"), values), encoding="utf-8"
    )
    if workspace is None:
        shutil.copy(src / "templates" / "gpn_train.yaml", root / "templates" / "gpn_train.yaml")
    config = (src / "configs" / "tiny_cpu.yaml").read_text(encoding="utf-8")
    copied = {Path(c).name for c in copy_config}
    scaffold_name = "tiny_cpu.yaml" if copy_config else default_config
    if scaffold_name not in copied:
        (root / "configs" / scaffold_name).write_text(
            config.replace('"tiny_cpu"', json.dumps(Path(scaffold_name).stem)), encoding="utf-8"
        )
    for c in copy_config:
        shutil.copy(c, root / "configs" / Path(c).name)
    (root / "README.md").write_text(
        _fill(
            (src / "README.md").read_text(encoding="utf-8"),
            {"NAME": name, "DESCRIPTION": description},
        ),
        encoding="utf-8",
    )
    return root
