"""Forwarding of Rust ``tracing`` events to Python :mod:`logging` under ``glmx.*``.

Rust threads push formatted records into a bounded queue without touching the GIL. One daemon
thread drains it every ``interval`` seconds with a non-blocking call (it never waits inside Rust,
so interpreter shutdown cannot catch it in native code); :func:`flush` drains synchronously,
and runs once more at interpreter exit so a script that composes and exits at once still shows
the warnings its last call queued.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading

from glmx import _config

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


def _native_modules() -> list:
    # Each extension has its own queue; `glmx._glmx` is drained only once something loaded it
    # (loading it here would pull in libtorch).
    mods = [_config]
    native = sys.modules.get("glmx._glmx")
    if native is not None:
        mods.append(native)
    return mods


def _sync_level() -> None:
    # Forward only what the "glmx" logger would emit, so disabled levels cost nothing in Rust.
    level = max(1, logging.getLogger("glmx").getEffectiveLevel())
    for mod in _native_modules():
        mod.set_log_level(level)


def flush() -> int:
    """Deliver every queued Rust log record now; returns how many were delivered."""
    with _lock:
        _sync_level()
        records = [r for mod in _native_modules() for r in mod.drain_logs()]
        for level, name, message in records:
            logging.getLogger(name).log(level, message)
        return len(records)


def _flush_at_exit() -> None:
    # Registered after `logging` registered its own shutdown, so this runs first (atexit is
    # last-in, first-out) and the records still reach open handlers.
    _stop.set()
    try:
        flush()
    except Exception:  # noqa: BLE001 - exit must not fail over a log record
        pass


def _forward_forever(interval: float) -> None:
    while not _stop.wait(interval):
        flush()


def start_log_forwarding(interval: float = 0.2) -> None:
    """Start the background forwarder (idempotent; called on ``import glmx``)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _sync_level()
    _stop.clear()
    if _thread is None:
        atexit.register(_flush_at_exit)
    _thread = threading.Thread(
        target=_forward_forever, args=(interval,), name="glmx-log-forwarder", daemon=True
    )
    _thread.start()
