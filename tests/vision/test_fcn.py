"""FCN: bilinear transposed convolution, masked loss, training, CLI (its metrics: test_segmentation_metrics.py)."""
import json
import shutil
import types
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common.distribute import make_strategy
from common.errors import DlsuiteError
from common.training import CosineSchedule, Run, fit, set_seed
from tests.vision._resume import check_cosine_resume
from vision import fcn, resnet, voc
from vision.segmentation_metrics import confusion_matrix, mean_iou, trimap_labels

# A tiny setting that still goes through the real reader, pipeline and model.
TINY = ["--width", "8", "--crop", "96x96", "--shapes-train", "48", "--shapes-val", "8", "--shapes-size", "96-112",
        "--batch-size", "8"]


# --- the bilinear transposed convolution -------------------------------------------
def test_bilinear_kernel_matches_the_book_formula():
    k = fcn.bilinear_kernel(3, 3, 4)
    # The book's bilinear_kernel(3, 3, 4): factor 2, center 1.5, og = [0.25, 0.75, 0.75, 0.25].
    tent = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(k[:, :, 1, 1], np.outer(tent, tent))
    assert k[:, :, 0, 1].sum() == 0 and k[:, :, 2, 0].sum() == 0
    assert k.shape == (4, 4, 3, 3)


def test_initialised_transposed_conv_is_bilinear_upsampling():
    model = fcn.build_fcn(num_classes=21, width=8)
    layer = model.get_layer("upsample")
    assert layer.kernel_size == (64, 64) and layer.strides == (32, 32)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 21)).astype(np.float32)
    y = layer(x).numpy()
    assert y.shape == (2, 96, 128, 21)
    # Inside (at least half a cell from the border), exactly tf.image.resize's bilinear
    # (half-pixel centres) upsampling.
    expected = tf.image.resize(x, (96, 128), method="bilinear").numpy()
    np.testing.assert_allclose(y[:, 16:-16, 16:-16], expected[:, 16:-16, 16:-16], atol=1e-5)
    # Everywhere: bilinear upsampling with zeros outside the input (the tent filter's edge).
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    full = tf.image.resize(padded, (5 * 32, 6 * 32), method="bilinear").numpy()[:, 32:-32, 32:-32]
    np.testing.assert_allclose(y, full, atol=1e-5)


# --- FCN-16s / FCN-8s skip connections --------------------------------------------
@pytest.mark.parametrize("head, layers", [
    ("fcn32s", {"classifier": (3, 5), "upsample": (96, 160)}),
    ("fcn16s", {"classifier": (3, 5), "upsample32_to_16": (6, 10), "score16": (6, 10), "fuse16": (6, 10),
                "upsample": (96, 160)}),
    ("fcn8s", {"classifier": (3, 5), "upsample32_to_16": (6, 10), "score16": (6, 10), "fuse16": (6, 10),
               "upsample16_to_8": (12, 20), "score8": (12, 20), "fuse8": (12, 20), "upsample": (96, 160)}),
])
def test_skip_connection_shapes_per_head(head, layers):
    model = fcn.build_fcn(width=8, head=head)
    outputs = keras.Model(model.input, [model.get_layer(name).output for name in layers])
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 160, 3)).astype(np.float32)
    for (name, size), y in zip(layers.items(), outputs(x)):
        assert tuple(y.shape) == (2, *size, 21), name
    # The skip scorers read the stride-16 (4 * width channels) and stride-8 (2 * width) stages.
    if head != "fcn32s":
        assert model.get_layer("score16").kernel.shape == (1, 1, 32, 21)
    if head == "fcn8s":
        assert model.get_layer("score8").kernel.shape == (1, 1, 16, 21)
        np.testing.assert_array_equal(model.get_layer("score8").kernel.numpy(), 0)  # Long et al.: zero-initialised


# The tent of bilinear_kernel(k=2f) by hand: 1 - |i - (f - 0.5)| / f, i = 0..2f-1.
TENTS = {2: [1 / 4, 3 / 4, 3 / 4, 1 / 4],
         8: [1 / 16, 3 / 16, 5 / 16, 7 / 16, 9 / 16, 11 / 16, 13 / 16, 15 / 16,
             15 / 16, 13 / 16, 11 / 16, 9 / 16, 7 / 16, 5 / 16, 3 / 16, 1 / 16],
         16: [(2 * i + 1) / 32 for i in range(16)] + [(31 - 2 * i) / 32 for i in range(16)]}


