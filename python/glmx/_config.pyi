"""Type stubs for ``glmx._config``: the config-engine bindings and the glmx exception classes.

Checked against the built extension with
``python -m mypy.stubtest glmx._config glmx._glmx`` (tests/test_stubs.py).
"""

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias, final

__all__ = [
    "__version__",
    "GlmxError",
    "ConfigError",
    "ConfigCompositionError",
    "OverrideError",
    "DataError",
    "CheckpointError",
    "TrainError",
    "set_log_level",
    "drain_logs",
    "dropped_log_records",
    "ConfigGraph",
    "config_preprocess",
    "config_render",
    "config_load",
    "config_load_project",
    "_panic_in_guard",
    "_raise_config_error",
    "ComposedConfig",
    "compose_config",
    "sweep_jobs",
    "parse_override",
    "config_load_meta",
]

__version__: str
"""Version of the glmx crates this extension was built from."""

# --- exceptions --------------------------------------------------------------------------------

class GlmxError(Exception):
    """Root of every error glmx raises."""

class ConfigError(GlmxError):
    """A config file, template or YAML tag is invalid."""

class ConfigCompositionError(ConfigError):
    """Composing a config tree failed (defaults list, package, missing option)."""

class OverrideError(ConfigError):
    """A command-line override is malformed or cannot apply."""

class DataError(GlmxError):
    """Training data is malformed or unreadable."""

class CheckpointError(GlmxError):
    """A checkpoint cannot be written, read or validated."""

class TrainError(GlmxError):
    """The training loop failed."""

# --- logging (glmx-pylog) ----------------------------------------------------------------------

def set_log_level(level: int) -> None:
    """Sets the lowest Python logging level (0-255) forwarded from Rust."""

def drain_logs() -> list[tuple[int, str, str]]:
    """Takes every queued record without blocking: a list of ``(level, logger_name, message)``."""

def dropped_log_records() -> int:
    """Number of records dropped because the queue was full."""

# --- template graphs ---------------------------------------------------------------------------

_Loc: TypeAlias = tuple[int, str]
"""``(1-based line, dotted key)`` where a node was defined."""
_Scalar: TypeAlias = None | bool | int | float | str
_CallSpec: TypeAlias = tuple[
    Literal["singleton", "factory", "partial"],
    tuple[Literal["builtin", "module", "file"], str, str],
    str,
    list[int],
    list[tuple[str, int]],
    str | None,
]
"""``(kind, (callable kind, module or path, attr), display name, args, kwargs, @name)``."""
_NodeEntry: TypeAlias = (
    tuple[Literal["value"], _Scalar, _Loc]
    | tuple[Literal["list", "tuple"], list[int], bool, _Loc]
    | tuple[Literal["dict"], list[tuple[int, int]], bool, _Loc]
    | tuple[Literal["call"], _CallSpec, _Loc]
    | tuple[Literal["var"], str, int | None, _Loc]
    | tuple[Literal["meta"], int, _Loc]
)
"""One row of ``ConfigGraph.nodes()``; node references are indices into that table."""

@final
class ConfigGraph:
    """A node graph built from tagged YAML (see ``glmx.config.Graph`` for the Python API)."""

    @property
    def targets(self) -> list[str]:
        """Target names (top-level keys not starting with ``.``), in order."""

    @property
    def file(self) -> str | None:
        """The file the graph came from (for messages), or None."""

    def roots(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """``([(name, node_id)] of targets, [(name, node_id)] of .definitions)``."""

    def nodes(self) -> list[_NodeEntry]:
        """The node table: one tuple per node, see ``glmx.config._materialize``."""

    def to_yaml(self) -> str:
        """The graph as YAML with tags, anchors for shared nodes."""

    def code(self, target: str) -> str:
        """Standalone Python source defining ``construct(**vars)`` that builds ``target``."""

def config_preprocess(text: str) -> str:
    """Line syntax translated to plain Jinja."""

def config_render(
    text: str,
    search_path: Sequence[str],
    vars: dict[str, Any] | None = None,
    name: str | None = None,
) -> str:
    """Renders ``text`` over ``search_path`` with template variables ``vars``."""

def config_load(
    text: str,
    search_path: Sequence[str],
    vars: dict[str, Any] | None = None,
    name: str | None = None,
) -> ConfigGraph:
    """Renders ``text`` and builds its graph."""

def config_load_project(
    config: str | None,
    project_dir: str,
    vars: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str, str, ConfigGraph]:
    """Loads a config of a template project: ``(meta dict, template name, rendered, graph)``."""

def config_load_meta(project_dir: str) -> tuple[dict[str, Any]]:
    """Reads ``meta.yaml`` of ``project_dir`` (defaults filled in) as ``(meta dict,)``."""

def _panic_in_guard(message: str) -> None:
    """Test hook: panics in Rust inside the binding guard (raises ``ConfigError``)."""

def _raise_config_error(kind: str, message: str) -> None:
    """Test hook: raises config error ``kind`` ("config", "composition", "override")."""

# --- Hydra-style composition -------------------------------------------------------------------

_Resolvers: TypeAlias = dict[str, Callable[..., Any]]
"""Resolver name -> callable taking the resolver's arguments as plain Python values."""

@final
class ComposedConfig:
    """A composed config, before interpolation."""

    def raw(self) -> Any:
        """The tree as plain containers, ``${...}`` left as written."""

    def resolve(self, resolvers: _Resolvers, skip: Sequence[str] = ...) -> Any:
        """The tree with every interpolation resolved; ``skip`` lists top-level keys to omit."""

    def select(self, key: str, resolvers: _Resolvers) -> Any:
        """The resolved value at dotted ``key``, or None when absent."""

    def set(self, key: str, value: object) -> None:
        """Sets dotted ``key`` (creating mappings); used to fill ``hydra.runtime.*``."""

    @property
    def defaults(self) -> list[tuple[str, str, str | None]]:
        """The merge order: ``(config_path, package, parent)`` per entry."""

    @property
    def choices(self) -> list[tuple[str, str | None]]:
        """Final group choices as ``(group, option)``."""

    @property
    def task_overrides(self) -> list[str]:
        """Job overrides as typed."""

    @property
    def hydra_overrides(self) -> list[str]:
        """``hydra.*`` overrides as typed."""

    @property
    def searchpath(self) -> str:
        """The search path, formatted as in errors."""

    def override_dirname(self, kv_sep: str, item_sep: str, exclude_keys: Sequence[str]) -> str:
        """``hydra.job.override_dirname`` for the task overrides."""

def compose_config(
    config_name: str | None,
    search_path: Sequence[tuple[str, str]],
    overrides: Sequence[str],
    with_hydra: bool = True,
    multirun: bool = False,
) -> ComposedConfig:
    """Composes ``config_name`` over ``search_path`` (``[(provider, dir)]``) with overrides."""

def sweep_jobs(
    overrides: Sequence[str],
    search_path: Sequence[tuple[str, str]],
    max_jobs: int | None = None,
) -> list[list[str]]:
    """Expands sweep overrides into one override list per job (basic sweeper order); more than
    ``max_jobs`` jobs (default ``GLMX_MAX_SWEEP_JOBS``, 10,000) raise ``OverrideError``."""

def parse_override(text: str) -> tuple[str, str, str | None, Any, bool]:
    """Parses one override into ``(prefix, key, package, value, is_sweep)``."""
