"""`vision.ssd export` and `vision.fcn export`: the exported models, run in a fresh TensorFlow-only process
on encoded image bytes, answer as `predict` does (its reader, resize, detector and segmenter)."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import one_line, run, tree_digest
from tests.export_helpers import call_exported, saved_model_cli_show
from vision import fcn, ssd

SSD_TINY = ["--demo", "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--train-images", "16",
            "--val-images", "8", "--eval-every", "1"]
FCN_TINY = ["--demo", "--epochs", "1", "--width", "8", "--crop", "64x64", "--shapes-train", "8", "--shapes-val", "2",
            "--shapes-size", "64-80", "--batch-size", "8"]


def _train_and_export(main, root, train_flags, export_flags):
    """Train a tiny run in `root/run` and export it (with TFLite) to `root/out`, in a cache of their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSUITE_CACHE", str(root / "cache"))
        mp.chdir(root)
        assert main(["train", *train_flags, "--run-dir", "run"]) == 0
        assert main(["export", "--run-dir", "run", "--out", "out", "--format", "tflite", *export_flags]) == 0
    return root / "run", root / "out"


def _test_images(images, tmp_path):
    """Three demo images, a non-square crop of the first (PNG) and the second as a JPEG."""
    Image.open(images[0]).convert("RGB").crop((0, 0, 60, 44)).save(tmp_path / "wide.png")
    Image.open(images[1]).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    return [*images[:3], tmp_path / "wide.png", tmp_path / "photo.jpg"]


# --- SSD ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ssd_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssd")
    run_dir, out = _train_and_export(ssd.main, root, SSD_TINY, [])
    return run_dir, out, sorted(root.glob("cache/**/bananas_val/images/*.png"))


def test_ssd_export_answers_as_predict(ssd_export, tmp_path):
    import tensorflow as tf

    from vision.detection_draw import read_images

    run_dir, out, val_images = ssd_export
    paths = _test_images(val_images, tmp_path)
    originals, batch = read_images(paths, 64)  # predict's reader and resize
    nms = json.loads((run_dir / "config.json").read_text())["nms_threshold"]
    dets = ssd.make_detector(ssd.load(run_dir), nms)(tf.constant(batch)).numpy()  # predict's detector
    count = (dets[..., 0] >= 0).sum(axis=1)
    encoded = [p.read_bytes() for p in paths]
    got, corrupt, again = call_exported(out, [{"images": encoded}, {"images": [encoded[0], b"GIF89a not really"]},
                                              {"images": encoded[:1]}], allow_errors=True)
    assert got["num_detections"].tolist() == count.tolist() and count.min() > 0
    scale = np.array([[im.width, im.height, im.width, im.height] for im in originals], np.float32)[:, None]
    for i, n in enumerate(count):
        assert got["classes"][i, :n].tolist() == dets[i, :n, 0].astype(int).tolist()
        np.testing.assert_allclose(got["scores"][i, :n], dets[i, :n, 1], rtol=0, atol=1e-4)
        np.testing.assert_allclose(got["boxes"][i, :n], dets[i, :n, 2:] * scale[i], rtol=0, atol=1e-2)  # pixels
        assert (got["classes"][i, n:] == -1).all() and not got["scores"][i, n:].any() and not got["boxes"][i, n:].any()
    assert got["boxes"].shape == (5, 100, 4) and got["classes"].dtype == np.int32
    # a corrupt image fails its request with the decoder's error; the serving process answers the next one
    assert corrupt["__error__"].startswith("InvalidArgumentError") and "decode" in corrupt["__error__"].lower()
    np.testing.assert_array_equal(again["scores"][0], got["scores"][0])
    assert ssd.predict(run_dir, images=paths, threshold=0.0, out=tmp_path / "drawn")["detections"] == count.sum()
    assert (out / "labels.txt").read_text() == "banana\n"
    assert "InvalidArgumentError" in (out / "README.txt").read_text()


