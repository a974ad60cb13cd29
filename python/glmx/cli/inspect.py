"""Inspect template projects: ``ls pp meta targets tlist trefs graph code construct index``.

None of these import torch, except ``construct`` when the target it builds does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from glmx import _config
from glmx.cli import print_table
from glmx.errors import GlmxError

_FORMAT_COMMANDS = ("ls", "meta", "targets", "tlist", "trefs", "index")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of the inspect commands."""
    if command == "ls":
        parser.add_argument(
            "-r",
            "--recursive",
            action="store_true",
            help="find projects below the project directory",
        )
    if command == "pp":
        parser.add_argument(
            "-d",
            "--debug",
            action="store_true",
            help="show the translated template with line numbers",
        )
    if command in ("trefs", "tlist", "templates"):
        parser.add_argument(
            "--format", choices=["text", "md", "json"], default="text", help="output format"
        )
    elif command == "graph":
        parser.add_argument(
            "--format", choices=["yaml", "python"], default="yaml", help="output format"
        )
        parser.add_argument(
            "--target", default="main", help="target for --format python (default: main)"
        )
    elif command in _FORMAT_COMMANDS and command != "index":
        parser.add_argument(
            "--format", choices=["text", "json"], default="text", help="output format"
        )
    if command in ("code", "construct"):
        parser.add_argument("--target", default="main", help="target name (default: main)")
    if command == "construct":
        parser.add_argument(
            "--call", action="store_true", help="call the built object with no arguments"
        )
    if command not in ("ls", "meta", "tlist", "templates", "index"):
        parser.add_argument(
            "vars",
            nargs="*",
            metavar="NAME=VALUE",
            help="template variables (values parsed as YAML scalars)",
        )


def _template_vars(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items to template variables; each value is one YAML value (data: the
    engine quotes strings when it renders them, so a value cannot add YAML structure)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise GlmxError(f"template variable '{item}' must be NAME=VALUE")
        try:
            value.encode("utf-8")
            out[name] = yaml.safe_load(value) if value else ""
        except UnicodeEncodeError:
            raise GlmxError(
                f"template variable '{name}': the value is not valid UTF-8; pass UTF-8 text"
            ) from None
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GlmxError(
                f"template variable '{name}': the value {value!r} is not valid YAML ({first}); "
                "quote it, e.g. NAME='\"text\"'"
            ) from None
    return out


def load_meta(project_dir: str) -> dict[str, Any]:
    """``meta.yaml`` of ``project_dir`` as a dict (defaults filled in)."""
    (meta,) = _config.config_load_meta(project_dir)
    return meta


def config_info(project_dir: str, config: str) -> dict[str, Any]:
    """``{config, description, targets, error}`` for one config (rendered and parsed)."""
    info: dict[str, Any] = {"config": config, "description": "", "targets": [], "error": None}
    try:
        _, template, _, native = _config.config_load_project(config, project_dir, {})
    except GlmxError as err:
        info["error"] = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        info["description"] = _comment_description(project_dir, config)
        return info
    targets = [name for name, _ in native.roots()[0]]
    info["targets"] = targets
    if "meta" in targets:
        info["description"] = _meta_description(native, project_dir)
    info["description"] = info["description"] or _comment_description(project_dir, config)
    return info


def _meta_description(native: Any, project_dir: str) -> str:
    from glmx.config import Graph

    try:
        meta = Graph(native, base_dir=project_dir).materialize("meta")
    except Exception:  # a meta target that does not build leaves the description to comments
        return ""
    if isinstance(meta, dict):
        return str(meta.get("config_description") or meta.get("description") or "")
    return ""


def _comment_description(project_dir: str, config: str) -> str:
    meta = load_meta(project_dir)
    path = Path(project_dir) / meta["config_prefix"] / config
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines[:20]:
        s = line.strip()
        if s.startswith("#") and not re.match(r"#-{3,}", s):
            return s.lstrip("#").strip()
        if s and not s.startswith("--"):
            break
    return ""


def _find_projects(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "outputs")
        )
        if "meta.yaml" in filenames:
            found.append(Path(dirpath))
    return found


