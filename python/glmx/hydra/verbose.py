"""``hydra.verbose``: Hydra's switch for DEBUG logging, applied after ``job_logging``."""

from __future__ import annotations

import logging
from typing import Any


def apply_verbose(verbose: Any) -> list[str]:
    """``true``: the root and ``glmx`` loggers at DEBUG; a name or a list of names (``glmx.trainer``,
    ``__main__``): those loggers at DEBUG; ``false``/``null``: nothing. Returns the names set."""
    if verbose in (None, False, "", [], "false", "False"):
        return []
    if verbose is True or verbose in ("true", "True"):
        names = ["", "glmx"]
    elif isinstance(verbose, str):
        names = [n.strip() for n in verbose.split(",") if n.strip()]
    else:
        names = [str(n) for n in verbose]
    for name in names:
        logging.getLogger(name or None).setLevel(logging.DEBUG)
    return names
