"""Hugging Face interop with the reference GPN (PyPI gpn 0.9): models built from their config (no
hub), saved with save_pretrained, loaded into glmx, exported back, logits compared both ways."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import glmx, ok

from glmx.cli import main
from glmx.errors import CheckpointError
from glmx.eval import load_model
from glmx.models import GPN, GPNConfig
from glmx.models.gpn_hf import save_hf_dir

gpn_model = pytest.importorskip("gpn.model", reason="the reference gpn package (test extra)")
transformers = pytest.importorskip("transformers", reason="transformers (hf extra)")


def _reference(**overrides):
    kw = dict(
        vocab_size=7,
        embedding="embedding",
        encoder="bytenet",
        num_hidden_layers=4,
        hidden_size=32,
        slim=True,
        bias=False,
        mlm_head_transform=False,
        first_kernel_size=9,
        rest_kernel_size=5,
        dilation_cycle=3,
    )
    kw.update(overrides)
    torch.manual_seed(0)
    model = gpn_model.GPNForMaskedLM(gpn_model.GPNConfig(**kw)).eval()
    # conv weights are left at torch's default init: perturb everything so no layer is trivial
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _ids(n=3, length=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 7, (n, length), generator=g)
    ids[0, 10] = 1  # [MASK]
    ids[1, 50:60] = 2  # [UNK] (N)
    return ids


@torch.no_grad()
def _max_diff(ref, net, ids):
    return (ref(input_ids=ids).logits - net(ids)).abs().max().item()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"bias": True}, {"embedding": "one_hot"}, {"slim": False, "dilation_cycle": 8}],
    ids=["released-layout", "bias", "one-hot", "wide"],
)
def test_reference_save_pretrained_loads_with_equal_logits(tmp_path, overrides):
    ref = _reference(**overrides)
    ref.save_pretrained(tmp_path / "ref")
    assert (tmp_path / "ref" / "model.safetensors").is_file()
    net = load_model(tmp_path / "ref")
    assert isinstance(net, GPN) and not net.training
    assert _max_diff(ref, net, _ids()) <= 1e-5


def test_pickle_weights_need_allow_pickle(tmp_path, capsys):
    ref = _reference()
    ref.save_pretrained(tmp_path / "ref")
    # the pickle layout of older transformers (v5 writes safetensors only)
    torch.save(ref.state_dict(), tmp_path / "ref" / "pytorch_model.bin")
    (tmp_path / "ref" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*pickle.*allow_pickle=True"):
        load_model(tmp_path / "ref")
    net = load_model(tmp_path / "ref", allow_pickle=True)
    assert _max_diff(ref, net, _ids()) <= 1e-5
    assert main(["export", "hf", str(tmp_path / "ref"), str(tmp_path / "out")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert (
        main(["export", "hf", str(tmp_path / "ref"), str(tmp_path / "o2"), "--allow-pickle"]) == 0
    )


def test_unsupported_reference_configs_are_named(tmp_path):
    _reference(mlm_head_transform=True).save_pretrained(tmp_path / "head")
    with pytest.raises(CheckpointError, match="mlm_head_transform"):
        load_model(tmp_path / "head")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="model_type='bert'"):
        load_model(tmp_path / "other")


def _register():
    import gpn

    gpn.register_auto_classes("gpn")


def test_export_loads_in_transformers_with_equal_logits_and_tokenizer(tmp_path):
    torch.manual_seed(3)
    net = GPN(GPNConfig(hidden_size=32, n_layers=5, dilation_cycle=4, bias=True)).eval()
    save_hf_dir(net, tmp_path / "hf")
    _register()
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == "GPNForMaskedLM"
    ids = _ids(seed=2)
    assert _max_diff(hf, net, ids) <= 1e-5
    # a class name transformers 4.x knows too (5.x writes its own "TokenizersBackend")
    tok_cfg = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok("ACGTNacgt", return_attention_mask=False)["input_ids"] == [3, 4, 5, 6, 2, 3, 4, 5, 6]
    assert tok.mask_token == "[MASK]" and tok.mask_token_id == 1 and tok.pad_token_id == 0
    # the reference's VEP recipe (gpn/ss/run_vep.py): mask the variant with the tokenizer's
    # mask token, LLR = logit[alt] - logit[ref] at that position
    seq = list("ACGTTGCA" * 8)
    seq[20] = tok.mask_token
    x = torch.tensor([tok("".join(seq), return_attention_mask=False)["input_ids"]])
    assert x.shape == (1, 64) and x[0, 20] == 1
    with torch.no_grad():
        a = hf(input_ids=x).logits[0, 20]
        b = net(x)[0, 20]
    assert torch.allclose(a, b, atol=1e-5)


def test_cli_round_trip_reference_to_glmx_to_reference(tmp_path):
    ref = _reference(bias=True, dilation_cycle=2)
    ref.save_pretrained(tmp_path / "ref")
    out = ok("export", "hf", str(tmp_path / "ref"), str(tmp_path / "out"))
    assert "GPNForMaskedLM" in out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }
    _register()
    back = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "out").eval()
    ids = _ids(seed=4)
    with torch.no_grad():
        diff = (ref(input_ids=ids).logits - back(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-5
    # exporting again into a non-empty directory needs --force
    r = glmx("export", "hf", str(tmp_path / "ref"), str(tmp_path / "out"))
    assert r.returncode == 2 and "--force" in r.stderr


def test_export_from_weights_file_with_dilation_cycle(tmp_path):
    # in-process: the same entry point as the `glmx` script
    from safetensors.torch import save_file

    torch.manual_seed(5)
    net = GPN(GPNConfig(hidden_size=32, n_layers=4, dilation_cycle=2)).eval()
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    args = ["export", "hf", str(tmp_path / "w.safetensors"), str(tmp_path / "hf")]
    assert main([*args, "--dilation-cycle", "2"]) == 0
    again = load_model(tmp_path / "hf")
    assert again.cfg.dilation_cycle == 2
    assert torch.allclose(again(_ids()), net(_ids()), atol=1e-6)


def test_released_size_matches_the_reference_parameter_count():
    cfg = gpn_model.GPNConfig(
        embedding="embedding",
        encoder="bytenet",
        num_hidden_layers=64,
        hidden_size=1024,
        slim=True,
        bias=False,
        mlm_head_transform=False,
    )
    with torch.device("meta"):
        ref = gpn_model.GPNForMaskedLM(cfg)
        net = GPN(GPNConfig())
    n = sum(p.numel() for p in ref.parameters())
    assert n == sum(p.numel() for p in net.parameters()) == 152_189_952


def test_export_a_glmx_run_directory(tmp_path):
    from glmx.ckpt import CheckpointManager
    from glmx.models import GPNModule

    torch.manual_seed(6)
    module = GPNModule({"hidden_size": 32, "n_layers": 6, "dilation_cycle": 4})
    run = tmp_path / "run"
    CheckpointManager(run, async_save=False).save(7, module)
    # the dilation cycle is not in the weights: a Hydra run records it in .hydra/config.yaml
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("model:\n  config:\n    dilation_cycle: 4\n")
    assert main(["export", "hf", str(run), str(tmp_path / "hf")]) == 0
    _register()
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.dilation_cycle == 4
    assert _max_diff(hf, module.model.eval(), _ids(seed=7)) <= 1e-5
    # one checkpoint directory copied out of its run loads on its own
    import shutil

    shutil.copytree(run / "checkpoints" / "checkpoint-7", tmp_path / "shared" / "checkpoint-7")
    alone = load_model(tmp_path / "shared" / "checkpoint-7", dilation_cycle=4)
    with torch.no_grad():
        ids = _ids(seed=7)
        assert torch.equal(alone(ids), module.model.eval()(ids))


def _broken(tmp_path, how):
    """A Hugging Face GPN directory (or file) broken in one way; (path to load, file to name)."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    d = save_hf_dir(GPN(GPNConfig(hidden_size=16, n_layers=2)), tmp_path / how, tokenizer=False)
    weights = d / "model.safetensors"
    if how == "missing-shard":
        state = load_file(str(weights))
        keys = sorted(state)
        half = len(keys) // 2
        save_file({k: state[k] for k in keys[:half]}, str(d / "model-00001-of-00002.safetensors"))
        save_file({k: state[k] for k in keys[half:]}, str(d / "model-00002-of-00002.safetensors"))
        wmap = {k: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, k in enumerate(keys)}
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
        weights.unlink()
        (d / "model-00002-of-00002.safetensors").unlink()
        return d, "model-00002-of-00002.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
        return d, "model.safetensors"
    if how == "text-safetensors":
        weights.write_text("version https://git-lfs.github.com/spec/v1\n")
        return weights, "model.safetensors"
    if how == "bad-hidden-size":
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "hidden_size": "abc"}))
        return d, "hidden_size='abc'"
    if how == "junk-index":
        weights.unlink()
        (d / "model.safetensors.index.json").write_text("{not json")
        return d, "model.safetensors.index.json"
    if how == "pointer-file":
        (d / "latest").write_text("checkpoint-20\n")
        return d / "latest", "is not a weights file"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "missing-shard",
        "truncated",
        "text-safetensors",
        "bad-hidden-size",
        "junk-index",
        "pointer-file",
    ],
)
def test_broken_hf_dirs_are_one_line_checkpoint_errors(tmp_path, capsys, how):
    path, needle = _broken(tmp_path, how)
    with pytest.raises(CheckpointError, match=needle.replace(".", r"\.")) as err:
        load_model(path)
    assert "is a pickle file" not in str(err.value)
    for argv in (["export", "hf", str(path), str(tmp_path / "out")], ["model", "test", str(path)]):
        assert main([*argv, "--device", "cpu"] if argv[0] == "model" else argv) == 2
        out = capsys.readouterr().err
        assert needle in out and len(out.strip().splitlines()) == 1, out


def test_bare_one_hot_weights_say_to_load_the_directory(tmp_path):
    _reference(embedding="one_hot").save_pretrained(tmp_path / "ref")
    with pytest.raises(CheckpointError, match="embedding.weight.*one_hot.*config.json"):
        load_model(tmp_path / "ref" / "model.safetensors")
    (tmp_path / "cfg.yaml").write_text("model: {}\n")
    with pytest.raises(CheckpointError, match="cfg.yaml' is not a weights file"):
        load_model(tmp_path / "cfg.yaml")


def test_export_out_path_errors_are_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    src = save_hf_dir(GPN(GPNConfig(hidden_size=16, n_layers=2)), tmp_path / "src", tokenizer=False)
    (tmp_path / "empty-file").touch()
    (tmp_path / "parent-file").write_text("x")
    cases = [
        ([str(tmp_path / "empty-file")], "is a file, not a directory"),
        ([str(tmp_path / "empty-file"), "--force"], "is a file, not a directory"),
        ([str(tmp_path / "parent-file" / "x")], "cannot create or write OUT"),
        (["/proc/nope/x"], "cannot create or write OUT"),
    ]
    for extra, needle in cases:
        assert main(["export", "hf", str(src), *extra, "--no-tokenizer"]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