def _ls(args: argparse.Namespace) -> int:
    roots = _find_projects(Path(args.project_dir)) if args.recursive else [Path(args.project_dir)]
    if not args.recursive and not (Path(args.project_dir) / "meta.yaml").is_file():
        raise GlmxError(
            f"{args.project_dir} is not a project (no meta.yaml); use `glmx ls -r` to search below it"
        )
    projects = []
    for root in roots:
        try:
            meta = load_meta(str(root))
        except GlmxError as err:
            projects.append(
                {
                    "project_dir": str(root),
                    "name": root.name,
                    "description": "",
                    "error": str(err),
                    "configs": [],
                }
            )
            continue
        configs = [config_info(str(root), c) for c in meta["configs"]]
        projects.append(
            {
                "project_dir": str(root),
                "name": meta["name"],
                "description": meta["description"],
                "default_config": meta["default_config"],
                "configs": configs,
            }
        )
    if args.format == "json":
        print(json.dumps(projects if args.recursive else projects[0], indent=1))
        return 0
    for i, p in enumerate(projects):
        if i:
            print()
        print(f"{p['name']}: {p['description']}" if p["description"] else p["name"])
        if args.recursive:
            print(f"  dir: {p['project_dir']}")
        if p.get("error"):
            print(f"  PARSE ERROR meta.yaml: {p['error']}")
        width = max((len(c["config"]) for c in p["configs"]), default=0)
        for c in p["configs"]:
            mark = "*" if c["config"] == p.get("default_config") else " "
            text = f"PARSE ERROR {c['error']}" if c["error"] else c["description"]
            print(f" {mark}{c['config'].ljust(width)}  {text}".rstrip())
    return 0


def _config_file(meta: dict[str, Any], name: str) -> Path | None:
    for d in meta["search_path"]:
        if (Path(d) / name).is_file():
            return Path(d) / name
    return None


def _hydra_tree_dir(config: str | None, project_dir: str) -> str | None:
    """``<project>/configs`` when ``config`` names a Hydra primary config there and the project
    has no ``meta.yaml`` (``glmx -t train.yaml pp`` from a Hydra project's root)."""
    if config is None or (Path(project_dir) / "meta.yaml").exists():
        return None
    from glmx.hydra.compose import is_hydra_tree

    name = config if config.endswith((".yaml", ".yml")) else config + ".yaml"
    tree = Path(project_dir) / "configs"
    if not (Path(project_dir) / name).is_file() and is_hydra_tree(tree / name):
        return str(tree)
    return None


