"""Lines for the terminal while a progress bar may be drawn there.

The bar registers itself here while it is shown; summaries (model summary, end-of-run lines)
print through :func:`write_line`, so they land above the bar instead of being glued to it.
This module imports neither the bar nor the summaries, which import it.
"""

from __future__ import annotations

import sys
from typing import Protocol


class _Bar(Protocol):
    def _print_above(self, text: str) -> None: ...


ACTIVE: list[_Bar] = []  # the bar now drawn in the terminal, if any (last shown wins)


def write_line(text: str) -> None:
    """Print ``text`` on stderr above the active bar (or plainly when there is none). In
    Jupyter it goes to stdout: notebooks colour stderr output as if it were an error."""
    from glmx.trainer.callbacks import _in_notebook

    bar = ACTIVE[-1] if ACTIVE else None
    if bar is not None:
        bar._print_above(text)
    else:
        print(text, file=sys.stdout if _in_notebook() else sys.stderr, flush=True)
