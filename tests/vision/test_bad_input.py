"""The vision bad-input matrix (issue 28): every reader of the domain (banana label.csv and images, VOC lists,
class names, JPEG images and label PNGs, the photograph set) on an empty file, a header-only file (label.csv),
binary garbage, text of another encoding, a truncated or corrupted image and an image of another format gives
one line naming the file and exit 1, before any model is built; every `--out` that is a file or cannot be
written is refused the same way before any work, and leaves the run byte-identical."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from common.data import checked_image_size
from common.errors import DatasetError
from tests.cli_helpers import one_line, run, tree_digest
from vision import banana, fcn, fcn_model, photo_segmentation, ssd, ssd_model, voc

GARBAGE = bytes(range(256)) * 4 + b"\x00\xff\xfe" * 64
BANANA_HEADER = b"img_name,label,xmin,ymin,xmax,ymax\n"
SSD_TINY = ["--image-size", "64", "--batch-size", "4", "--train-images", "8", "--val-images", "4", "--epochs", "1"]
FCN_TINY = ["--width", "8", "--crop", "64x64", "--scale", "1-1", "--jitter", "0", "--batch-size", "4", "--epochs", "1",
            "--val-every", "1"]


def truncated(path, keep=0.6):
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])


def corrupted(path):
    """Zero 200 bytes in the middle of the image data (the header still reads)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = bytes(200)
    path.write_bytes(bytes(data))


def as_tiff(path):
    with Image.open(path) as img:
        img.load()
        img.save(path, format="TIFF")


# --- the shared image check ---------------------------------------------------------------
def test_checked_image_size_reads_every_byte(tmp_path):
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert checked_image_size(tmp_path / "a.png") == (60, 40) == checked_image_size(tmp_path / "a.jpg", {"JPEG"})
    for name, damage in (("a.png", truncated), ("a.jpg", truncated), ("a.png", corrupted)):
        shutil.copy(tmp_path / name, tmp_path / f"bad-{name}")
        damage(tmp_path / f"bad-{name}")
        with Image.open(tmp_path / f"bad-{name}") as img:
            assert img.size == (60, 40)  # the header alone reads fine: what the readers checked before
        with pytest.raises(DatasetError, match="is not a readable image .*replace it with an intact copy"):
            checked_image_size(tmp_path / f"bad-{name}")
    with pytest.raises(DatasetError, match="a.png is a PNG file; a VOC image must be JPEG"):
        checked_image_size(tmp_path / "a.png", {"JPEG"}, "VOC image")


# --- banana-detection (vision.ssd) ----------------------------------------------------------
@pytest.fixture(scope="module")
def bananas(tmp_path_factory):
    return banana.generate_bananas(tmp_path_factory.mktemp("bananas") / "set", num_train=8, num_val=4, seed=1)


def _label(root):
    return root / "bananas_train" / "label.csv"


def _image(root):
    return root / "bananas_train" / "images" / "0.png"


BANANA_CASES = {
    "label.csv empty": (_label, lambda p: p.write_bytes(b""), "header must be img_name,label,xmin,ymin,xmax,ymax"),
    "label.csv header only": (_label, lambda p: p.write_bytes(BANANA_HEADER), "lists no images"),
    "label.csv binary garbage": (_label, lambda p: p.write_bytes(GARBAGE), "is not a CSV text file"),
    "label.csv in UTF-16": (_label, lambda p: p.write_text(BANANA_HEADER.decode(), encoding="utf-16"),
                            "is not a CSV text file"),
    "image empty": (_image, lambda p: p.write_bytes(b""), "is not a readable banana image"),
    "image binary garbage": (_image, lambda p: p.write_bytes(GARBAGE), "is not a readable banana image"),
    "image truncated": (_image, truncated, "is not a readable banana image"),
    "image corrupted": (_image, corrupted, "is not a readable banana image"),
    "image of a format TensorFlow cannot decode": (_image, as_tiff, "is a TIFF file; a banana image must be"),
}


