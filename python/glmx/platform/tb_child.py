"""``python -m glmx.platform.tb_child ARGS``: TensorBoard for ``glmx server``, ended with it.

The server stops its TensorBoards when it shuts down, but a server killed outright (SIGKILL,
OOM killer) runs no clean-up, and its TensorBoards would live on. So each one runs here, with a
pipe from the server as stdin: when the server is gone the pipe reads end-of-file, and this
process exits. (``PR_SET_PDEATHSIG`` is no substitute: it fires when the forking *thread*
exits, and the server forks from short-lived worker threads.)
"""

from __future__ import annotations

import os
import sys
import threading


def _exit_when_parent_is_gone() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass  # the server never writes: any data is ignored
    finally:
        os._exit(0)


def main() -> None:
    threading.Thread(target=_exit_when_parent_is_gone, name="parent-watch", daemon=True).start()
    from tensorboard.main import run_main

    sys.argv = ["tensorboard", *sys.argv[1:]]
    run_main()


if __name__ == "__main__":
    main()
