"""vision.detection_data (COCO and VOC readers, writers, format detection) and vision.detection_photos,
through vision.ssd: round trips of generated multi-class sets, bad input in one line, a tiny run on COCO."""
import json
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from common.errors import DatasetError
from tests.cli_helpers import one_line, run, tree_digest
from vision import detection_data, detection_photos, ssd

KINDS = ("banana", "star")


@pytest.fixture(scope="module")
def drawn():
    """6 train and 3 val images of 64 px with 1-3 sprites of 2 kinds; each split's second image's first
    object moved to `ignored` (COCO crowd, VOC difficult)."""
    out = {}
    for split, count, seed in (("train", 6, 0), ("val", 3, 1)):
        images, labels = detection_photos.generate(count, 64, seed, KINDS)
        ignored = np.full((count, 1, 5), -1, np.float32)
        ignored[1, 0], labels[1] = labels[1, 0], np.concatenate([labels[1, 1:], np.full((1, 5), -1)])
        out[split] = images, labels, ignored
    return out


def _write(root, fmt, drawn):
    for split, (images, labels, ignored) in drawn.items():
        sizes = np.full((len(images), 2), 64)
        if fmt == "coco":
            names = [f"{split}_{i}.png" for i in range(len(images))]
            detection_data.write_coco(root, split + "2017", names, sizes, labels, KINDS, ignored, images)
        else:
            detection_data.write_voc(root, split, [f"{split}_{i}" for i in range(len(images))], sizes, labels, KINDS,
                                     ignored, images)
    return root


def _rows(boxes):
    """Each image's real rows (padding dropped), as a list of arrays."""
    return [b[b[:, 0] >= 0] for b in boxes]


@pytest.mark.parametrize("fmt", ["coco", "voc"])
def test_generated_sets_round_trip_exactly(tmp_path, drawn, fmt):
    root = _write(tmp_path / fmt, fmt, drawn)
    assert detection_data.detect_format(root) == (fmt, root)
    for split, (images, labels, ignored) in drawn.items():
        got = detection_data.read_split(root, split, classes=KINDS if split == "val" else None)
        assert got.classes == KINDS and got.ignore_kind == ("crowd" if fmt == "coco" else "difficult")
        np.testing.assert_array_equal(got.sizes, np.full((len(images), 2), 64))
        for a, b in zip(_rows(got.labels), _rows(labels), strict=True):
            np.testing.assert_array_equal(a, b)  # whole-pixel boxes / 64 and classes, exactly
        for a, b in zip(_rows(got.ignored), _rows(ignored), strict=True):
            np.testing.assert_array_equal(a, b)
        assert len(_rows(got.ignored)[1]) == 1 and sum(map(len, _rows(got.ignored))) == 1
        assert set(np.unique(got.labels[..., 0])) == {-1, 0, 1}  # both kinds occur
        if fmt == "coco":  # PNG: the very pixels
            np.testing.assert_array_equal(np.asarray(Image.open(got.paths[2])), images[2])
    # VOC boxes are 1-based inclusive: a box over the whole image is written 1..64 and read 0..1
    if fmt == "voc":
        xml = (root / "Annotations" / "train_0.xml").read_text()
        first = _rows(drawn["train"][1])[0][0] * 64
        assert f"<xmin>{int(first[1]) + 1}</xmin>" in xml and f"<xmax>{int(first[3])}</xmax>" in xml


def test_pack_boxes_hand_values():
    rows = np.arange(15, dtype=np.float32).reshape(3, 5)
    packed = detection_data.pack_boxes([2, 0, 2], rows, 4)
    assert packed.shape == (4, 2, 5)
    np.testing.assert_array_equal(packed[0], [rows[1], [-1] * 5])
    np.testing.assert_array_equal(packed[2], rows[[0, 2]])
    assert (packed[[1, 3]] == -1).all()
    assert detection_data.pack_boxes([], np.zeros((0, 5)), 2).shape == (2, 1, 5)


def _coco_json(root):
    path = root / "annotations" / "instances_train2017.json"
    return path, json.loads(path.read_text())