@pytest.mark.parametrize("case", list(BANANA_CASES))
def test_banana_reader(bananas, tmp_path, capsys, case):
    where, damage, message = BANANA_CASES[case]
    root = tmp_path / "data"
    shutil.copytree(bananas, root)
    damage(where(root))
    with pytest.raises(DatasetError, match=message):
        banana.read_bananas(root, "train")
    code, _, err = run(ssd.main, ["train", "--data-dir", root, *SSD_TINY, "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(where(root)), message)


def test_banana_utf8_byte_order_mark_is_read(bananas, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bananas, root)
    text = _label(root).read_text()
    _label(root).write_text("\ufeff" + text, encoding="utf-8")  # as a spreadsheet saves CSV
    paths, labels, _ = banana.read_bananas(root, "train")
    assert len(paths) == 8 and labels.shape == (8, 1, 5)


# --- VOC2012 layout (vision.fcn) ------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc") / "set"
    voc.generate_shapes_voc(root, num_train=4, num_val=2, size=(64, 80), seed=0)
    return root


def _voc(root):
    return root / "VOCdevkit" / "VOC2012"


VOC_CASES = {
    "train.txt empty": (lambda r: _voc(r) / "ImageSets" / "Segmentation" / "train.txt", lambda p: p.write_bytes(b""),
                        "lists no images"),
    "train.txt binary garbage": (lambda r: _voc(r) / "ImageSets" / "Segmentation" / "train.txt",
                                 lambda p: p.write_bytes(GARBAGE), "is not a text file"),
    "class_names.txt empty": (lambda r: _voc(r) / "class_names.txt", lambda p: p.write_bytes(b""), "names 0 classes"),
    "class_names.txt binary garbage": (lambda r: _voc(r) / "class_names.txt", lambda p: p.write_bytes(GARBAGE),
                                       "cannot read"),
    "image empty": (lambda r: _voc(r) / "JPEGImages" / "shapes_000001.jpg", lambda p: p.write_bytes(b""),
                    "is not a readable VOC image"),
    "image binary garbage": (lambda r: _voc(r) / "JPEGImages" / "shapes_000001.jpg", lambda p: p.write_bytes(GARBAGE),
                             "is not a readable VOC image"),
    "image truncated": (lambda r: _voc(r) / "JPEGImages" / "shapes_000001.jpg", truncated,
                        "is not a readable VOC image"),
    "image that is a PNG": (lambda r: _voc(r) / "JPEGImages" / "shapes_000001.jpg",
                            lambda p: Image.open(p).convert("RGB").save(p, format="PNG"),
                            "is a PNG file; a VOC image must be JPEG"),
    "label empty": (lambda r: _voc(r) / "SegmentationClass" / "shapes_000001.png", lambda p: p.write_bytes(b""),
                    "is not a readable label PNG"),
    "label binary garbage": (lambda r: _voc(r) / "SegmentationClass" / "shapes_000001.png",
                             lambda p: p.write_bytes(GARBAGE), "is not a readable label PNG"),
    "label truncated": (lambda r: _voc(r) / "SegmentationClass" / "shapes_000001.png", lambda p: truncated(p, 0.5),
                        "is not a readable label PNG"),
    "label in colour": (lambda r: _voc(r) / "SegmentationClass" / "shapes_000001.png",
                        lambda p: Image.open(p).convert("RGB").save(p), "label is a RGB image"),
}


@pytest.mark.parametrize("case", list(VOC_CASES))
def test_voc_reader(shapes, tmp_path, capsys, case):
    where, damage, message = VOC_CASES[case]
    root = tmp_path / "data"
    shutil.copytree(shapes, root)
    damage(where(root))
    with pytest.raises(DatasetError, match=message):
        images, labels = voc.read_split(_voc(root), "train")
        voc.check_split(images, labels, num_classes=len(voc.class_names(_voc(root))))
    code, _, err = run(fcn.main, ["train", "--data-dir", root, *FCN_TINY, "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(where(root)), message)
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_photo_set_with_a_truncated_photograph(tmp_path, capsys):
    root = photo_segmentation.generate_photo_voc(tmp_path / "photos", num_train=1, num_val=1, seed=0)
    truncated(root / "JPEGImages" / "photo_000000.jpg", 0.7)
    code, _, err = run(fcn.main, ["train", "--data-dir", tmp_path / "photos", *FCN_TINY, "--run-dir", tmp_path / "r"],
                       capsys)
    assert code == 1
    one_line(err, str(root / "JPEGImages" / "photo_000000.jpg"), "is not a readable VOC image")


# --- output folders ---------------------------------------------------------------------------
def _unwritable():
    """A folder path that cannot be created even by root (/proc refuses new entries)."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc on this system")
    return "/proc/dlsuite-out"


@pytest.mark.parametrize("target", ["file", "under a file", "unwritable"])
def test_photo_segmentation_out(tmp_path, capsys, monkeypatch, target):
    (tmp_path / "taken").write_text("keep me")
    out = {"file": tmp_path / "taken", "under a file": tmp_path / "taken" / "sub", "unwritable": _unwritable()}[target]
    monkeypatch.setattr(photo_segmentation, "sample_photographs", lambda: pytest.fail("loaded photographs"))
    code, _, err = run(photo_segmentation.main, ["--out", out, "--train", 1, "--val", 1], capsys)
    assert code == 1
    one_line(err, "--out", str(out) if target != "under a file" else str(tmp_path / "taken"))
    assert (tmp_path / "taken").read_text() == "keep me"


@pytest.fixture(scope="module")
def ssd_run(tmp_path_factory, bananas):
    root = tmp_path_factory.mktemp("ssd")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSUITE_CACHE", str(root / "cache"))
        assert ssd.main(["train", "--data-dir", str(bananas), *SSD_TINY, "--run-dir", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def fcn_run(tmp_path_factory, shapes):
    root = tmp_path_factory.mktemp("fcn")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSUITE_CACHE", str(root / "cache"))
        assert fcn.main(["train", "--data-dir", str(shapes), *FCN_TINY, "--run-dir", str(root / "run")]) == 0
    return root / "run"


def _predict_case(tmp_path, target, image_source):
    """(--out value, image path, the text the one error line must hold) of one predict case."""
    (tmp_path / "taken").write_text("keep me")
    image = tmp_path / "input.png"
    shutil.copy(image_source, image)
    if target == "a damaged image":
        image.write_bytes(GARBAGE)
        return tmp_path / "out", image, str(image)
    out = {"file": tmp_path / "taken", "under a file": tmp_path / "taken" / "sub", "unwritable": _unwritable()}[target]
    return out, image, str(out) if target != "under a file" else str(tmp_path / "taken")


@pytest.mark.parametrize("target", ["file", "under a file", "unwritable", "a damaged image"])
def test_ssd_predict_out(ssd_run, bananas, tmp_path, capsys, monkeypatch, target):
    out, image, needle = _predict_case(tmp_path, target, bananas / "bananas_val" / "images" / "0.png")
    before = tree_digest(ssd_run)
    monkeypatch.setattr(ssd_model, "restore", lambda ctx: pytest.fail("the model was restored before the check"))
    code, _, err = run(ssd.main, ["predict", image, "--out", out, "--run-dir", ssd_run], capsys)
    assert code == 1
    one_line(err, needle)
    assert tree_digest(ssd_run) == before and (tmp_path / "taken").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_ssd_predict_default_out_is_the_run_directory(ssd_run, bananas, tmp_path, capsys):
    code, result, err = run(ssd.main, ["predict", bananas / "bananas_val" / "images" / "0.png", "--run-dir", ssd_run],
                            capsys)
    assert code == 0, err
    assert result["out"] == str(ssd_run / "predictions") and (ssd_run / "predictions" / "0_pred.png").is_file()
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "predictions").exists()


@pytest.mark.parametrize("target", ["file", "under a file", "unwritable", "a damaged image"])
def test_fcn_predict_out(fcn_run, shapes, tmp_path, capsys, monkeypatch, target):
    out, image, needle = _predict_case(tmp_path, target, _voc(shapes) / "JPEGImages" / "shapes_000004.jpg")
    before = tree_digest(fcn_run)
    monkeypatch.setattr(fcn_model, "restore", lambda ctx: pytest.fail("the model was restored before the check"))
    code, _, err = run(fcn.main, ["predict", image, "--out", out, "--run-dir", fcn_run], capsys)
    assert code == 1
    one_line(err, needle)
    assert tree_digest(fcn_run) == before and (tmp_path / "taken").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_fcn_predict_default_out_is_the_run_directory(fcn_run, shapes, tmp_path, capsys):
    image = _voc(shapes) / "JPEGImages" / "shapes_000004.jpg"
    code, result, err = run(fcn.main, ["predict", image, "--run-dir", fcn_run], capsys)
    assert code == 0, err
    assert result["out"] == str(fcn_run / "predictions")
    assert (fcn_run / "predictions" / "shapes_000004_overlay.png").is_file()
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "predictions").exists()


# --- backbone weight files (vision.resnet) ---------------------------------------------------
@pytest.mark.parametrize("case", ["empty", "binary garbage", "a tensor, not a state dict", "output under a file",
                                  "output unwritable", "output is a folder"])
def test_resnet_conversion(tmp_path, capsys, case):
    torch = pytest.importorskip("torch")
    from vision import resnet

    source, out = tmp_path / "resnet18.pth", tmp_path / "o.weights.h5"
    source.write_bytes(GARBAGE if case == "binary garbage" else b"")
    if case == "a tensor, not a state dict":
        torch.save(torch.zeros(3), source)
    if case == "output under a file":
        out = source / "o.weights.h5"
    elif case == "output unwritable":
        out = f"{_unwritable()}/o.weights.h5"
    elif case == "output is a folder":
        out = tmp_path / "dir.weights.h5"
        out.mkdir()
    code, _, err = run(resnet.main, ["convert-torchvision", source, out], capsys)
    assert code == 1
    needle = {"output under a file": f"the output folder {source} is a file", "output is a folder": "is a folder",
              "output unwritable": "the output folder /proc/dlsuite-out cannot be written",
              "a tensor, not a state dict": "holds a Tensor, not a state dict"}.get(case, f"cannot read {source}")
    one_line(err, needle)


@pytest.mark.parametrize("content", [b"", GARBAGE], ids=["empty", "binary garbage"])
def test_backbone_weights_file(shapes, tmp_path, capsys, content):
    (tmp_path / "w.weights.h5").write_bytes(content)
    code, _, err = run(fcn.main, ["train", "--data-dir", shapes, *FCN_TINY, "--head", "fcn32s",
                                  "--backbone-weights", tmp_path / "w.weights.h5", "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, f"--backbone-weights {tmp_path / 'w.weights.h5'}: cannot load")
