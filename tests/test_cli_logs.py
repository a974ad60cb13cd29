"""`glmx logs` and the glmx.logs API on synthetic logs, including a cut-off (live) log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import glmx, ok

from glmx import logs


def write_log(run: Path, n: int = 20, offset: float = 0.0, cut: bool = True) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(1, n + 1):
        rec = {
            "timestamp": 1000.0 + step,
            "global_step": step,
            "epoch": step // 10,
            "train/loss": 3.0 / step + offset,
            "lr-AdamW": 1e-3 * min(1.0, step / 5),
            "perf/tokens_per_sec": 1000.0 + step,
        }
        if step % 5 == 0:
            rec["val/loss"] = 3.5 / step + offset
        lines.append(json.dumps(rec))
    text = "\n".join(lines) + "\n"
    if cut:
        text += '{"timestamp": 2000.0, "global_step": 21, "train/lo'  # a writer mid-record
    (run / logs.LOG_NAME).write_text(text)
    return run / logs.LOG_NAME


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return write_log(tmp_path / "out" / "a"), write_log(
        tmp_path / "out" / "b", offset=0.5, cut=False
    )


def test_api_tolerates_cut_log_and_summarises(runs):
    log = logs.TrainingLog.from_file(runs[0].parent)
    assert len(log.records) == 20 and log.skipped == 1
    assert log.loss_metric() == "train/loss"
    s = logs.summary(log)
    assert s["best_loss"] == pytest.approx(3.0 / 20) and s["best_loss_step"] == 20
    assert s["best_val_loss_step"] == 20 and s["last_step"] == 20 and s["duration_s"] == 19.0
    assert s["tokens_per_sec"] == pytest.approx(1010.5)
    assert "best train/loss" in logs.format_summary(
        s
    ) and "| field | value |" in logs.format_summary(s, "md")


def test_logs_list_and_summary_formats(runs, tmp_path):
    out = ok("-p", str(tmp_path), "logs", "list")
    assert out.splitlines()[0].split()[:3] == ["LOG", "RECORDS", "LAST_STEP"]
    assert len(json.loads(ok("-p", str(tmp_path), "logs", "list", "--format", "json"))) == 2
    text = ok("logs", "summary", str(runs[0]))
    assert "1 unreadable lines skipped" in text and "at step 20" in text
    one = ok("logs", "summary", str(tmp_path / "out"), "--all", "--format", "one-line").splitlines()
    assert len(one) == 2 and all("best train/loss" in line for line in one)
    data = json.loads(ok("logs", "summary", str(tmp_path / "out"), "--all", "--format", "json"))
    assert sorted(d["best_loss"] for d in data) == pytest.approx([0.15, 0.65])
    assert ok("logs", "summary", str(runs[1]), "--format", "md").startswith("### ")
    r = glmx("-p", str(tmp_path / "nothing"), "logs", "summary")
    assert r.returncode == 2 and "no trainer_logs.json" in r.stderr


def test_plot_png_has_requested_series(runs, tmp_path):
    png = tmp_path / "loss.png"
    out = ok(
        "logs",
        "plot",
        str(runs[0]),
        "--metrics",
        "train/loss,val/loss",
        "--smooth",
        "3",
        "-o",
        str(png),
    )
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = [
        line.removeprefix("series: ") for line in out.splitlines() if line.startswith("series: ")
    ]
    assert series == ["train/loss", "val/loss", "lr-AdamW"]
    fig = logs.plot(runs[0], metrics=["val/loss"], lr=False)
    (line,) = fig.axes[0].get_lines()
    assert line.get_label() == "val/loss" and list(line.get_xdata()) == [5, 10, 15, 20]


def test_plot_compare_svg_labels_and_errors(runs, tmp_path):
    svg = tmp_path / "cmp.svg"
    ok(
        "logs",
        "plot",
        str(runs[0]),
        "--compare",
        str(runs[1]),
        "--labels",
        "base,tuned",
        "--loss-curves",
        "--log-scale",
        "--x-axis",
        "time",
        "-o",
        str(svg),
    )
    text = svg.read_text()
    for label in ("base: train/loss", "tuned: val/loss", "tuned: lr-AdamW"):
        assert label in text
    pdf = tmp_path / "e"
    ok("logs", "plot", str(runs[1]), "--x-axis", "epoch", "--format", "pdf", "-o", str(pdf))
    assert (tmp_path / "e.pdf").read_bytes()[:4] == b"%PDF"
    r = glmx("logs", "plot", str(runs[0]), "--metrics", "nope")
    assert r.returncode == 2 and "nope" in r.stderr and "train/loss" in r.stderr
