"""vision.ssd (TinySSD through the spine); its metrics are tests/vision/test_detection_eval.py."""
import json
import re
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import training
from common.errors import UsageError
from vision import banana, ssd
from tests.cli_helpers import run
from tests.vision._resume import check_cosine_resume
from vision.boxes import box_iou, multibox_target
from vision.detection_eval import coco_map
from vision.ssd_loss import ssd_loss

TINY = ["--image-size", "64", "--batch-size", "8", "--train-images", "16", "--val-images", "8", "--eval-every", "1"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# --- model ---------------------------------------------------------------------------------
def test_build_uses_the_resumable_schedule():
    # training.CosineSchedule (checkpointed; `fit` continues it on a resume with another --epochs), to 0.
    model = ssd.build(ssd.Config(image_size=64), total_steps=40)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, training.CosineSchedule) and schedule.total_steps == 40
    assert float(schedule(0)) == pytest.approx(3e-3) and float(schedule(40)) == pytest.approx(0.0, abs=1e-9)
    constant = ssd.build(ssd.Config(image_size=64, lr_schedule="constant"), total_steps=40)
    assert float(constant.optimizer.learning_rate) == pytest.approx(3e-3)


def test_tinyssd_shapes_and_anchor_count():
    model = ssd.build(ssd.Config(image_size=256, num_classes=2))
    cls_preds, bbox_preds = model(tf.zeros([2, 256, 256, 3], tf.uint8))
    anchors = 4 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 1)  # the book's 5444
    assert anchors == 5444 and model.anchors.shape == (anchors, 4)
    assert cls_preds.shape == (2, anchors, 3) and bbox_preds.shape == (2, anchors * 4)
    # the first anchor: pixel (0, 0) of the 32 x 32 map, size .2, ratio 1
    np.testing.assert_allclose(model.anchors[0].numpy(), [0.5 / 32 - 0.1, 0.5 / 32 - 0.1, 0.5 / 32 + 0.1,
                                                          0.5 / 32 + 0.1], atol=1e-6)


@pytest.mark.parametrize("class_loss, background", [("focal", 0.99), ("mean", None)])
def test_class_head_starts_at_the_focal_prior(class_loss, background):
    # Focal loss starts every anchor at background probability 0.99 (RetinaNet's prior); the
    # book's loss keeps Keras' zero biases. The class-head kernels are random, so the mean
    # over anchors of a blank image is close to, not at, the prior.
    keras.utils.set_random_seed(0)
    model = ssd.build(ssd.Config(image_size=64, num_classes=2, class_loss=class_loss))
    for i in range(5):
        bias = getattr(model, f"cls_{i}").bias.numpy().reshape(-1, 3)
        if background is None:
            np.testing.assert_array_equal(bias, 0)
        else:
            np.testing.assert_allclose(np.exp(bias), [[0.99, 0.005, 0.005]] * 4, rtol=1e-5)
    probs = tf.nn.softmax(model(tf.zeros([1, 64, 64, 3], tf.uint8))[0]).numpy()
    assert probs.shape == (1, 4 * (8 * 8 + 4 * 4 + 2 * 2 + 1 + 1), 3)
    if background is not None:
        assert abs(probs[..., 0].mean() - background) < 0.03


def test_pos_iou_sets_the_positive_anchors_of_the_loss():
    # A 0.3 x 0.2 box at 64 x 64 has anchors at IoU 0.4-0.5: positives with --pos-iou 0.4, not with the
    # book's 0.5; the model's loss is ssd_loss on the targets of its own threshold.
    labels = tf.constant([[[0, 0.1, 0.1, 0.4, 0.3]]])
    images = tf.zeros([1, 64, 64, 3], tf.uint8)
    for pos, other in ((0.4, 0.5), (0.5, 0.4)):
        keras.utils.set_random_seed(0)
        model = ssd.build(ssd.Config(image_size=64, class_loss="hard_negative", pos_iou=pos))
        cls_preds, bbox_preds = model(images)
        expected = {}
        for t in (pos, other):
            bbox_labels, bbox_masks, cls_labels = multibox_target(model.anchors, labels, t)
            expected[t] = float(tf.reduce_mean(ssd_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks,
                                                        class_loss="hard_negative")))
            expected[t, "positives"] = int(tf.reduce_sum(cls_labels))
        assert float(model._ssd_loss(images, labels, training=False)) == pytest.approx(expected[pos], rel=1e-5)
        assert expected[pos] != pytest.approx(expected[other], rel=1e-3)
    assert expected[0.4, "positives"] > expected[0.5, "positives"] >= 1


