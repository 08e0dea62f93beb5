"""vision.mask_folders (images/ beside masks/ with classes.txt) through vision.fcn: round trip, detection of the
layout, bad input in one line naming the file, a tiny run whose scores carry the set's class names."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import one_line, run
from vision import fcn, fcn_model, mask_folders, photo_segmentation, voc


@pytest.fixture(scope="module")
def drawn():
    """Photograph samples (96 x 96, shape classes 1-5, 255 boundaries): 8 train, 2 val."""
    rng, photos = np.random.default_rng(0), photo_segmentation.sample_photographs()
    return {split: [photo_segmentation.draw_sample(rng, photos, 96, 96) for _ in range(n)]
            for split, n in (("train", 8), ("val", 2))}


def _write(root, drawn):
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in voc.SHAPE_NAMES))
    for split, pairs in drawn.items():
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i, (image, label) in enumerate(pairs):
            suffix = ".png" if split == "train" else ".jpg"  # both kinds of image
            Image.fromarray(image).save(root / split / "images" / f"p{i}{suffix}")
            Image.fromarray(label, mode="L").save(root / split / "masks" / f"p{i}.png")  # greyscale indices
    return root


def test_the_layout_round_trips_and_is_detected(tmp_path, drawn):
    root = _write(tmp_path / "set", drawn)
    assert mask_folders.detect_format(tmp_path) == ("masks", root)  # one folder down
    assert fcn_model.class_names(root) == voc.SHAPE_NAMES
    images, labels, sizes = fcn_model._split(root, "train")
    assert [p.name for p in images] == [f"p{i}.png" for i in range(8)] and sizes.tolist() == [[96, 96]] * 8
    for path, label, (image, expected) in zip(images, labels, drawn["train"]):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
        np.testing.assert_array_equal(voc.read_label(label), expected)
    assert set(np.unique(voc.read_label(labels[0]))) <= {0, 1, 2, 3, 4, 5, 255}
    # VOC's layout beside it: one line naming both
    voc.generate_shapes_voc(tmp_path, num_train=1, num_val=1, size=(64, 64), seed=0)
    with pytest.raises(Exception, match="holds several segmentation formats .*--format masks|voc"):
        mask_folders.detect_format(tmp_path)
    assert mask_folders.detect_format(tmp_path, "masks") == ("masks", root)


TINY = ["--width", "8", "--crop", "64x64", "--batch-size", "4", "--epochs", "1", "--val-every", "1", "--scale", "1-1",
        "--jitter", "0", "--head", "fcn32s"]


def test_fcn_trains_and_evaluates_with_the_sets_class_names(tmp_path, drawn, capsys):
    root = _write(tmp_path / "set", drawn)
    code, _, err = run(fcn.main, ["train", "--data-dir", root, *TINY, "--run-dir", "r"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "classes.json").read_text()) == list(voc.SHAPE_NAMES)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["format"] == "auto" and config["num_classes"] == 6  # the outputs follow classes.txt
    code, scores, err = run(fcn.main, ["evaluate", "--run-dir", "r"], capsys)
    assert code == 0, err
    assert scores["images"] == 2 and scores["iou"] and set(scores["iou"]) <= set(voc.SHAPE_NAMES)
    # a set naming other classes is refused, not scored under the wrong names
    (root / "classes.txt").write_text("background\ncat\ndog\nbird\nfish\nfrog\n")
    code, _, err = run(fcn.main, ["evaluate", "--run-dir", "r", "--data-dir", root], capsys)
    assert code == 1 and "names its classes background, cat" in err and "trained on background, circle" in err


def test_bad_input_is_one_line_naming_the_file(tmp_path, drawn, capsys):
    root = _write(tmp_path / "set", drawn)
    argv = ["train", "--data-dir", root, *TINY, "--run-dir", tmp_path / "run"]

    def fails(*parts):
        code, _, err = run(fcn.main, argv, capsys)
        assert code == 1
        one_line(err, *parts)
        assert not (tmp_path / "run").exists()

    mask = root / "train" / "masks" / "p3.png"
    Image.fromarray(drawn["train"][3][1][:80], mode="L").save(mask)  # 96 x 80
    fails(f"{mask} is 96x80 but {root / 'train' / 'images' / 'p3.png'} is 96x96")
    high = drawn["train"][3][1].copy()
    high[5, 5] = 6  # classes.txt names 0-5
    Image.fromarray(high, mode="L").save(mask)
    fails(f"{mask} has class index 6, but {root / 'classes.txt'} names only 6 classes (0-5)")
    (root / "train" / "images" / "p3.png").unlink()
    fails(f"{mask} has no image", "add it or remove the mask")
    (root / "classes.txt").write_text("background\n")
    fails("classes.txt names 1 classes; write 2-254 distinct class names")