@pytest.mark.parametrize("head, factors", [("fcn16s", {"upsample32_to_16": 2, "upsample": 16}),
                                           ("fcn8s", {"upsample32_to_16": 2, "upsample16_to_8": 2, "upsample": 8})])
def test_each_upsampling_layer_starts_bilinear(head, factors):
    model = fcn.build_fcn(width=8, head=head)
    rng = np.random.default_rng(0)
    for name, factor in factors.items():
        layer = model.get_layer(name)
        assert layer.kernel_size == (2 * factor,) * 2 and layer.strides == (factor, factor), name
        kernel = layer.kernel.numpy()
        np.testing.assert_allclose(kernel[:, :, 4, 4], np.outer(TENTS[factor], TENTS[factor]), rtol=1e-6)
        off_diagonal = kernel.copy()
        off_diagonal[:, :, np.arange(21), np.arange(21)] = 0
        assert not off_diagonal.any(), name  # channel i feeds channel i only
        # Applied: tf.image.resize's bilinear upsampling away from the border (half a cell in).
        x = rng.normal(size=(1, 4, 5, 21)).astype(np.float32)
        y = layer(x).numpy()
        expected = tf.image.resize(x, (4 * factor, 5 * factor), method="bilinear").numpy()
        m = factor // 2
        np.testing.assert_allclose(y[:, m:-m, m:-m], expected[:, m:-m, m:-m], atol=1e-5)


@pytest.mark.parametrize("head, learned", [("fcn32s", True), ("fcn8s", False)])
def test_final_upsampling_is_fixed_in_the_skip_nets_only(head, learned):
    # Long et al.: the skip nets' last upsampling stays bilinear; the book's fcn32s learns its own.
    model = fcn.build(fcn.Config(width=8, head=head, epochs=1), steps_per_epoch=1)
    final = model.get_layer("upsample")
    before = final.kernel.numpy()
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, (2, 64, 64)).astype(np.int32)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert final.trainable is learned and any(v is final.kernel for v in model.trainable_variables) is learned
    assert bool(np.abs(final.kernel.numpy() - before).max() > 0) is learned
    if head == "fcn8s":  # the 2x upsamplings before it are still learned
        assert np.abs(model.get_layer("upsample16_to_8").kernel.numpy() - fcn.bilinear_kernel(21, 21, 4)).max() > 0


