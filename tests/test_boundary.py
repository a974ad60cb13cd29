"""The Rust/Python boundary: versions, tensor hand-over, error mapping, logging, GIL, Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

import glmx
from glmx import _config, _glmx, _logging

testing = _glmx._testing


def test_version_is_exposed_in_a_fresh_interpreter():
    out = subprocess.run(
        [sys.executable, "-c", "import glmx; print(glmx.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == glmx.__version__
    assert glmx.__version__.count(".") == 2


def test_import_glmx_does_not_import_torch():
    code = "import sys, glmx; glmx.config; glmx.Project; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = "import sys, glmx; glmx.Trainer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_tensor_roundtrip_shares_storage():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    back = testing.tensor_roundtrip(t)
    assert back.data_ptr() == t.data_ptr()
    assert back.shape == t.shape and back.dtype == t.dtype
    back[0, 0] = 100.0
    assert t[0, 0].item() == 100.0


def test_rust_writes_are_visible_without_copy():
    t = torch.zeros(1000, dtype=torch.float64)
    testing.add_in_place(t, 2.5)
    assert torch.all(t == 2.5)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="expected a torch.Tensor, got list"):
        testing.tensor_roundtrip([1, 2, 3])


@pytest.mark.parametrize(
    ("kind", "exc", "parent"),
    [
        ("config", glmx.ConfigError, glmx.GlmxError),
        ("composition", glmx.ConfigCompositionError, glmx.ConfigError),
        ("override", glmx.OverrideError, glmx.ConfigError),
        ("data", glmx.DataError, glmx.GlmxError),
        ("checkpoint", glmx.CheckpointError, glmx.GlmxError),
        ("train", glmx.TrainError, glmx.GlmxError),
    ],
)
def test_rust_errors_map_to_the_hierarchy(kind, exc, parent):
    raise_error = (
        _config._raise_config_error
        if kind in ("config", "composition", "override")
        else testing.raise_error
    )
    with pytest.raises(exc) as info:
        raise_error(kind, f"something about {kind}")
    assert isinstance(info.value, parent)
    assert isinstance(info.value, glmx.GlmxError)
    assert f"something about {kind}" in str(info.value)


def test_config_error_carries_file_and_line():
    with pytest.raises(glmx.ConfigError, match=r"test\.yaml:7: template error: undefined x"):
        _config._raise_config_error("config", "undefined x")


def test_exceptions_are_importable_from_glmx_errors():
    from glmx import errors

    assert errors.GlmxError is glmx.GlmxError
    assert issubclass(errors.OverrideError, Exception)
    assert glmx.GlmxError.__module__ == "glmx"


def test_rust_tracing_reaches_python_logging(caplog):
    caplog.set_level(logging.INFO, logger="glmx")
    _logging.flush()  # syncs the forwarded level with the logger's
    testing.emit_log("info", "hello from rust")
    _logging.flush()
    records = [r for r in caplog.records if r.name == "glmx.testing"]
    assert [r.getMessage() for r in records] == ["hello from rust answer=42"]
    assert records[0].levelno == logging.INFO


def test_disabled_levels_are_not_forwarded(caplog):
    caplog.set_level(logging.WARNING, logger="glmx")
    _logging.flush()
    testing.emit_log("info", "quiet")
    testing.emit_log("error", "loud")
    _logging.flush()
    messages = [r.getMessage() for r in caplog.records if r.name == "glmx.testing"]
    assert messages == ["loud"]


def test_long_rust_call_releases_the_gil():
    ticks = []

    def count():
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ticks.append(1)
            time.sleep(0.005)

    worker = threading.Thread(target=count)
    worker.start()
    testing.spin(1.0)
    worker.join()
    # ~180 turns when the GIL is free (fewer on a loaded machine); with the GIL held for the
    # whole second the other thread would get at most a couple.
    assert len(ticks) > 40


def test_ctrl_c_interrupts_a_rust_loop():
    script = textwrap.dedent(
        """
        import sys
        from glmx import _glmx
        print("ready", flush=True)
        try:
            _glmx._testing.spin(30.0)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        sys.exit(3)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "interrupted" in out
    assert time.monotonic() - started < 5
