"""`help(glmx.Trainer)` documents every argument; the precision error; `glmx logs plot` defaults."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

import glmx
from glmx.errors import TrainError


def test_trainer_init_documents_every_argument():
    doc = glmx.Trainer.__init__.__doc__
    assert doc
    params = [p for p in inspect.signature(glmx.Trainer.__init__).parameters if p != "self"]
    missing = [p for p in params if f"    {p}: " not in doc]
    assert not missing, missing
    import pydoc

    assert "enable_model_summary: Print Lightning's model table" in pydoc.render_doc(glmx.Trainer)


def test_precision_error_lists_each_option_once():
    with pytest.raises(TrainError) as err:
        glmx.Trainer(precision="bf16", logger=False, enable_job_control=False)
    msg = str(err.value)
    assert msg.count("'32'") == 1 and "'bf16-mixed'" in msg and "got 'bf16'" in msg


def _write_log(run: Path) -> Path:
    run.mkdir(parents=True)
    recs = []
    for step in range(1, 41):
        rec = {"global_step": step, "epoch": 0, "train/loss": 3.0 / step}
        rec.update({"lr-AdamW/pg1": 1e-3, "lr-AdamW/pg2": 2e-3})
        if step % 10 == 0:
            rec["val/loss"] = 3.2 / step
        recs.append(rec)
    recs.append({"global_step": 40, "epoch": 0, "test/loss": 0.1})
    (run / "trainer_logs.json").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def test_logs_plot_defaults_train_val_test_distinct_styles_markers(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the 'plot' extra")
    from glmx.logs.plotting import plot_logs

    fig = plot_logs(_write_log(tmp_path / "run"), output=tmp_path / "loss.png")
    assert fig.glmx_series[:3] == ["train/loss", "val/loss", "test/loss"]
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}
    styles = {name: (ln.get_linestyle(), ln.get_marker()) for name, ln in lines.items()}
    assert len(set(styles.values())) == len(styles), styles  # every series looks different
    assert lines["train/loss"].get_marker() in ("None", None, "")  # dense: a plain line
    assert lines["val/loss"].get_marker() not in ("None", None, "")  # sparse: markers
    assert lines["test/loss"].get_marker() not in ("None", None, "")  # one visible point
    assert len(lines["test/loss"].get_xdata()) == 1
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_hydra_verbose_sets_debug():
    import logging

    from glmx.hydra.verbose import apply_verbose

    cfg = glmx.compose(
        "train",
        ["hydra.verbose=true"],
        config_dir=Path(__file__).resolve().parents[1] / "configs",
        return_hydra_config=True,
    )
    before = {n: logging.getLogger(n).level for n in (None, "glmx", "glmx.user")}
    try:
        assert apply_verbose(cfg["hydra"]["verbose"]) == ["", "glmx"]
        assert logging.getLogger("glmx.trainer").isEnabledFor(logging.DEBUG)
        assert apply_verbose("glmx.user") == ["glmx.user"]
        assert apply_verbose(False) == []
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
