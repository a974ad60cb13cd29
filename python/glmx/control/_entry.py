"""The running side of a registry entry: what :class:`glmx.trainer.control.JobControl` uses.

A :class:`JobEntry` opens the control directory and its own entry once, at registration, and
keeps the descriptors for the whole fit: every status write, command read and result write is
relative to them, so nothing done to paths later (a symlink swap, a rename) redirects it.
Nothing a user (or a mistake) puts into ``commands/`` or does to ``results/`` can stop or hang
the training: bad files are skipped with one warning each, I/O failures are logged.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from glmx.control import _root_path, open_root
from glmx.control._fs import (
    ControlError,
    UnsafeFile,
    ensure_dir,
    read_bytes,
    remove_entry,
    remove_tree,
    write_json_at,
)

__all__ = ["JobEntry"]

log = logging.getLogger("glmx.control")

#: Command files looked at per poll (the rest wait for the next poll).
MAX_COMMANDS_PER_POLL = 64


class JobEntry:
    """The registry entry ``<control_dir>/<job_id>/`` of this process (rank 0)."""

    def __init__(self, job_id: str, info: dict[str, Any]) -> None:
        root = open_root(create=True)
        if root is None:  # pragma: no cover - open_root(create=True) raises instead
            raise ControlError(f"cannot open control directory {_root_path()}")
        self.job_id = job_id
        self.path = _root_path() / job_id
        self._root = root
        try:
            self._fd = ensure_dir(job_id, root, str(_root_path()))
            for sub in ("commands", "results"):
                os.close(ensure_dir(sub, self._fd, str(self.path)))
            write_json_at("job.json", self._fd, info)
        except BaseException:
            os.close(root)
            raise
        self._skipped: set[str] = set()

    def _sub(self, name: str) -> int:
        return ensure_dir(name, self._fd, str(self.path))

    def write_status(self, status: dict[str, Any]) -> None:
        """Replaces ``status.json`` atomically; a failure is logged, never raised."""
        try:
            write_json_at("status.json", self._fd, status)
        except OSError as err:
            log.warning("job control: cannot write %s/status.json: %s", self.path, err)

    def next_command(self) -> tuple[str, str] | None:
        """The oldest valid queued request as ``(command, request id)``; its file is consumed.
        Files that are not small regular JSON objects are removed (or, when that fails, skipped
        from now on) with one warning each."""
        try:
            fd = self._sub("commands")
        except (ControlError, OSError) as err:
            if "commands" not in self._skipped:
                self._skipped.add("commands")
                log.warning("job control: %s; commands are ignored until it is fixed", err)
            return None
        self._skipped.discard("commands")
        try:
            names = sorted(n for n in os.listdir(fd) if n.endswith(".json"))
            for name in names[:MAX_COMMANDS_PER_POLL]:
                if name in self._skipped:
                    continue
                try:
                    request = _parse(read_bytes(name, fd))
                except FileNotFoundError:
                    continue
                except (OSError, UnsafeFile, ValueError) as err:
                    self._reject(fd, name, str(err))
                    continue
                remove_entry(name, fd)
                if request is None:
                    self._reject(fd, name, "not a JSON object with a 'command'")
                    continue
                return request, name[: -len(".json")]
            return None
        except OSError as err:
            log.warning("job control: cannot read %s/commands: %s", self.path, err)
            return None
        finally:
            os.close(fd)

    def _reject(self, fd: int, name: str, why: str) -> None:
        log.warning("job control: ignoring %s/commands/%s (%s)", self.path, name, why)
        remove_entry(name, fd)
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            self._skipped.add(name)  # could not be removed (e.g. a non-empty directory)
        except OSError:
            pass

    def write_result(self, request: str, result: dict[str, Any]) -> None:
        """Writes ``results/<request>.json`` (re-creating ``results/`` if it was removed); a
        failure is logged, never raised."""
        try:
            fd = self._sub("results")
        except (ControlError, OSError) as err:
            log.warning("job control: cannot answer request %s: %s", request, err)
            return
        try:
            write_json_at(f"{request}.json", fd, result)
        except OSError as err:
            log.warning("job control: cannot write %s/results/%s.json: %s", self.path, request, err)
        finally:
            os.close(fd)

    def close(self, remove: bool = False) -> None:
        """Releases the descriptors; ``remove`` deletes the entry."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if remove:
            remove_tree(self.job_id, self._root)
        os.close(self._root)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


def _parse(data: bytes) -> str | None:
    import json

    value = json.loads(data)
    if not isinstance(value, dict) or not isinstance(value.get("command"), str):
        return None
    return value["command"]