@pytest.fixture
def tiny_data(tmp_path):
    return banana.generate_bananas(tmp_path / "bananas", num_train=16, num_val=8, seed=1, max_objects=2)


def test_two_replicas_train_like_one(tiny_data, capsys):
    runs = {}
    for devices in (1, 2):
        run_dir = f"runs/r{devices}"
        # The default loss with SGD: Adam's first steps are about lr * sign(gradient), which turns the
        # float rounding of near-zero gradient entries into full-size steps (|w1 - w2| 0.024, not 0.004).
        code = ssd.main(["train", "--data-dir", str(tiny_data), "--run-dir", run_dir, "--epochs", "1",
                         "--optimizer", "sgd", "--lr", "0.01",
                         "--devices", str(devices), *TINY])
        assert code == 0
        result = last_json(capsys)
        model = ssd.build(ssd.Config(image_size=64))
        training.Run(run_dir, resume=True).restore({"model": model})
        runs[devices] = (result, training.Run(run_dir, resume=True).metrics, model.get_weights())
    (r1, m1, w1), (r2, m2, w2) = runs[1], runs[2]
    assert json.loads(open("runs/r2/config.json").read())["replicas"] == 2
    for a, b in zip(m1, m2):
        # (not val_map50: a ranking of near-tied scores after one epoch, it amplifies float rounding)
        for key in ("loss", "class_err", "bbox_mae", "val_loss", "val_class_err", "val_bbox_mae"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-6), key
    # Weights: the two runs' difference must be tiny next to what training changed. Measured when
    # written: |w1 - w2| = 0.0045 vs |w1 - w0| = 4.8; per-replica (unsynchronized) batch norm gave 0.44
    # (with the book's loss).
    training.set_seed(0)  # what `train` does before building the model: the same initial weights
    w0 = ssd.build(ssd.Config(image_size=64)).get_weights()
    flat = [np.concatenate([w.ravel() for w in ws]) for ws in (w0, w1, w2)]
    update = np.linalg.norm(flat[1] - flat[0])
    assert 0.5 < update < 0.5 * np.linalg.norm(flat[0])
    assert np.linalg.norm(flat[1] - flat[2]) < 0.005 * update


@pytest.mark.parametrize("recipe, floor", [({}, 0.85), (ssd.BOOK, 0.3)])
def test_learns_a_seeded_tiny_task(tmp_path, recipe, floor):
    # 32 generated images at 64 x 64, 100 steps of 16 (constant lr): a working detector finds the
    # bananas it was trained on; a model whose targets, offsets or loss were broken stays near 0
    # (it predicts background only). When written: map50 0.947 with the default recipe (focal loss,
    # Adam 3e-3), 0.530 with the book's (mean cross-entropy, SGD lr 0.2).
    training.set_seed(0)
    root = banana.generate_bananas(tmp_path / "b", num_train=32, num_val=1, seed=2)
    paths, labels, sizes = banana.read_bananas(root, "train")
    decoded = banana.decoded_dataset(paths, labels, sizes, 64)
    model = ssd.build(ssd.Config(image_size=64, **{k: v for k, v in recipe.items() if k != "batch_size"}))
    model.fit(banana.batches(decoded, 16).repeat(), steps_per_epoch=100, verbose=0)
    dets, gt = ssd.detect_dataset(ssd.make_detector(model), banana.batches(decoded, 16))
    result = coco_map(gt, dets, sizes)
    assert result["map50"] > floor, result