def test_bad_input_is_one_line_naming_file_and_record(tmp_path, drawn, capsys):
    root = _write(tmp_path / "coco", "coco", drawn)
    path, data = _coco_json(root)
    argv = ["train", "--data-dir", root, "--image-size", "64", "--epochs", "1", "--run-dir", tmp_path / "run"]

    def fails(*parts):
        code, _, err = run(ssd.main, argv, capsys)
        assert code == 1
        one_line(err, *parts)
        assert not (tmp_path / "run").exists()

    (root / "train2017" / "train_3.png").unlink()
    fails("instances_train2017.json: image id 4 (train_3.png) not found in", "1 of 6 images missing")
    Image.fromarray(drawn["train"][0][3]).save(root / "train2017" / "train_3.png")
    for change, parts in (("bbox", ("annotation id 2 has bbox [", "outside its 64x64 image train_")),
                          ("category_id", ("annotation id 2 has unknown category_id 7",))):
        bad = json.loads(json.dumps(data))
        bad["annotations"][1][change] = [50, 50, 20, 10] if change == "bbox" else 7
        path.write_text(json.dumps(bad))
        fails("instances_train2017.json", *parts)
    path.write_text(json.dumps(data))
    _write(root, "voc", drawn)  # both formats in one folder
    fails(f"{root} holds several detection formats (coco, voc)", "--format coco|voc")
    # VOC: a box past its image, named by file and object
    voc = _write(tmp_path / "voc", "voc", drawn)
    xml = voc / "Annotations" / "val_2.xml"
    xml.write_text(xml.read_text().replace("<xmax>", "<xmax>9", 1))
    with pytest.raises(DatasetError, match=r"val_2.xml object 1: box .* is outside its 64x64 image"):
        detection_data.read_voc(voc, "val", KINDS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty holds no detection layout"):
        detection_data.detect_format(tmp_path / "empty")


def test_coco_without_a_val_split_names_the_files(tmp_path, drawn):
    root = _write(tmp_path / "coco", "coco", drawn)
    (root / "annotations" / "instances_val2017.json").rename(root / "annotations" / "instances_test2017.json")
    with pytest.raises(DatasetError, match="instances_test2017.json, instances_train2017.json: no split named "
                                           "with 'val'"):
        detection_data.read_split(root, "val")


def test_ssd_trains_and_evaluates_on_coco_with_class_names(tmp_path, drawn, capsys):
    root = _write(tmp_path / "coco", "coco", drawn)
    # the book's mean class loss: after one step every anchor still scores ~1/3 per class, so predict finds boxes
    tiny = ["--image-size", "64", "--batch-size", "6", "--epochs", "1", "--class-loss", "mean"]
    code, trained, err = run(ssd.main, ["train", "--data-dir", root, *tiny, "--run-dir", "r"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "classes.json").read_text()) == list(KINDS)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["num_classes"] == 2 and config["format"] == "auto"
    code, scores, err = run(ssd.main, ["evaluate", "--run-dir", "r"], capsys)
    assert code == 0, err
    assert scores["images"] == 3 and scores["map50"] == pytest.approx(trained["val_map50"], abs=1e-6)
    assert set(scores["class_ap50"]) == set(KINDS) and set(scores["class_ap"]) == set(KINDS)
    image = root / "val2017" / "val_0.png"
    code, predicted, err = run(ssd.main, ["predict", "--run-dir", "r", "--threshold", "0", image], capsys)
    assert code == 0, err
    assert predicted["detections"] > 0 and set(predicted["per_class"]) <= set(KINDS) and predicted["per_class"]
    assert sum(predicted["per_class"].values()) == predicted["detections"]
    # a val set with another category is refused before the run is touched
    before = tree_digest("r")
    other = tmp_path / "other"
    shutil.copytree(root, other)
    val = other / "annotations" / "instances_val2017.json"
    val.write_text(val.read_text().replace('"star"', '"moon"'))
    code, _, err = run(ssd.main, ["evaluate", "--run-dir", "r", "--data-dir", other], capsys)
    assert code == 1 and err.startswith("note: the run was trained on")  # the note, then the error
    one_line(err.split("\n", 1)[1], "categories banana, moon differ from the run's classes banana, star")
    assert tree_digest("r") == before


def _voc_examples():
    """Three TFDS `voc`-shaped examples: images of several sizes, boxes (ymin, xmin, ymax, xmax) normalized
    to whole pixels, labels, a difficult object."""
    rng = np.random.default_rng(0)
    out = []
    for (h, w), n in (((40, 50), 2), ((64, 48), 3), ((30, 30), 1)):
        lo = rng.integers(0, [h // 2, w // 2], (n, 2))
        hi = lo + rng.integers(4, [h // 2, w // 2], (n, 2))
        bbox = (np.concatenate([lo, hi], axis=1) / [h, w, h, w]).astype(np.float32)
        out.append({"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                    "objects": {"bbox": bbox, "label": rng.integers(0, 20, n), "is_difficult": np.arange(n) == 1}})
    return out


def test_tfds_voc_reads_the_examples_boxes_and_difficult_flags(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    from common import tfds_source

    examples = _voc_examples()

    def as_dataset(*args, **kwargs):  # TFDS's mock_data fills each field at random: boxes and labels disagree
        objects = {"bbox": tf.TensorSpec((None, 4), tf.float32), "label": tf.TensorSpec((None,), tf.int64),
                   "is_difficult": tf.TensorSpec((None,), tf.bool)}
        signature = {"image": tf.TensorSpec((None, None, 3), tf.uint8), "objects": objects}
        return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        ctx = types.SimpleNamespace(tfds={"name": "voc/2012", "data_dir": None},
                                    tfds_examples=lambda split: tfds_source.load("voc/2012", split))
        got = ssd.load_split(ctx, ssd.Config(), "val")
        again = ssd.load_split(ctx, ssd.Config(), "val")  # the cached COCO copy
        code, trained, err = run(ssd.main, ["train", "--tfds", "voc/2012", "--image-size", "64", "--batch-size", "3",
                                            "--epochs", "1", "--run-dir", "t"], capsys)
    assert got.classes == detection_data.VOC_DETECTION_CLASSES and got.ignore_kind == "difficult"
    np.testing.assert_array_equal(again.labels, got.labels)
    for i, e in enumerate(examples):
        h, w = e["image"].shape[:2]
        assert got.sizes[i].tolist() == [w, h]
        objects = e["objects"]
        ymin, xmin, ymax, xmax = objects["bbox"].T
        rows = np.column_stack([objects["label"], xmin, ymin, xmax, ymax])
        hard = objects["is_difficult"]
        for mine, theirs in ((got.labels[i], rows[~hard]), (got.ignored[i], rows[hard])):
            np.testing.assert_allclose(mine[mine[:, 0] >= 0], theirs, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(Image.open(got.paths[i])), e["image"])  # PNG: lossless
    assert code == 0, err
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["num_classes"] == 20 and config["data"]["source"] == "tfds"
    assert json.loads((tmp_path / "t" / "classes.json").read_text()) == list(detection_data.VOC_DETECTION_CLASSES)
