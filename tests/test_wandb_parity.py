"""glmx's WandbLogger selects and configures a W&B run as Lightning's WandbLogger does.

Online runs need wandb.ai and a real key, which tests do not have. So every run here is a real
local wandb run: ``wandb.init`` is wrapped to record the arguments each logger passes and the
``WANDB_MODE`` it leaves in the environment, then called with ``mode="offline"`` added. The
recorded arguments with a key set and ``offline=False`` are what an online run would get.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb", reason="WandbLogger needs the 'wandb' extra")
lightning_loggers = pytest.importorskip(
    "lightning.pytorch.loggers", reason="the comparison needs lightning (test extra)"
)

from glmx.trainer import WandbLogger  # noqa: E402

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 hex digits, never sent anywhere


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Calls of wandb.init: ``(kwargs, WANDB_MODE at the call)``; each run is made offline."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    calls: list[tuple[dict, str | None]] = []
    real_init = wandb.init

    def init(**kwargs):
        calls.append((dict(kwargs), os.environ.get("WANDB_MODE")))
        kwargs["mode"] = "offline"  # no network here: the run is real, on disk
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    yield calls
    if wandb.run is not None:
        wandb.finish()


def _start(logger) -> None:
    """What a trainer sends: the hparams, then one record at step 3 of epoch 0."""
    logger.log_hyperparams({"lr": 0.05, "model": {"width": 4}})
    if isinstance(logger, WandbLogger):
        logger.log_metrics({"loss": 1.5}, step=3, epoch=0)
    else:  # Lightning's trainer puts the epoch into the metrics itself
        logger.log_metrics({"loss": 1.5, "epoch": 0}, step=3)


def _both(tmp_path, recorded, **kwargs):
    """Start and finish a glmx run and a Lightning run with the same arguments; returns
    both recorded ``wandb.init`` calls and the glmx logger."""
    ours = WandbLogger(save_dir=tmp_path / "glmx", **kwargs)
    _start(ours)
    ours.finish()
    theirs = lightning_loggers.WandbLogger(save_dir=str(tmp_path / "lightning"), **kwargs)
    _start(theirs)
    wandb.finish()
    os.environ.pop("WANDB_MODE", None)  # Lightning's offline mode writes it to os.environ
    assert len(recorded) == 2
    (ours_kw, ours_mode), (theirs_kw, theirs_mode) = recorded
    for kw in (ours_kw, theirs_kw):
        kw["dir"] = Path(kw["dir"]).name  # the only intended difference: the directory
    return ours, ours_kw, ours_mode, theirs_kw, theirs_mode


def test_with_a_key_online_is_selected_and_configured_as_lightning(tmp_path, recorded, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    ours, ours_kw, ours_mode, theirs_kw, theirs_mode = _both(
        tmp_path,
        recorded,
        name="tiny",
        project="glmx-parity",
        version="run-1",
        group="g",
        tags=["a", "b"],
        job_type="train",
    )
    assert not ours.offline
    assert "mode" not in ours_kw and ours_mode is None  # online: wandb's own settings decide
    ours_kw["dir"] = theirs_kw["dir"] = "<dir>"
    assert ours_kw == theirs_kw
    assert theirs_kw["resume"] == "allow" and theirs_kw["id"] == "run-1"
    assert theirs_kw["group"] == "g" and theirs_kw["tags"] == ["a", "b"]


def test_defaults_project_from_environment_and_kwargs_win(tmp_path, recorded, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    _, ours_kw, _, theirs_kw, _ = _both(tmp_path, recorded, anonymous=True, resume="never")
    ours_kw["dir"] = theirs_kw["dir"] = "<dir>"
    assert ours_kw == theirs_kw
    assert ours_kw["project"] == "from-env" and ours_kw["anonymous"] == "allow"
    assert ours_kw["resume"] == "never"  # a wandb.init keyword overrides the logger's


def test_mode_selection(tmp_path, recorded, monkeypatch):
    # no key anywhere: offline (Lightning would ask wandb to log in); the files land on disk
    lg = WandbLogger(save_dir=tmp_path / "a")
    assert lg.offline and lg.init_kwargs()["mode"] == "offline"
    # a `wandb login` entry in the netrc file counts as a key, as for wandb itself
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert not WandbLogger(save_dir=tmp_path / "b").offline
    # explicit offline wins over a key; WANDB_MODE is left to wandb
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert WandbLogger(save_dir=tmp_path / "c", offline=True).init_kwargs()["mode"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "offline")
    lg = WandbLogger(save_dir=tmp_path / "d")
    assert not lg.offline and "mode" not in lg.init_kwargs()


def test_run_contents_match_lightning(tmp_path, recorded, monkeypatch):
    """Config (nested, as Lightning sends it), the prefixed metrics and the step axis, read
    back from each real run's own offline files."""
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    _both(tmp_path, recorded, name="tiny", prefix="fold0")
    seen = {}
    for side in ("glmx", "lightning"):
        files = list((tmp_path / side / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, side
        seen[side] = _read_run(files[0])
    assert seen["glmx"] == seen["lightning"]
    config, history, metrics = seen["glmx"]
    assert json.loads(config["lr"]) == 0.05 and json.loads(config["model"]) == {"width": 4}
    assert history == [{"fold0-loss": "1.5", "fold0-epoch": "0", "trainer/global_step": "3"}]
    assert ("trainer/global_step", "") in metrics and ("*", "trainer/global_step") in metrics


def _read_run(path: Path):
    """Config, user history rows and metric definitions from a ``.wandb`` file."""
    from test_ux_loggers import _wandb_records
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + 30  # wandb's service may still be writing the file
    while True:
        config, history, metrics, kinds = {}, [], set(), set()
        for data in _wandb_records(path.read_bytes()):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(data)
            kind = rec.WhichOneof("record_type")
            kinds.add(kind)
            if kind == "config":
                config.update(
                    {i.key: i.value_json for i in rec.config.update if not i.key.startswith("_")}
                )
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): i.value_json for i in rec.history.item}
                history.append({k: v for k, v in row.items() if not k.startswith("_")})
            elif kind == "metric":
                metrics.add((rec.metric.name or rec.metric.glob_name, rec.metric.step_metric))
        if "exit" in kinds or time.monotonic() > deadline:
            return config, history, metrics
        time.sleep(0.5)