def test_cli_train_evaluate_predict(tiny_data, tmp_path, capsys):
    assert ssd.main(["train", "--data-dir", str(tiny_data), "--epochs", "1", *TINY]) == 0
    trained = last_json(capsys)
    assert {"loss", "val_map50", "val_map", "examples_per_s", "detections_png"} <= set(trained)
    assert Image.open(trained["detections_png"]).size[0] > 200
    assert ssd.main(["evaluate"]) == 0  # the run remembers its --data-dir
    evaluated = last_json(capsys)
    assert set(evaluated) >= {"map50", "map", "class_err", "bbox_mae"}
    assert evaluated["map50"] == pytest.approx(trained["val_map50"], abs=1e-6)
    assert evaluated["class_err"] == pytest.approx(trained["val_class_err"], rel=1e-4)
    image = tiny_data / "bananas_val" / "images" / "0.png"
    assert ssd.main(["predict", str(image), "--out", "preds", "--threshold", "0"]) == 0
    predicted = last_json(capsys)
    assert predicted["images"] == 1 and predicted["detections"] >= 1 and predicted["grey_boxes"] == 0
    # no box reaches 1.0: the image gets its best box in grey, counted apart from the detections
    assert ssd.main(["predict", str(image), "--out", "grey", "--threshold", "1"]) == 0
    predicted = last_json(capsys)
    assert predicted["detections"] == 0 and predicted["grey_boxes"] == 1
    drawn = np.asarray(Image.open("grey/0_pred.png").convert("RGB"))
    assert np.all(drawn == 150, axis=-1).any() and not np.all(drawn == 255, axis=-1).any()
    assert Image.open("preds/0_pred.png").size == (256, 256)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert ssd.main(["predict", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"cannot read image {bad}" in err and len(err.splitlines()) == 1
    assert ssd.main(["predict", str(image), "--threshold", "2"]) == 2
    assert "--threshold must be in [0, 1], got 2.0" in capsys.readouterr().err


@pytest.mark.parametrize("flags, expected", [
    (["--preset", "book", "--demo"], {"optimizer": "sgd", "lr": 0.2, "class_loss": "mean", "batch_size": 32,
                                      "pos_iou": 0.5, "ignore_iou": 0.0}),
    (["--demo"], {"optimizer": "adam", "class_loss": "hard_negative", "pos_iou": 0.4, "ignore_iou": 0.3}),
    (["--class-loss", "hard_negative", "--neg-ratio", "2"], {"optimizer": "adam", "class_loss": "hard_negative"}),
])
def test_cli_recipes(tiny_data, capsys, flags, expected):
    data = [] if "--demo" in flags else ["--data-dir", str(tiny_data)]
    assert ssd.main(["train", *data, "--epochs", "1", "--run-dir", "r", *TINY, *flags]) == 0
    result = last_json(capsys)
    if "--demo" in flags:  # evaluate after train --demo needs no data flags: it reads the same generated images
        code, evaluated, err = run(ssd.main, ["evaluate", "--run-dir", "r"], capsys)
        assert code == 0 and "note:" not in err, err
        assert evaluated["images"] == 8 and evaluated["map50"] == pytest.approx(result["val_map50"], abs=1e-6)
    assert np.isfinite(result["loss"]) and 0 <= result["val_map50"] <= 1
    saved = json.loads(open("r/config.json").read())
    # --preset book sets batch 32, but TINY's explicit --batch-size 8 wins over the preset
    assert {k: saved[k] for k in expected} == {**expected, **({"batch_size": 8} if "batch_size" in expected else {})}
    fields = ssd.Config.__dataclass_fields__
    model = ssd.build(ssd.Config(**{k: v for k, v in saved.items() if k in fields}))
    assert type(model.optimizer).__name__.lower() == expected["optimizer"]


@pytest.mark.parametrize("argv, code, message", [
    (["train", "--image-size", "100"], 2, "--image-size must be a positive multiple of 64, got 100"),
    (["train", "--nms-threshold", "0"], 2, "--nms-threshold must be in (0, 1], got 0.0"),
    (["evaluate"], 2, "no run found under runs/ssd"),
    (["train", "--pos-iou", "0.4", "--ignore-iou", "0.4"], 2, "--ignore-iou 0.4 must be below --pos-iou 0.4"),
    (["train", "--ignore-iou", "-0.1"], 2, "--ignore-iou must be in [0, 1), got -0.1"),
    (["train", "--ignore-iou", "0.6"], 2, "--ignore-iou 0.6 must be below --pos-iou 0.5"),
    (["train", "--data-dir", "nowhere"], 1, "--data-dir nowhere does not exist"),
])
def test_bad_usage_one_line(argv, code, message, capsys):
    assert ssd.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_ignored_band_follows_pos_iou():
    """--ignore-iou may reach up to just below --pos-iou (0.6 under 0.7), not a fixed 0.5."""
    ssd.Config(pos_iou=0.7, ignore_iou=0.6).validate()
    with pytest.raises(UsageError, match="must be below --pos-iou 0.7"):
        ssd.Config(pos_iou=0.7, ignore_iou=0.7).validate()


def test_unknown_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        ssd.main(["train", "--bbox-loss", "l3"])
    assert e.value.code == 2 and "invalid choice: 'l3'" in capsys.readouterr().err


def test_bad_data_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(banana, "URL", "http://127.0.0.1:9/banana-detection.zip")
    assert ssd.main(["train", "--source", "download", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "banana-detection" in err and "--demo" in err and len(err.splitlines()) == 1
    root = banana.generate_bananas(tmp_path / "b", num_train=2, num_val=2, seed=0)
    csv = root / "bananas_train" / "label.csv"
    csv.write_text(csv.read_text().replace("0.png,0,", "0.png,1,"))
    assert ssd.main(["train", "--data-dir", str(root), "--num-classes", "1", *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert "bananas_train/label.csv has class 1; pass --num-classes 2" in err and len(err.splitlines()) == 1


@pytest.mark.slow  # the README's main job, about 1-2 minutes
def test_demo_reaches_the_first_impression_target(capsys):
    # Issue 11: `train --demo` reaches val map50 >= 0.85 (0.884 when written, 2026-11-30, positives from IoU
    # 0.4) on its 256 validation images. Its picture (the first 8) boxes every banana with a box >= the
    # drawing threshold at IoU >= 0.5 and puts no such box off the bananas (IoU <= 0.1). Over all 256 images,
    # at most 2.5% of the boxes >= the threshold lie off the bananas (1.7% when written; 1.3-2.9% over seeds
    # 0-2; the earlier preset, positives from 0.5: 1.1% here, and 0 on the machine it was written on).
    assert ssd.main(["train", "--demo", "--run-dir", "demo"]) == 0
    result = last_json(capsys)
    assert result["val_map50"] >= 0.85, result
    cfg = ssd.Config(**{k: v for k, v in json.loads(open("demo/config.json").read()).items()
                        if k in ssd.Config.__dataclass_fields__})
    ctx = types.SimpleNamespace(data_dir=None)
    paths, labels, _ = ssd.load_split(ctx, cfg, "val")[:3]
    detector = ssd.make_detector(keras.models.load_model("demo/model.keras"), cfg.nms_threshold)
    _, batch = ssd.read_images(paths, cfg.image_size)
    dets = np.concatenate([detector(tf.constant(batch[i:i + 32])).numpy() for i in range(0, len(batch), 32)])
    drawn = off = 0
    for i, (d, lab) in enumerate(zip(dets, labels)):
        keep = d[(d[:, 0] >= 0) & (d[:, 1] >= ssd.DRAW_THRESHOLD)]
        iou = box_iou(tf.constant(keep[:, 2:]), tf.constant(lab[lab[:, 0] >= 0][:, 1:])).numpy()
        drawn, off = drawn + len(keep), off + int(np.sum(iou.max(axis=1, initial=0) <= 0.1))
        if i < 8:  # the picture
            assert len(keep) and (iou.max(axis=0) >= 0.5).all() and (iou.max(axis=1) > 0.1).all(), (i, keep)
    assert off <= 0.025 * drawn, (off, drawn)


@pytest.mark.slow  # 4 training runs (~90 s); the fast test_build_uses_the_resumable_schedule checks the schedule
def test_cosine_schedule_resumed_with_more_epochs_continues_without_a_jump(tmp_path, capsys, monkeypatch):
    # --demo's generated set, made tiny by TINY: 16 images of batch 8, 2 steps an epoch; cosine to 0 from 3e-3.
    run_dir = check_cosine_resume(ssd.main, ["--demo", *TINY], 2, 3e-3, 0.0, tmp_path, capsys, monkeypatch)
    # evaluate after train --demo needs no data flags: it reads the same generated images.
    code, evaluated, err = run(ssd.main, ["evaluate", "--run-dir", run_dir], capsys)
    assert code == 0, err
    last = json.loads((run_dir / "metrics.json").read_text())[-1]
    assert evaluated["images"] == 8 and evaluated["map50"] == pytest.approx(last["val_map50"], abs=1e-6)
    assert "note:" not in err  # no warning that other data is read


def test_generated_data_depends_on_data_seed_not_seed(tmp_path):
    ctx = types.SimpleNamespace(data_dir=None)
    read = lambda **kw: ssd.load_split(ctx, ssd.Config(train_images=4, val_images=2, **kw), "train")
    a, b, c = read(seed=0), read(seed=7), read(data_seed=1)
    assert list(a[0]) == list(b[0])  # the same files
    np.testing.assert_array_equal(a[1], b[1])
    assert Image.open(a[0][0]).tobytes() == Image.open(b[0][0]).tobytes()
    assert not np.array_equal(a[1], c[1])  # another --data-seed draws another set
    assert len(list((tmp_path / "cache" / "vision-demo").iterdir())) == 2


def test_resume_of_another_models_run_is_refused_before_any_data_is_made(tmp_path, capsys):
    """Refused in one line, with the run left byte-identical and no banana images generated (it took 30 s
    and 155 MB before the model check failed)."""
    from recsys import mf
    from tests.cli_helpers import tree_digest

    assert mf.main(["train", "--demo", "--epochs", "1", "--run-dir", "mf-run"]) == 0
    before = tree_digest("mf-run")
    capsys.readouterr()
    assert ssd.main(["train", "--demo", "--resume", "--run-dir", "mf-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mf-run was written by recsys.mf; use python -m recsys.mf train --resume" in err
    assert tree_digest("mf-run") == before
    assert not any(Path(tmp_path, "cache").rglob("*.png"))


def test_the_python_api_follows_a_notebook(capsys):
    """Cell by cell in one process: train twice with other settings and run directories, evaluate each run
    (the numbers train reported), load a model (it reproduces them), bad options raise UsageError."""
    tiny = dict(epochs=1, image_size=64, generated_size=64, train_images=16, val_images=8, batch_size=8,
                eval_every=1)
    first = ssd.train(ssd.Config(**tiny), demo=True, run_dir="first")
    second = ssd.train(ssd.Config(**tiny, lr=1e-3, class_loss="mean", seed=3), demo=True, run_dir="second")
    out = capsys.readouterr().out
    assert len(re.findall(r"^2/2 .*- loss: ", out, re.M)) == 2, out  # Keras's own progress line, once per run
    assert first["run_dir"] == "first" and second["run_dir"] == "second" and first["loss"] != second["loss"]
    saved = {d: json.loads(Path(d, "config.json").read_text()) for d in ("first", "second")}
    assert (saved["first"]["lr"], saved["first"]["class_loss"], saved["first"]["seed"]) == (3e-3, "hard_negative", 0)
    assert (saved["second"]["lr"], saved["second"]["class_loss"], saved["second"]["seed"]) == (1e-3, "mean", 3)
    for trained, run_dir in ((first, "first"), (second, "second")):
        evaluated = ssd.evaluate(run_dir)
        assert evaluated["map50"] == pytest.approx(trained["val_map50"], abs=1e-6)
        assert evaluated["class_err"] == pytest.approx(trained["val_class_err"], rel=1e-4)
    model = ssd.load("first")
    assert isinstance(model, ssd.TinySSD)
    config = ssd.Config(**{**ssd.DEMO, **tiny})
    root = banana.banana_root(None, "generated", 16, 8, 0, 1, 64)
    paths, labels, sizes = banana.read_bananas(root, "val")
    data = banana.batches(banana.decoded_dataset(paths, labels, sizes, 64), 8)
    dets, gt = ssd.detect_dataset(ssd.make_detector(model, config.nms_threshold), data)
    assert coco_map(gt, dets, sizes)["map50"] == pytest.approx(first["val_map50"], abs=1e-6)
    with pytest.raises(UsageError, match="--image-size must be a positive multiple of 64, got 100"):
        ssd.train(ssd.Config(image_size=100))
    with pytest.raises(UsageError, match="--threshold must be in"):
        ssd.predict("first", images=[str(paths[0])], threshold=2)
    with pytest.raises(UsageError, match="unknown option 'treshold'"):
        ssd.predict("first", images=[str(paths[0])], treshold=0.5)
