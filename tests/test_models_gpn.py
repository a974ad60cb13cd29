"""The GPN model: size of the released config, architecture details, HF weight layout."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from glmx.eval import load_model
from glmx.models import GPN, GPNConfig, GPNModule, weighted_mlm_loss
from glmx.models.gpn import config_from_state_dict, from_hf_state_dict, to_hf_state_dict


def test_full_config_has_the_released_parameter_count():
    with torch.device("meta"):
        net = GPN(GPNConfig())
    assert sum(p.numel() for p in net.parameters()) == 152_189_952


def test_architecture_matches_the_reference():
    net = GPN(GPNConfig.tiny())
    assert [layer.conv.kernel_size[0] for layer in net.layers] == [9] + [5] * 7
    assert [layer.conv.dilation[0] for layer in net.layers] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert net.layers[0].lin_in.out_features == 64  # slim: hidden / 2
    assert all(p.ndim > 1 or "norm" in n for n, p in net.named_parameters())  # no biases
    assert torch.count_nonzero(net.embedding.weight[0]) == 0  # padding row
    assert net.head.weight.data_ptr() != net.embedding.weight.data_ptr()  # untied
    ids = torch.randint(3, 7, (2, 100))
    assert net(ids).shape == (2, 100, 7)
    assert net.hidden_states(ids).shape == (2, 100, 128)


def test_weighted_loss_ignores_unpredicted_and_weights_lowercase():
    logits = torch.zeros(1, 3, 7)
    logits[0, 0, 3] = 5.0
    labels = torch.tensor([[3, 4, -100]])
    w = torch.tensor([[1.0, 0.0, 1.0]])
    ce0 = torch.nn.functional.cross_entropy(logits[0, :1], labels[0, :1])
    assert torch.allclose(weighted_mlm_loss(logits, labels, w), ce0)


def test_hf_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    net = GPN(GPNConfig(hidden_size=32, n_layers=3)).eval()
    hf = to_hf_state_dict(net.state_dict())
    assert "model.encoder.layer.2.layer.6.weight" in hf and "cls.decoder.weight" in hf
    assert "model.embeddings.word_embeddings.weight" in hf and "model.ln_f.weight" in hf
    assert from_hf_state_dict(hf).keys() == net.state_dict().keys()
    cfg = config_from_state_dict(net.state_dict())
    assert (cfg.hidden_size, cfg.n_layers, cfg.slim, cfg.bias) == (32, 3, True, False)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.items()}, str(path))
    loaded = load_model(path)
    ids = torch.randint(3, 7, (2, 64))
    with torch.no_grad():
        assert torch.allclose(loaded(ids), net(ids))


def test_module_optimizer_has_no_decay_on_norms():
    mod = GPNModule(GPNConfig(hidden_size=32, n_layers=2), weight_decay=0.01)
    opt = mod.configure_optimizers()["optimizer"]
    by_decay = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in opt.param_groups}
    norms = sum(p.numel() for n, p in mod.named_parameters() if "norm" in n)
    assert by_decay[0.0] == norms
