"""Backbone stages for FCN-16s/8s and the torchvision resnet18 weight converter."""
import json

import numpy as np
import pytest
import torch

from vision import resnet


def test_stages_are_the_stride_8_16_32_features():
    model = resnet.build_backbone("resnet18", width=8, stages=True)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    shapes = [tuple(y.shape) for y in model(x)]
    assert shapes == [(1, 8, 12, 16), (1, 4, 6, 32), (1, 2, 3, 64)]
    plain = resnet.build_backbone("resnet18", width=8)
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(plain(x), model(x)[2], atol=1e-5)
    big = resnet.build_backbone("resnet50", stages=True)
    assert [tuple(t.shape[1:]) for t in big.outputs] == [(None, None, 512), (None, None, 1024), (None, None, 2048)]


def _as_torchvision(model):
    """The torchvision resnet18 state dict holding `model`'s weights (the converter's inverse)."""
    sd = {}

    def conv(layer, key):
        sd[f"{key}.weight"] = torch.from_numpy(model.get_layer(layer).kernel.numpy().transpose(3, 2, 0, 1).copy())

    def bn(layer, key):
        l = model.get_layer(layer)
        for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                             ("moving_variance", "running_var")):
            sd[f"{key}.{theirs}"] = torch.from_numpy(getattr(l, ours).numpy().copy())
        sd[f"{key}.num_batches_tracked"] = torch.tensor(7)

    conv("stem_conv", "conv1")
    bn("stem_bn", "bn1")
    for s in range(1, 5):
        for b in range(1, 3):
            for i in (1, 2):
                conv(f"stage{s}_block{b}_conv{i}", f"layer{s}.{b - 1}.conv{i}")
                bn(f"stage{s}_block{b}_bn{i}", f"layer{s}.{b - 1}.bn{i}")
            if s > 1 and b == 1:
                conv(f"stage{s}_block{b}_proj", f"layer{s}.0.downsample.0")
                bn(f"stage{s}_block{b}_proj_bn", f"layer{s}.0.downsample.1")
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return sd


def test_torchvision_conversion_round_trip(tmp_path, capsys):
    source = resnet.resnet18()
    rng = np.random.default_rng(0)
    for v in source.weights:  # random batch-norm statistics too, so every tensor is checked
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.1 + ("variance" in v.path))
    sd = _as_torchvision(source)
    assert len(sd) == 122  # torchvision resnet18's state dict: 20 convs, 20 batch norms x 5, fc weight and bias
    torch.save(sd, tmp_path / "resnet18.pth")
    out = tmp_path / "resnet18_imagenet.weights.h5"
    assert resnet.main(["convert-torchvision", str(tmp_path / "resnet18.pth"), str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["out"] == str(out) and f"--backbone-weights {out}" in result["use"]
    loaded = resnet.build_backbone("resnet18", str(out), width=64)
    x = rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), source(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.get_layer("stage2_block1_proj").kernel.numpy()[0, 0, :, 3],
                                  sd["layer2.0.downsample.0.weight"][3, :, 0, 0].numpy())


def test_conversion_errors_are_one_line(tmp_path, capsys):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "other.pth")
    assert resnet.main(["convert-torchvision", str(tmp_path / "other.pth"), str(tmp_path / "o.weights.h5")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a torchvision resnet18 state dict" in err and len(err.splitlines()) == 1
    assert resnet.main(["convert-torchvision", str(tmp_path / "missing.pth"), str(tmp_path / "o.weights.h5")]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        resnet.main(["convert-torchvision", "a.pth", "out.h5"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "must end in .weights.h5" in err and len(err.splitlines()) == 1
