"""Descriptor-relative file access for the control directory.

The control directory is opened once per operation with ``O_NOFOLLOW | O_DIRECTORY``; its owner
and mode are checked on the open descriptor (``fstat``), and every later step works relative to
that descriptor (``openat``/``mkdirat``/``renameat`` through ``dir_fd``). A symlink swapped in
after the check therefore cannot redirect anything: the descriptor keeps naming the directory
that passed the check. Files are read only when they are regular, at most
:data:`MAX_FILE_BYTES` long, and opened ``O_NONBLOCK | O_NOFOLLOW`` (a FIFO or a symlink to
``/dev/zero`` can neither block nor flood the reader).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any

from glmx.errors import GlmxError

#: Largest control file (command, status, job or result JSON) that is read, in bytes.
MAX_FILE_BYTES = 64 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ControlError(GlmxError):
    """A job control request could not be delivered or answered."""


class UnsafeFile(Exception):
    """A control file that is not a small regular file (internal; callers skip it)."""


def open_dir(name: str | os.PathLike[str], dir_fd: int | None = None) -> int:
    """Descriptor of directory ``name`` (relative to ``dir_fd``); a symlink is refused (OSError)."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def check_private(fd: int, where: str) -> None:
    """Raises :class:`ControlError` unless ``fd`` is a directory of this user, mode ``0700``."""
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"control directory {where} is not a directory")
    if st.st_uid != os.getuid():
        raise ControlError(
            f"control directory {where} belongs to uid {st.st_uid}, not you; "
            "set GLMX_CONTROL_DIR to a directory of your own"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ControlError(
            f"control directory {where} is accessible to other users (mode "
            f"{oct(stat.S_IMODE(st.st_mode))}); run `chmod 700 {where}`"
        )


def ensure_dir(name: str, dir_fd: int, where: str) -> int:
    """Opens (creating ``0700`` if missing) sub-directory ``name`` of ``dir_fd``."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    try:
        return open_dir(name, dir_fd)
    except (NotADirectoryError, OSError) as err:
        raise ControlError(
            f"{where}/{name} is not a directory ({err.strerror}); remove it and retry"
        ) from None


def read_bytes(name: str, dir_fd: int) -> bytes:
    """Contents of regular file ``name``; raises :class:`UnsafeFile` for anything else
    (directory, FIFO, device, symlink, larger than :data:`MAX_FILE_BYTES`) and OSError when
    it cannot be opened."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
            raise UnsafeFile(f"{name}: {err.strerror}") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{name}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise UnsafeFile(f"{name}: {st.st_size} bytes (limit {MAX_FILE_BYTES})")
        data = os.read(fd, MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise UnsafeFile(f"{name}: grew past {MAX_FILE_BYTES} bytes")
        return data
    finally:
        os.close(fd)


def read_json_at(name: str, dir_fd: int) -> dict[str, Any] | None:
    """``name`` parsed as a JSON object, or None when missing, unsafe or not an object."""
    try:
        value = json.loads(read_bytes(name, dir_fd))
    except (OSError, UnsafeFile, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json_at(name: str, dir_fd: int, data: dict[str, Any]) -> None:
    """Writes ``data`` to ``name`` atomically (temp file + rename, both relative to ``dir_fd``);
    readers never see half a file, and an existing symlink is replaced, never followed."""
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, json.dumps(data, indent=1).encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def remove_entry(name: str, dir_fd: int) -> None:
    """Removes file (or empty directory) ``name``; never follows a symlink; ignores errors."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except IsADirectoryError:
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError:
            pass
    except OSError:
        pass


def remove_tree(name: str, dir_fd: int) -> None:
    """Removes directory ``name`` under ``dir_fd`` and everything in it, without following
    symlinks (a symlink inside is unlinked, never descended into); ignores errors."""
    try:
        fd = open_dir(name, dir_fd)
    except OSError:
        remove_entry(name, dir_fd)
        return
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.name, fd)
            else:
                remove_entry(entry.name, fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        pass