@pytest.mark.slow  # two more TensorFlow processes (~15 s)
def test_ssd_tflite_and_saved_model_cli(ssd_export, tmp_path):
    import tensorflow as tf

    from vision.detection_draw import read_images

    run_dir, out, val_images = ssd_export
    paths = _test_images(val_images, tmp_path)
    _, batch = read_images(paths, 64)
    nms = json.loads((run_dir / "config.json").read_text())["nms_threshold"]
    dets = ssd.make_detector(ssd.load(run_dir), nms)(tf.constant(batch)).numpy()
    count = (dets[..., 0] >= 0).sum(axis=1)
    lite = call_exported(out, [{"images": batch[i:i + 1]} for i in range(len(paths))], tflite=True)
    for i, n in enumerate(count):
        assert lite[i]["num_detections"].tolist() == [n]
        assert lite[i]["classes"][0, :n].tolist() == dets[i, :n, 0].astype(int).tolist()
        assert (lite[i]["classes"][0, n:] == -1).all()
        np.testing.assert_allclose(lite[i]["scores"][0, :n], dets[i, :n, 1], rtol=0, atol=1e-3)
        np.testing.assert_allclose(lite[i]["boxes"][0, :n], dets[i, :n, 2:] * 64, rtol=0, atol=64e-3)
    shown = saved_model_cli_show(out)
    assert "signature_def['serving_default']" in shown and "inputs['images'] tensor_info" in shown
    assert all(f"outputs['{k}']" in shown for k in ("boxes", "scores", "classes", "num_detections"))


def test_ssd_export_refuses_a_non_empty_out(ssd_export, tmp_path, capsys):
    run_dir = ssd_export[0]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "saved_model.pb").write_bytes(b"someone else's")
    before, out_before = tree_digest(run_dir), tree_digest(tmp_path / "out")
    code, _, err = run(ssd.main, ["export", "--run-dir", run_dir, "--out", tmp_path / "out"], capsys)
    assert code == 2
    one_line(err, "--out", "not empty")
    assert tree_digest(run_dir) == before and tree_digest(tmp_path / "out") == out_before
    with pytest.raises(SystemExit) as exit_code:
        ssd.main(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "new"), "--max-detections", "0"])
    assert exit_code.value.code == 2 and "--max-detections" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert tree_digest(run_dir) == before


# --- FCN ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fcn_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("fcn")
    run_dir, out = _train_and_export(fcn.main, root, FCN_TINY, ["--probabilities"])
    return run_dir, out, sorted(root.glob("cache/**/JPEGImages/*.jpg"))


@pytest.mark.slow  # a ResNet trained and exported, three TensorFlow processes (~45 s of CPU)
def test_fcn_export_answers_as_predict(fcn_export, tmp_path):
    import tensorflow as tf

    run_dir, out, images = fcn_export
    paths = _test_images(images, tmp_path)
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in paths]  # as predict reads them
    model = fcn.load(run_dir)
    want = [fcn.segment(model, image) for image in pixels]  # predict's segmenter
    got, corrupt = call_exported(out, [{"images": [p.read_bytes() for p in paths]}, {"images": [b"\x89PNG\r\n"]}],
                                 allow_errors=True)
    assert got["image_size"].tolist() == [list(w.shape) for w in want]
    height, width = max(w.shape[0] for w in want), max(w.shape[1] for w in want)
    classes = int(model.output_shape[-1])  # the data's 6 shape classes (background first)
    assert got["classes"].shape == (5, height, width) and got["probabilities"].shape == (5, height, width, classes)
    assert len((out / "labels.txt").read_text().splitlines()) == classes
    for i, (image, classes) in enumerate(zip(pixels, want)):
        h, w = classes.shape
        np.testing.assert_array_equal(got["classes"][i, :h, :w], classes)
        assert (got["classes"][i, h:] == -1).all() and (got["classes"][i, :, w:] == -1).all()
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        padded = np.zeros((1, ph, pw, 3), np.float32)
        padded[0, :h, :w] = image
        probs = tf.nn.softmax(model(padded)[0, :h, :w]).numpy()
        np.testing.assert_allclose(got["probabilities"][i, :h, :w], probs, rtol=0, atol=1e-4)
    assert corrupt["__error__"].startswith("InvalidArgumentError") and "png" in corrupt["__error__"].lower()

    crop = pixels[0][:64, :64]  # the TFLite model's input: an image of the training crop's size
    lite = call_exported(out, {"image": crop[None]}, tflite=True)
    np.testing.assert_array_equal(lite["classes"][0], fcn.segment(model, crop))
    np.testing.assert_allclose(lite["probabilities"][0], tf.nn.softmax(model(crop[None].astype(np.float32))[0]),
                               rtol=0, atol=1e-3)
    shown = saved_model_cli_show(out)
    assert "inputs['images'] tensor_info" in shown and "outputs['classes']" in shown
    assert "outputs['probabilities']" in shown and "outputs['image_size']" in shown
    assert (out / "labels.txt").read_text().split() == ["background", "circle", "square", "triangle", "cross", "star"]