def _rectangles(n, seed, size=64):
    """`n` (size, size) images of 2 noisy red rectangles (class 1) on noisy green (class 0); 1-px void outlines."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 20, (n, size, size, 3)) + np.array([60, 140, 60])
    y = np.zeros((n, size, size), np.int32)
    for i in range(n):
        for _ in range(2):
            t, l = rng.integers(0, size - 16, 2)
            b, r = np.minimum(np.array([t, l]) + rng.integers(12, size // 2, 2), size)
            x[i, t:b, l:r] = rng.normal(0, 20, (b - t, r - l, 3)) + np.array([200, 60, 60])
            y[i, t:b, l:r] = 1
    edge = np.zeros_like(y, bool)
    edge[:, 1:] |= y[:, 1:] != y[:, :-1]
    edge[:, :, 1:] |= y[:, :, 1:] != y[:, :, :-1]
    y[edge] = 255
    return np.clip(x, 0, 255).astype(np.float32), y


@pytest.mark.slow  # ~50 s: two models trained 64 steps each
def test_fcn8s_beats_fcn32s_on_boundary_pixels():
    # Rectangles whose edges fall anywhere: a 64x64 input leaves FCN-32s a 2x2 score map, FCN-8s an 8x8 one.
    # Written: fcn32s trimap mIoU 0.43 (mIoU 0.69), fcn8s 0.70 (0.92).
    train_x, train_y = _rectangles(64, 0)
    val_x, val_y = _rectangles(16, 1)
    scores = {}
    for head in ("fcn32s", "fcn8s"):
        set_seed(0)
        model = fcn.build(fcn.Config(width=8, head=head, lr=1e-2, epochs=8, weight_decay=0), steps_per_epoch=8)
        model.fit(train_x, train_y, batch_size=8, epochs=8, verbose=0, shuffle=False)
        predicted = np.argmax(model.predict(val_x, verbose=0), -1)
        scores[head] = mean_iou(confusion_matrix(trimap_labels(val_y, 2), predicted, 2).numpy())
    assert scores["fcn8s"] > scores["fcn32s"] + 0.15
    assert scores["fcn8s"] > 0.6


# --- loss ------------------------------------------------------------------------
def test_masked_cross_entropy_ignores_255_and_averages_over_all_pixels():
    logits = np.array([[[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], [[1.0, 3.0, 0.0], [5.0, -5.0, 0.0]]]], np.float32)
    labels = np.array([[[0, 255], [1, 2]]])
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(log_softmax[0, 0, 0, 0] + log_softmax[0, 1, 0, 1] + log_softmax[0, 1, 1, 2]) / 4
    per_pixel = fcn.masked_cross_entropy(labels, logits).numpy()
    assert per_pixel[0, 0, 1] == 0
    np.testing.assert_allclose(per_pixel.mean(), expected, rtol=1e-6)
    model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Identity()])
    model.compile(loss=fcn.masked_cross_entropy)
    np.testing.assert_allclose(model.evaluate(logits, labels, verbose=0), expected, rtol=1e-5)


# --- backbones -----------------------------------------------------------------------
def test_resnet18_has_the_torchvision_shape():
    model = resnet.resnet18()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_176_512  # torchvision resnet18 minus its 513,000-parameter classifier
    assert model(np.zeros((1, 96, 160, 3), np.float32)).shape == (1, 3, 5, 512)


def test_resnet50_backbone_and_offline_imagenet_weights(monkeypatch):
    model = fcn.build_fcn(backbone="resnet50")
    assert model.get_layer("classifier").input.shape[-1] == 2048
    assert tuple(model.output.shape) == (None, None, None, 21)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DlsuiteError, match="pass --backbone-weights none to train from scratch"):
        resnet.build_backbone("resnet50", "imagenet")


def test_backbone_weights_from_a_local_path(tmp_path):
    source = resnet.resnet18(width=8)
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    model = fcn.build_fcn(width=8, weights=str(path))
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    features = keras.Model(model.input, model.get_layer("stage4_block2_out").output)
    np.testing.assert_allclose(features(x), source(x), atol=1e-5)
    with pytest.raises(DlsuiteError, match=r"--backbone-weights .*missing\.weights\.h5: cannot load"):
        fcn.build_fcn(width=8, weights=str(tmp_path / "missing.weights.h5"))


# --- optimizer --------------------------------------------------------------------------
@pytest.mark.parametrize("head, count", [("fcn32s", 22), ("fcn8s", 25)])
def test_weight_decay_on_kernels_only(head, count):
    cfg = fcn.Config(width=8, weight_decay=1e-4, epochs=10, head=head)
    model = fcn.build(cfg, steps_per_epoch=10)
    opt = model.optimizer
    decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
    kernels = {v.path for v in model.trainable_variables if v.path.endswith("/kernel")}
    # 20 backbone convolutions, classifier, upsample (fcn8s: score16, score8 and two 2x upsamplings; its
    # final upsample is fixed, not trainable)
    assert decayed == kernels and len(kernels) == count
    spared = {v.path.rsplit("/", 1)[-1] for v in model.trainable_variables if not opt._use_weight_decay(v)}
    assert spared == {"gamma", "beta", "bias"}  # batch-norm scales and shifts, classifier/upsample biases
    assert "stem_bn/gamma" not in decayed and "classifier/bias" not in decayed
    assert isinstance(opt._learning_rate, CosineSchedule) and opt._learning_rate.total_steps == 100
    assert float(opt._learning_rate(100)) == pytest.approx(0.01 * cfg.lr)  # cosine down to lr/100


@pytest.mark.slow  # 4 training runs; the fast suite checks the schedule in test_weight_decay_on_kernels_only
def test_cosine_schedule_resumed_with_more_epochs_continues_without_a_jump(tmp_path, capsys, monkeypatch):
    argv = ["--dataset", "shapes", "--width", "8", "--crop", "64x64", "--shapes-train", "16", "--shapes-val", "2",
            "--shapes-size", "64-64", "--batch-size", "8", "--lr", "5e-3"]  # 2 steps an epoch; cosine to alpha 0.01
    check_cosine_resume(fcn.main, argv, 2, 5e-3, 0.01, tmp_path, capsys, monkeypatch)


def test_generated_data_depends_on_data_seed_not_seed():
    root = lambda **kw: fcn.dataset_root(types.SimpleNamespace(
        data_dir=None, config=fcn.Config(dataset="shapes", shapes_train=3, shapes_val=1, shapes_size=(64, 64), **kw)))
    a, b, c = root(seed=0), root(seed=7), root(data_seed=1)
    assert a == b and c != a
    first = lambda r: (r / "JPEGImages" / "shapes_000000.jpg").read_bytes()
    assert first(a) != first(c)


# --- training -------------------------------------------------------------------------
def _two_epochs(strategy, root, run_dir, head):
    # SGD, so float round-off between the two reductions stays round-off (Adam would amplify it).
    cfg = fcn.Config(epochs=2, batch_size=8, width=8, crop=(64, 64), lr=0.01, optimizer="sgd", seed=3, head=head)
    images, labels = voc.read_split(root, "train")
    set_seed(cfg.seed)
    with strategy.scope():
        model = fcn.build(cfg, steps_per_epoch=len(images) // 8)
    data = lambda epoch: voc.train_dataset(images, labels, (64, 64), 8, cfg.seed, epoch, scale=(0.5, 1.5), jitter=0.3)
    history = fit(model, data, Run(run_dir), epochs=2, save_model=False, verbose=0)
    last = "score8" if head == "fcn8s" else "classifier"
    return [h["loss"] for h in history], model.get_layer(last).kernel.numpy()


@pytest.mark.parametrize("head", ["fcn32s", "fcn8s"])
def test_two_replicas_match_one(tmp_path, head):
    root = voc.generate_shapes_voc(tmp_path / "data", num_train=8, num_val=1, size=(64, 72), seed=1)
    loss1, w1 = _two_epochs(make_strategy("default"), root, tmp_path / "r1", head)
    strategy = make_strategy("mirrored", devices=2)
    assert strategy.num_replicas_in_sync == 2
    loss2, w2 = _two_epochs(strategy, root, tmp_path / "r2", head)
    np.testing.assert_allclose(loss2, loss1, rtol=1e-5)
    np.testing.assert_allclose(w2, w1, rtol=1e-4, atol=1e-6)
    assert loss1[1] < loss1[0] and np.abs(w1).max() > 0


def test_cli_train_evaluate_predict_learns_shapes(capsys, tmp_path):
    # --demo's generated shapes (made tiny by TINY): evaluate reads the same images with no data flags.
    # (lr 1e-2, 20 epochs: val mIoU 0.41, pixel acc 0.83. 10 epochs gave 0.30 on one machine and 0.256 on
    # another, whose floats differ, too close to the floor below; lr 5e-3 gave 0.28 / 0.68.)
    assert fcn.main(["train", "--demo", "--epochs", "20", "--lr", "1e-2", *TINY, "--run-dir", "runs/fcn/a"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    trained = json.loads(out[-1])
    assert trained["train_images"] == 48 and trained["epochs"] == 20
    assert fcn.main(["evaluate", "--run-dir", "runs/fcn/a"]) == 0
    out, err = capsys.readouterr()
    scores = json.loads(out.strip().splitlines()[-1])
    assert "note:" not in err
    assert scores["images"] == 8 and scores["miou"] == pytest.approx(trained["val_miou"], abs=1e-4)
    # The baseline that predicts background everywhere; a model that learned shapes beats it clearly.
    root = next((tmp_path / "cache" / "vision-demo").glob("*/VOCdevkit/VOC2012"))
    labels = [voc.read_label(p) for p in voc.read_split(root, "val")[1]]
    baseline = mean_iou(sum(confusion_matrix(y, np.zeros_like(y), 21).numpy() for y in labels))
    assert baseline < 0.2
    assert scores["miou"] > baseline + 0.15 and scores["pixel_acc"] > 0.7
    # The generated set's class_names.txt names the classes: circle..star, not VOC's aeroplane..bottle.
    assert len(scores["iou"]) > 2 and set(scores["iou"]) == set(scores["trimap_iou"])
    assert "background" in scores["iou"] and set(scores["iou"]) & {"circle", "square", "triangle", "cross", "star"}
    assert not set(scores["iou"]) & set(voc.VOC_CLASSES[1:])
    # The same images without the file, as a VOCdevkit has none: the names the run trained on (its
    # classes.json), not VOC's aeroplane..bottle for the same numbers (issue 33).
    assert json.loads(Path("runs/fcn/a/classes.json").read_text()) == list(voc.SHAPE_NAMES)
    shutil.copytree(root, tmp_path / "plain" / "VOCdevkit" / "VOC2012")
    (tmp_path / "plain" / "VOCdevkit" / "VOC2012" / "class_names.txt").unlink()
    assert fcn.main(["evaluate", "--run-dir", "runs/fcn/a", "--data-dir", str(tmp_path / "plain")]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["miou"] == scores["miou"] and plain["iou"] == scores["iou"]
    # A bad file: one line naming it and the fix, exit 1, before the run is read.
    (tmp_path / "plain" / "VOCdevkit" / "VOC2012" / "class_names.txt").write_text("circle\nsquare\n")
    assert fcn.main(["evaluate", "--run-dir", "runs/fcn/a", "--data-dir", str(tmp_path / "plain")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "class_names.txt: the first name is 'circle', but index 0 is the background" in err[-1]
    assert "background first" in err[-1] and "Traceback" not in "\n".join(err)
    sample = root / "JPEGImages" / "shapes_000050.jpg"
    assert fcn.main(["predict", str(sample), "--run-dir", "runs/fcn/a", "--out", "pred"]) == 0
    overlay = np.asarray(Image.open("pred/shapes_000050_overlay.png"))
    assert overlay.shape == np.asarray(Image.open(sample)).shape
    with Image.open("pred/shapes_000050_classes.png") as classes:
        assert classes.mode == "P" and classes.size == Image.open(sample).size
    capsys.readouterr()
    assert fcn.main(["predict", "missing.jpg", "--run-dir", "runs/fcn/a"]) == 1
    err = capsys.readouterr().err.strip()
    assert "missing.jpg not found" in err and len(err.splitlines()) == 1


# --- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--crop", "100x100"], "--crop 100x100: both sides must be multiples of 32"),
    (["--backbone-weights", "imagenet"], "--backbone-weights imagenet needs --backbone resnet50"),
    (["--jitter", "1.5"], "--jitter"),
])
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    assert fcn.main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--crop", "big"], "--crop must be a size HxW like 128x128 (or one number for a square), got 'big'"),
    (["--shapes-size", "90-80"], "--shapes-size must be two positive integers LOW-HIGH with LOW <= HIGH"),
    (["--scale", "1.5-0.5"], "--scale must be two positive numbers LOW-HIGH with LOW <= HIGH"),
    (["--head", "fcn4s"], "--head"),
])
def test_unparsable_pairs_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        fcn.main(["train", *argv])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_bad_data_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    root = voc.generate_shapes_voc(tmp_path / "d", num_train=3, num_val=1, size=(64, 64), seed=0)
    label = voc.read_label(root / "SegmentationClass" / "shapes_000001.png").copy()
    label[0, 0] = 42
    voc.write_label(root / "SegmentationClass" / "shapes_000001.png", label)
    assert fcn.main(["train", "--data-dir", str(tmp_path / "d"), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert "shapes_000001.png has unknown class index 42" in err and len(err.splitlines()) == 1

    # class_names.txt naming fewer classes than the labels use: one line naming the file and the fix.
    root = voc.generate_shapes_voc(tmp_path / "e", num_train=3, num_val=1, size=(64, 64), seed=0)
    (root / "class_names.txt").write_text("background\ncircle\n")
    assert fcn.main(["train", "--data-dir", str(tmp_path / "e"), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert "class_names.txt names only 2 classes (0-1); add the missing names to it" in err
    assert len(err.splitlines()) == 1

    assert fcn.main(["train", "--data-dir", str(tmp_path / "nowhere")]) == 1
    assert "--data-dir" in capsys.readouterr().err

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    assert fcn.main(["train", "--dataset", "voc2012"]) == 1
    err = capsys.readouterr().err.strip()
    assert "VOCtrainval_11-May-2012.tar" in err and "--dataset shapes" in err and len(err.splitlines()) == 1


def test_predict_and_evaluate_need_a_run(capsys):
    assert fcn.main(["evaluate"]) == 2
    assert "no run found under runs/fcn" in capsys.readouterr().err


@pytest.mark.slow
def test_default_settings_reach_the_issue_miou(capsys):
    # The README's quality command: default settings (FCN-8s, scale/colour augmentation, 45 epochs of batch 4,
    # 256x256 crops) on the offline photograph set (300 train / 60 val, vision.photo_segmentation); issue 15 asks
    # for mIoU >= 0.6. Measured 0.602 on 2026-11-29 (seed 0; --seed 1 gave 0.589, docs/experiments/vision.md). About
    # 15 minutes on 2 CPU cores.
    assert fcn.main(["train", "--run-dir", "runs/fcn/quality"]) == 0
    capsys.readouterr()
    assert fcn.main(["evaluate", "--run-dir", "runs/fcn/quality"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["miou"] >= 0.6
