"""The Optuna sweeper: ``hydra/sweeper: optuna``, as hydra-optuna-sweeper 1.2 runs it.

``python -m glmx.train -m hparams_search=toy_optuna`` asks Optuna for ``n_trials`` parameter
sets (in batches of ``n_jobs``), runs the task once per set in ``<sweep dir>/<n>/`` and tells
Optuna the task's return value (``optimized_metric``). The search space is
``hydra.sweeper.params`` plus the command line's sweep overrides (those win), in Hydra's sweep
syntax: ``interval(a,b)`` (float), ``tag(log, interval(a,b))``, ``range(a,b[,step])`` (ints
unless a float appears; ``stop`` included, as in the plugin), ``choice(...)`` and ``a,b,c``
(categorical). Other overrides are fixed for every trial. At the end the best trial is logged
and written to ``<sweep dir>/optimization_results.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from glmx.errors import ConfigError

log = logging.getLogger("glmx.optuna")

#: ``_target_`` values that select this sweeper (glmx's and the Hydra plugin's).
TARGETS = (
    "glmx.hydra.optuna_sweeper.OptunaSweeper",
    "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
)


class OptunaSweeper:
    """Marker for ``hydra/sweeper: optuna``; the runner calls :func:`sweep`."""


def _split(text: str) -> list[str]:
    """Splits on top-level commas (outside quotes, brackets, parentheses, after no ``\\``)."""
    parts, depth, quote, cur, i = [], 0, "", [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur).strip())
    return parts


def _scalar(text: str, where: str) -> Any:
    from glmx import _config

    try:
        return _config.parse_override(f"x={text}")[3]
    except Exception as err:  # the engine's OverrideError: re-raise naming the parameter
        raise ConfigError(f"optuna sweeper: {where}: bad value '{text}' ({err})") from None


def _call(text: str) -> tuple[str, str] | None:
    head, sep, rest = text.partition("(")
    if sep and rest.endswith(")") and head.strip().isidentifier():
        return head.strip(), rest[:-1]
    return None


def _args(body: str, where: str) -> tuple[list[str], dict[str, str]]:
    pos, kw = [], {}
    for part in _split(body):
        name, eq, value = part.partition("=")
        if eq and name.strip().isidentifier() and "(" not in name:
            kw[name.strip()] = value.strip()
        elif part:
            pos.append(part)
    return pos, kw


def distribution(key: str, text: str, tags: Sequence[str] = ()) -> Any:
    """The Optuna distribution for one sweep value (``interval(0.1, 1)``, ``a,b``, ...), or
    ``None`` when ``text`` is a plain value (a fixed parameter)."""
    import optuna.distributions as d

    where = f"parameter '{key}'"
    call = _call(text)
    if call is None:
        parts = _split(text)
        if len(parts) < 2:
            return None
        return d.CategoricalDistribution([_scalar(p, where) for p in parts])
    name, body = call
    pos, kw = _args(body, where)
    if name == "tag":
        sweep = kw.pop("sweep", None) or (pos.pop() if pos else None)
        if sweep is None:
            raise ConfigError(f"optuna sweeper: {where}: tag(...) needs a sweep: '{text}'")
        return distribution(key, sweep, [*tags, *pos])
    if name == "choice":
        return d.CategoricalDistribution([_scalar(p, where) for p in pos])
    if name not in ("interval", "range"):
        raise ConfigError(
            f"optuna sweeper: {where}: '{name}(...)' is not supported "
            "(use interval(), range(), choice(), tag(log, ...) or a,b,c)"
        )
    vals = dict(zip(("start", "end" if name == "interval" else "stop", "step"), pos, strict=False))
    vals.update(kw)
    vals = {k: _scalar(v, where) for k, v in vals.items()}
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in vals.values()):
        raise ConfigError(f"optuna sweeper: {where}: '{text}' needs numbers")
    if name == "interval":
        if set(vals) != {"start", "end"}:
            raise ConfigError(f"optuna sweeper: {where}: interval(start, end) needs two bounds")
        return d.FloatDistribution(float(vals["start"]), float(vals["end"]), log="log" in tags)
    if "stop" not in vals:  # range(n): 0..n, as Hydra reads it
        vals["start"], vals["stop"] = 0, vals.get("start", 0)
    start, stop, step = vals["start"], vals["stop"], vals.get("step", 1)
    if "log" in tags:
        raise ConfigError(f"optuna sweeper: {where}: range() cannot be tagged log")
    if any(isinstance(v, float) for v in (start, stop, step)):
        return d.FloatDistribution(float(start), float(stop), step=float(step))
    return d.IntDistribution(int(start), int(stop), step=int(step))


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def search_space(
    params: Mapping[str, Any] | None, overrides: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """``(distributions, fixed overrides)`` from ``hydra.sweeper.params`` and the command line."""
    from glmx import _config

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for key, value in (params or {}).items():
        dist = distribution(str(key), str(value)) if isinstance(value, str) else None
        if dist is None:
            fixed[str(key)] = f"{key}={_format(value)}"
        else:
            space[str(key)] = dist
    order: list[str] = []
    for text in overrides:
        prefix, key, pkg, _value, is_sweep = _config.parse_override(text)
        name = prefix + key + (f"@{pkg}" if pkg else "")
        if is_sweep and "=" in text:
            space.pop(name, None)
            fixed.pop(name, None)
            space[name] = distribution(name, text.split("=", 1)[1].strip())
        else:  # a fixed value on the command line takes the key out of the search space
            space.pop(name, None)
            fixed.pop(name, None)
            order.append(text)
    return space, [*fixed.values(), *order]


def _objective(value: Any, directions: Sequence[str]) -> list[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        out = []
    if len(out) != len(directions):
        raise ConfigError(
            f"optuna sweeper: the task returned {value!r}; it must return "
            f"{len(directions)} float(s) (set optimized_metric to a metric the run logs)"
        )
    return out


def sweep(
    cfg: Mapping[str, Any],
    overrides: Sequence[str],
    run_job: Callable[[list[str], int], Any],
    sweep_dir: Path,
) -> list[Any]:
    """Runs the study: ``run_job(overrides, job_num)`` per trial; returns the task results."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("hydra/sweeper=optuna needs optuna: pip install 'glmx[sweep]'") from None
    from glmx.hydra.instantiate import instantiate

    space, fixed = search_space(cfg.get("params"), overrides)
    if not space:
        raise ConfigError(
            "optuna sweeper: no search space: set hydra.sweeper.params "
            "(e.g. model.lr: interval(0.001, 0.1)) or pass a sweep such as model.lr=0.01,0.1"
        )
    direction = cfg.get("direction") or "minimize"
    directions = [str(d) for d in direction] if isinstance(direction, list) else [str(direction)]
    sampler_cfg = cfg.get("sampler")
    sampler = instantiate(dict(sampler_cfg)) if isinstance(sampler_cfg, Mapping) else None
    study = optuna.create_study(
        study_name=cfg.get("study_name"),
        storage=cfg.get("storage"),
        sampler=sampler,
        directions=directions,
        load_if_exists=True,
    )
    log.info("Study name: %s", study.study_name)
    log.info("Storage: %s", cfg.get("storage"))
    log.info("Sampler: %s", type(study.sampler).__name__)
    log.info("Directions: %s", directions)
    n_trials = int(cfg.get("n_trials") or 20)
    batch = max(1, int(cfg.get("n_jobs") or 1))
    results: list[Any] = []
    num = 0
    while num < n_trials:
        trials = [study.ask(space) for _ in range(min(batch, n_trials - num))]
        for trial in trials:
            job = [*fixed, *(f"{k}={_format(v)}" for k, v in trial.params.items())]
            log.info("Launching job #%d: %s", num, " ".join(job))
            try:
                value = run_job(job, num)
                values = _objective(value, directions)
            except BaseException:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            study.tell(trial, values if len(values) > 1 else values[0])
            results.append(value)
            num += 1
    _report(study, directions, sweep_dir)
    return results


def _report(study: Any, directions: Sequence[str], sweep_dir: Path) -> None:
    import yaml

    if len(directions) == 1:
        best = study.best_trial
        out: dict[str, Any] = {
            "name": "optuna",
            "best_params": dict(best.params),
            "best_value": best.value,
        }
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", best.value)
    else:
        solutions = [
            {"params": dict(t.params), "values": list(t.values)} for t in study.best_trials
        ]
        out = {"name": "optuna", "solutions": solutions}
        log.info("Number of Pareto solutions: %d", len(solutions))
        for s in solutions:
            log.info("    Values: %s, Params: %s", s["values"], s["params"])
    path = sweep_dir / "optimization_results.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False))
