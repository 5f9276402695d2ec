"""The networks: output shapes, parameter counts worked out from each layer spec, that each can
fit one small batch, and the registry / ResNet-50 weight-loading errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kmnist.models import InputSpec, build_network, create_model, input_spec


def conv(cin, cout, k, bias=True):
    return cout * cin * k * k + (cout if bias else 0)


def dense(fin, fout):
    return fout * fin + fout


def bn(c):  # trainable weight + bias; running stats are buffers
    return 2 * c


def resnet50_params(num_classes=10, in_chans=3):
    total = conv(in_chans, 64, 7, bias=False) + bn(64)  # stem
    inp = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            total += conv(inp, width, 1, False) + bn(width) + conv(width, width, 3, False) + bn(width)
            total += conv(width, 4 * width, 1, False) + bn(4 * width)
            if b == 0:  # projection shortcut
                total += conv(inp, 4 * width, 1, False) + bn(4 * width)
            inp = 4 * width
    return total + dense(2048, num_classes)


CASES = {
    # name: (kwargs, input shape, parameter count from the spec)
    "dnn": ({}, (1, 28, 28), dense(784, 300) + dense(300, 100) + dense(100, 10)),
    "cnn": (
        {},
        (1, 28, 28),
        conv(1, 12, 7)
        + conv(12, 32, 3)
        + conv(32, 64, 3)  # 28 -> 14 -> 7 -> 3
        + dense(64 * 3 * 3, 128)
        + dense(128, 64)
        + dense(64, 10),
    ),
    # PReLU: one alpha per channel / unit. Spatial 28 -> 22 -> 18 -> 16 -> 14 -> 13 -> 10.
    "dcnn": (
        {},
        (1, 28, 28),
        conv(1, 8, 7)
        + 8
        + bn(8)
        + conv(8, 16, 5)
        + 16
        + conv(16, 32, 3)
        + conv(32, 64, 3)
        + conv(64, 128, 2)
        + conv(128, 64, 4)
        + dense(64 * 10 * 10, 512)
        + 512
        + bn(512)
        + dense(512, 512)
        + 512
        + dense(512, 10),
    ),
    "convnet": (
        {},
        (1, 28, 28),
        conv(1, 64, 3)
        + 2 * conv(64, 64, 3)
        + 3 * bn(64)
        + conv(64, 128, 3)
        + 2 * conv(128, 128, 3)
        + 3 * bn(128)
        + conv(128, 256, 3)
        + conv(256, 256, 3)
        + 2 * bn(256)  # 28 -> 14 -> 7 -> 3
        + dense(256 * 3 * 3, 256)
        + bn(256)
        + dense(256, 10),
    ),
    "resnet50": ({"pretrained": False}, (3, 32, 32), resnet50_params()),
    # KResNet: per block a down conv + BN and a residual conv + BN (no conv biases); max-pool head.
    "kresnet": (
        {},
        (1, 28, 28),
        sum(
            conv(a, b, 3, False) + bn(b) + conv(b, b, 3, False) + bn(b)
            for a, b in ((1, 32), (32, 64), (64, 128))
        )
        + dense(128, 10),
    ),
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy two-core machine two OpenMP threads spin against each other
    and the same steps run 10-20x slower (measured: cnn 40 steps 0.5 s vs 9.5 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(CASES))
def test_output_shape(name):
    kwargs, shape, _ = CASES[name]
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(4, *shape))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(CASES))
def test_parameter_count(name):
    kwargs, _, expected = CASES[name]
    assert n_params(create_model(name, **kwargs)) == expected


# (batch, steps, lr, extra kwargs), sized to stay fast on two CPU cores; dropout stays on (train
# mode) except in cnn, whose two 0.5 dropouts on 128/64 units need hundreds of steps to memorise noise.
FIT = {
    "dnn": (32, 30, 3e-3, {}),
    "cnn": (32, 40, 3e-3, {"dropout": 0.0}),
    "dcnn": (16, 20, 1e-3, {}),
    "convnet": (16, 15, 1e-3, {}),
    "resnet50": (16, 20, 1e-3, {}),
    "kresnet": (32, 30, 3e-3, {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_overfits_one_batch(name):
    """Random images with random labels: only memorisation lowers the loss, so this checks that
    gradients reach every layer and the net has the capacity its spec promises."""
    kwargs, shape, _ = CASES[name]
    batch, steps, lr, extra = FIT[name]
    torch.manual_seed(0)
    model = create_model(name, **kwargs, **extra).train()
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_build_network_takes_a_model_config_of_constructor_arguments():
    cfg = {"name": "dnn", "n_neurons": 64, "hidden": [300, 32], "activation": "leaky_relu"}
    model = build_network(cfg)
    assert n_params(model) == dense(784, 64) + dense(64, 32) + dense(32, 10)
    with pytest.raises(TypeError, match="channels_last"):  # speed options are not the network's
        build_network({**cfg, "channels_last": True})


def test_input_spec_is_the_networks_and_the_config_can_change_its_shape():
    assert input_spec({"name": "cnn"}) == InputSpec(in_chans=1, input_size=28, imagenet_norm=False)
    assert input_spec({"name": "resnet50"}) == InputSpec(in_chans=3, input_size=32, imagenet_norm=True)
    assert input_spec({"name": "resnet50", "input_size": 64}).input_size == 64
    net = build_network({"name": "resnet50", "pretrained": False})
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # built for the spec it registered


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="known: .*convnet.*dcnn.*dnn.*resnet50"):
        create_model("nope")


def test_resnet50_layer_groups_cover_all_parameters():
    model = create_model("resnet50", pretrained=False)
    groups = model.layer_groups()
    assert len(groups) == 6 and groups[-1] is model.head and model.head.out_features == 10
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


def test_resnet50_loads_local_weights(tmp_path):
    import timm

    torch.manual_seed(1)
    state = timm.create_model("resnet50", num_classes=1000).state_dict()
    file = tmp_path / "resnet50.pth"
    torch.save(state, file)
    model = create_model("resnet50", pretrained=True, weights=str(file))
    assert torch.equal(model.model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.model.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert model.head.out_features == 10


def test_resnet50_garbage_weights_file(tmp_path):
    file = tmp_path / "garbage.pth"
    file.write_bytes(b"not a state dict" * 64)
    with pytest.raises(ValueError, match="garbage.pth"):
        create_model("resnet50", pretrained=True, weights=str(file))


def test_resnet50_other_architecture_weights(tmp_path):
    file = tmp_path / "dnn.pth"
    torch.save(create_model("dnn").state_dict(), file)
    with pytest.raises(ValueError, match="dnn.pth"):
        create_model("resnet50", pretrained=True, weights=str(file))


def test_resnet50_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="model.weights"):
        create_model("resnet50", pretrained=True, weights=str(tmp_path / "absent.pth"))
    (tmp_path / "notes.pth").write_text("not weights\n")
    with pytest.raises(ValueError, match=r"notes.pth': could not be read as a resnet50 state dict \(") as err:
        create_model("resnet50", pretrained=True, weights=str(tmp_path / "notes.pth"))
    assert "\n" not in str(err.value)


def test_resnet50_offline_without_weights(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(ValueError, match="model.pretrained=false") as err:
        create_model("resnet50", pretrained=True)
    assert "model.weights=PATH" in str(err.value) and "\n" not in str(err.value)


def test_kresnet_depth_and_width_follow_the_spec():
    """depth: residual steps per block; at widths (96, 192, 384) it spans the 1-5 M parameter range."""
    for widths, depth in (((32, 64, 128), 2), ((96, 192, 384), 1), ((96, 192, 384), 2)):
        chans = (1, *widths)
        expected = sum(
            conv(a, b, 3, False) + bn(b) + depth * (conv(b, b, 3, False) + bn(b))
            for a, b in zip(chans, chans[1:])
        )
        expected += dense(widths[-1], 10)
        model = create_model("kresnet", widths=widths, depth=depth)
        assert n_params(model) == expected
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert 2_000_000 < n_params(create_model("kresnet", widths=(96, 192, 384))) < 5_000_000
    # Depth 1 keeps the historical parameter names: earlier checkpoints still load.
    assert "blocks.0.residual.0.weight" in create_model("kresnet").state_dict()
