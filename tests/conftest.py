"""Shared pytest setup: every test runs in its own temporary working directory, so runs that
write outputs, checkpoints or logs next to the current directory never touch the checkout."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