def _pp(args: argparse.Namespace) -> int:
    if not args.debug:
        from glmx.project import Project

        tree = _hydra_tree_dir(args.config, args.project_dir)
        if tree is not None:  # compose the Hydra tree; NAME=VALUE items are overrides
            print(Project(args.config, tree, overrides=list(args.vars)).pp(), end="")
            return 0
        print(Project(args.config, args.project_dir, **_template_vars(args.vars)).pp(), end="")
        return 0
    from glmx.config import preprocess

    meta = load_meta(args.project_dir)
    name = args.config or meta["default_config"]
    if name is None:
        raise GlmxError("no config named (-t) and meta.yaml declares no default_config")
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        raise GlmxError(
            f"config name '{name}' leaves the config search path; names are relative paths "
            "inside it, without '..' or a leading '/'"
        )
    path = _config_file(meta, f"{meta['config_prefix']}/{name}") or _config_file(meta, name)
    if path is None:
        raise GlmxError(f"config '{name}' not found; configs: {', '.join(meta['configs'])}")
    print(f"# {path} (translated)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise GlmxError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    # inline templates are translated separately, as the engine does; numbering stays global
    parts = _INLINE.split(text)
    chunks = [preprocess(parts[0])] + [
        f"#----- {name} -----" + preprocess(chunk)
        for name, chunk in zip(parts[1::2], parts[2::2], strict=True)
    ]
    for i, line in enumerate(
        "".join(c if c.endswith("\n") else c + "\n" for c in chunks).splitlines(), 1
    ):
        print(f"{i:5d}  {line}")
    return 0


def _templates(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``*.yaml`` on the search path: name, file, and whether an earlier dir shadows it."""
    seen: set[str] = set()
    out = []
    project = Path(meta["project_dir"]).resolve()
    for d in meta["search_path"]:
        base = Path(d)
        # the project directory is on the search path for `configs/X`; its other
        # subdirectories (outputs, data, the template dirs themselves) are not templates
        walk_root = base / meta["config_prefix"] if base.resolve() == project else base
        for dirpath, dirnames, filenames in os.walk(walk_root):
            dirnames[:] = sorted(
                x for x in dirnames if not x.startswith(".") and x not in ("outputs", "__pycache__")
            )
            for f in sorted(filenames):
                if f.endswith((".yaml", ".yml")):
                    name = str((Path(dirpath) / f).relative_to(base))
                    out.append(
                        {"template": name, "file": str(Path(dirpath) / f), "shadowed": name in seen}
                    )
                    seen.add(name)
    return out


def _run(args: argparse.Namespace, command: str) -> int:
    if command == "ls":
        return _ls(args)
    if command == "pp":
        return _pp(args)
    if command == "meta":
        meta = load_meta(args.project_dir)
        if args.format == "json":
            print(json.dumps(meta, indent=1))
        else:
            for k, v in meta.items():
                print(
                    f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else ('' if v is None else v)}"
                )
        return 0
    if command in ("tlist", "templates"):
        rows = _templates(load_meta(args.project_dir))
        if args.format == "json":
            print_table(rows, "json")
        elif args.format == "md":
            print("| template | file | shadowed |\n|---|---|---|")
            for r in rows:
                print(f"| `{r['template']}` | `{r['file']}` | {'yes' if r['shadowed'] else ''} |")
        else:
            for r in rows:
                print(f"{r['template']}  {r['file']}{'  (shadowed)' if r['shadowed'] else ''}")
        return 0
    if command == "trefs":
        return _trefs(args)
    if command == "index":
        return _index(args)
    from glmx.project import Project

    values = _template_vars(args.vars)  # both template variables and !var bindings
    proj = Project(args.config, args.project_dir, **values)
    if command == "targets":
        if args.format == "json":
            print(json.dumps(proj.targets))
        else:
            print("\n".join(proj.targets))
    elif command == "graph":
        print(proj.graph() if args.format == "yaml" else proj.code(args.target), end="")
    elif command == "code":
        print(proj.code(args.target), end="")
    elif command == "construct":
        obj = proj(args.target, **values)
        if args.call:
            obj = obj()
        print(repr(obj))
    return 0


def _index(args: argparse.Namespace) -> int:
    meta = load_meta(args.project_dir)
    print(f"# {meta['name']}\n")
    if meta["description"]:
        print(f"{meta['description']}\n")
    print(f"Project directory: `{meta['project_dir']}`  ")
    print(f"Default config: `{meta['default_config'] or '-'}`\n")
    print("## Configs\n\n| config | description | targets |\n|---|---|---|")
    for c in (config_info(args.project_dir, name) for name in meta["configs"]):
        desc = f"PARSE ERROR {c['error']}" if c["error"] else c["description"]
        print(f"| {c['config']} | {desc.replace('|', '/')} | {', '.join(c['targets'])} |")
    print("\n## Templates\n")
    for t in _templates(meta):
        print(f"- `{t['template']}`{' (shadowed)' if t['shadowed'] else ''}")
    return 0


def run(args: argparse.Namespace, command: str) -> int:
    """Runs one inspect command."""
    if not hasattr(args, "format"):
        args.format = "text"
    rc = _run(args, command)
    sys.stdout.flush()
    return rc


_REF = re.compile(r"""\{%-?\s*(extends|include|import|from)\s+["']([^"']+)["']""")
_INLINE = re.compile(r"^#-{3,}\s*([\w./]+)\s*-{3,}\s*$", re.M)


def _template_sources(meta: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Template name -> (file, template text), inline templates included; first dir wins."""
    from glmx.config import preprocess

    out: dict[str, tuple[str, str]] = {}
    for t in _templates(meta):
        if t["shadowed"]:
            continue
        text = Path(t["file"]).read_text(encoding="utf-8", errors="replace")
        parts = _INLINE.split(text)
        out.setdefault(t["template"], (t["file"], preprocess(parts[0])))
        for name, chunk in zip(parts[1::2], parts[2::2], strict=True):
            out.setdefault(name, (f"{t['file']} (inline)", preprocess(chunk)))
    return out


def _ref_tree(
    name: str, sources: dict[str, tuple[str, str]], chain: tuple[str, ...] = ()
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "template": name,
        "file": sources.get(name, ("(not found)", ""))[0],
        "refs": [],
    }
    if name in chain:
        node["file"] = "(cycle: " + " -> ".join((*chain, name)) + ")"
        return node
    for kind, ref in _REF.findall(sources.get(name, ("", ""))[1]):
        child = _ref_tree(ref, sources, (*chain, name))
        child["kind"] = "import" if kind == "from" else kind
        node["refs"].append(child)
    return node


def _print_tree(node: dict[str, Any], fmt: str, depth: int = 0) -> None:
    kind = f"{node['kind']} " if "kind" in node else ""
    if fmt == "md":
        print(f"{'  ' * depth}- {kind}`{node['template']}` ({node['file']})")
    else:
        print(f"{'  ' * depth}{kind}{node['template']}  [{node['file']}]")
    for child in node["refs"]:
        _print_tree(child, fmt, depth + 1)


def _trefs(args: argparse.Namespace) -> int:
    meta = load_meta(args.project_dir)
    sources = _template_sources(meta)
    configs = [args.config] if args.config else meta["configs"]
    trees = [_ref_tree(f"{meta['config_prefix']}/{c}", sources) for c in configs]
    if args.format == "json":
        print(json.dumps(trees, indent=1))
        return 0
    for tree in trees:
        _print_tree(tree, args.format)
    return 0


__all__ = ["add_arguments", "config_info", "load_meta", "run"]
