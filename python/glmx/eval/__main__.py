"""``python -m glmx.eval ckpt_path=...``: compose ``configs/eval.yaml`` and test a checkpoint.

A glmx error (a config mistake, a missing checkpoint) is one line on stderr and exit code 2, as
for ``python -m glmx.train``; ``HYDRA_FULL_ERROR=1`` or ``GLMX_FULL_ERROR=1`` shows the full
traceback instead.
"""

import os
import sys

from glmx.errors import GlmxError
from glmx.train import evaluate, main

FULL_ERROR_ENV = ("HYDRA_FULL_ERROR", "GLMX_FULL_ERROR")


def _console_main() -> None:
    """Runs the eval task; user errors are one line unless a full-error variable is set."""
    try:
        main(task=evaluate, config_name="eval")
    except GlmxError as err:
        if any(os.environ.get(v, "") not in ("", "0") for v in FULL_ERROR_ENV):
            raise
        print(f"glmx.eval: error: {type(err).__name__}: {err}", file=sys.stderr)
        print(
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
            file=sys.stderr,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        print("glmx.eval: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    _console_main()
