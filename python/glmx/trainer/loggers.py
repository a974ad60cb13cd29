"""Metric loggers: JSON lines (``trainer_logs.json``), CSV and TensorBoard event files.

Each writes only on global rank 0 and flushes every record, so a live run can be read.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any


class Logger:
    """Base class: receives metric records ``{name: float}`` at a step."""

    def __init__(self, save_dir: str | os.PathLike[str] | None = None) -> None:
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.rank = 0

    @property
    def log_dir(self) -> Path:
        """Directory the logger writes to (resolved when the trainer attaches it)."""
        if self.save_dir is None:
            raise RuntimeError(f"{type(self).__name__} has no save_dir yet")
        return self.save_dir

    def attach(self, default_dir: Path, rank: int) -> None:
        """Called by the trainer: fill in the directory and this process' rank."""
        if self.save_dir is None:
            self.save_dir = default_dir
        self.rank = rank

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        """Record one set of metrics."""

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        """Record the run's hyperparameters."""

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (on resume from a checkpoint at ``step``)."""

    def finalize(self) -> None:
        """Flush and close."""


class JsonLogger(Logger):
    """``trainer_logs.json``: one JSON object per line, ``{timestamp, global_step, epoch, ...}``."""

    filename = "trainer_logs.json"

    def _path(self) -> Path:
        return self.log_dir / self.filename

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        record = {"timestamp": time.time(), "global_step": step, "epoch": epoch, **metrics}
        with open(self._path(), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        path = self._path()
        if self.rank != 0 or not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a record cut by a crash
            if int(record.get("global_step", 0)) <= step:
                kept.append(line)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)


class CSVLogger(Logger):
    """``metrics.csv`` with a column per metric name (the header grows as names appear)."""

    filename = "metrics.csv"

    def __init__(self, save_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(save_dir)
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = ["global_step", "epoch"]

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        self._rows.append({"global_step": step, "epoch": epoch, **metrics})
        new = [k for k in metrics if k not in self._columns]
        self._columns += new
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / self.filename
        if new or not path.exists():
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns)
                writer.writeheader()
                writer.writerows(self._rows)
        else:
            with open(path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerow(self._rows[-1])

    def truncate_after(self, step: int) -> None:
        path = self.log_dir / self.filename if self.save_dir is not None else None
        if self.rank != 0 or path is None or not path.exists():
            return
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            self._columns = list(reader.fieldnames or self._columns)
            self._rows = [r for r in reader if int(r.get("global_step") or 0) <= step]
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(self._rows)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _event(
    wall_time: float, step: int, *, file_version: str | None = None, summary: bytes | None = None
) -> bytes:
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if summary is not None:
        out += _bytes_field(5, summary)
    return out


class TensorBoardLogger(Logger):
    """TensorBoard scalars in an ``events.out.tfevents.*`` file (no TensorFlow needed)."""

    def __init__(
        self, save_dir: str | os.PathLike[str] | None = None, name: str = "tensorboard"
    ) -> None:
        super().__init__(save_dir)
        self.name = name
        self._file: Any = None

    @property
    def log_dir(self) -> Path:
        return super().log_dir / self.name

    def _write(self, event: bytes) -> None:
        header = struct.pack("<Q", len(event))
        self._file.write(header + struct.pack("<I", _masked_crc32c(header)))
        self._file.write(event + struct.pack("<I", _masked_crc32c(event)))
        self._file.flush()

    def _open(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.0"
        self._file = open(self.log_dir / name, "ab")
        self._write(_event(time.time(), 0, file_version="brain.Event:2"))

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        if self._file is None:
            self._open()
        values = b"".join(
            _bytes_field(
                1, _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", float(v)))
            )
            for tag, v in metrics.items()
        )
        self._write(_event(time.time(), step, summary=values))

    def finalize(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
