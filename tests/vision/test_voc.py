"""VOC2012 segmentation reader, pipelines and offline generator."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common.errors import DatasetError
from vision import voc


def _write_voc(root, labels, images=None, split="train"):
    """A minimal VOC2012 tree with the given (H, W) uint8 labels; images default to grey."""
    base = root / "VOCdevkit" / "VOC2012"
    for sub in voc.VOC_REQUIRED:
        (base / sub).mkdir(parents=True, exist_ok=True)
    names = [f"2007_{i:06d}" for i in range(len(labels))]
    for i, (name, label) in enumerate(zip(names, labels)):
        image = images[i] if images is not None else np.full((*label.shape, 3), 128, np.uint8)
        Image.fromarray(image).save(base / "JPEGImages" / f"{name}.jpg", quality=100, subsampling=0)
        voc.write_label(base / "SegmentationClass" / f"{name}.png", label)
    (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return base


def test_palette_matches_the_devkit_colours():
    palette = voc.voc_palette()
    # Values from the VOC devkit / the book's VOC_COLORMAP.
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[5].tolist() == [128, 0, 128]
    assert palette[15].tolist() == [192, 128, 128]
    assert palette[20].tolist() == [0, 64, 128]
    assert palette[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in palette}) == 256


def test_label_png_round_trips_as_palette_indices(tmp_path):
    label = np.array([[0, 1, 255], [20, 7, 0]], np.uint8)
    voc.write_label(tmp_path / "l.png", label)
    with Image.open(tmp_path / "l.png") as img:
        assert img.mode == "P"
        assert np.asarray(img.convert("RGB"))[0, 1].tolist() == [128, 0, 0]
    np.testing.assert_array_equal(voc.read_label(tmp_path / "l.png"), label)


def test_generator_writes_the_voc_layout_with_boundaries(tmp_path):
    root = voc.generate_shapes_voc(tmp_path / "a", num_train=6, num_val=3, size=(64, 80), seed=3)
    images, labels = voc.read_split(root, "train")
    assert len(images) == 6 and len(voc.read_split(root, "val")[0]) == 3
    sizes = voc.check_split(images, labels)
    assert (sizes >= 64).all() and (sizes <= 80).all()
    values = np.concatenate([voc.read_label(p).ravel() for p in labels])
    assert set(np.unique(values)) <= {0, 1, 2, 3, 4, 5, 255}
    assert (values == 255).any() and (values == 0).any() and ((values > 0) & (values < 255)).any()
    with Image.open(labels[0]) as img:
        assert img.mode == "P"
    again = voc.generate_shapes_voc(tmp_path / "b", num_train=6, num_val=3, size=(64, 80), seed=3)
    np.testing.assert_array_equal(voc.read_label(labels[4]), voc.read_label(again / "SegmentationClass" /
                                                                           labels[4].name))


def test_shapes_voc_is_cached_and_resolvable_as_a_data_dir(tmp_path):
    root = voc.shapes_voc(num_train=4, num_val=2, size=(64, 64), seed=0)
    stamp = (root / "SegmentationClass" / "shapes_000000.png").stat().st_mtime_ns
    assert voc.shapes_voc(num_train=4, num_val=2, size=(64, 64), seed=0) == root
    assert (root / "SegmentationClass" / "shapes_000000.png").stat().st_mtime_ns == stamp
    # --data-dir holds the folder with VOCdevkit/ (or any level down to VOC2012/).
    assert voc.voc_root(root.parent.parent) == root
    assert voc.voc_root(root) == root


def test_generated_sets_name_their_classes_and_real_voc_keeps_the_voc_names(tmp_path):
    root = voc.generate_shapes_voc(tmp_path / "a", num_train=2, num_val=1, size=(64, 64), seed=0)
    assert (root / "class_names.txt").read_text() == "background\ncircle\nsquare\ntriangle\ncross\nstar\n"
    assert voc.class_names(root) == voc.SHAPE_NAMES == ("background", "circle", "square", "triangle", "cross", "star")
    # A VOCdevkit records no names: index c is VOC_CLASSES[c].
    base = _write_voc(tmp_path / "voc", [np.zeros((40, 40), np.uint8)])
    assert voc.class_names(base) == voc.VOC_CLASSES and voc.class_names(base)[1] == "aeroplane"
    (base / "class_names.txt").write_text("background\nroad\ncar\n\n")  # trailing blank lines are fine
    assert voc.class_names(base) == ("background", "road", "car")


def test_bumped_generator_version_writes_a_fresh_set_instead_of_reusing_the_old(monkeypatch, tmp_path):
    old = voc.shapes_voc(num_train=2, num_val=1, size=(64, 64), seed=0)
    assert old.parent.parent.name == "shapes-voc-2-1-64-64-seed0-v1"
    (old / "SegmentationClass" / "shapes_000000.png").write_bytes(b"stale")  # what an older generator left
    monkeypatch.setattr(voc, "GENERATOR_VERSION", 2)
    new = voc.shapes_voc(num_train=2, num_val=1, size=(64, 64), seed=0)
    assert new.parent.parent.name == "shapes-voc-2-1-64-64-seed0-v2" and new.parent.parent.parent == old.parent.parent.parent
    assert (new / "SegmentationClass" / "shapes_000000.png").read_bytes()[:4] == b"\x89PNG"
    assert voc.read_label(voc.read_split(new, "train")[1][0]).shape == (64, 64)


def test_cache_written_before_class_names_gets_the_file_without_redrawing(tmp_path):
    root = voc.shapes_voc(num_train=2, num_val=1, size=(64, 64), seed=0)
    (root / "class_names.txt").unlink()  # as the generator left its cache before class_names.txt
    stamp = (root / "JPEGImages" / "shapes_000000.jpg").stat().st_mtime_ns
    assert voc.shapes_voc(num_train=2, num_val=1, size=(64, 64), seed=0) == root
    assert voc.class_names(root) == voc.SHAPE_NAMES
    assert (root / "JPEGImages" / "shapes_000000.jpg").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("text, message", [
    ("background\n", "names 1 classes; the model has 21 outputs"),
    ("".join(f"c{i}\n" for i in range(22)), "names 22 classes"),
    ("circle\nsquare\n", "the first name is 'circle', but index 0 is the background"),
    ("background\n\ncircle\n", "line 2 is empty"),
    ("background\ncircle\ncircle\n", "names 'circle' twice"),
    (b"background\n\xff\n", "cannot read"),
])
def test_bad_class_names_file_is_one_line_error(tmp_path, text, message):
    base = _write_voc(tmp_path, [np.zeros((40, 40), np.uint8)])
    path = base / "class_names.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DatasetError) as e:
        voc.class_names(base)
    assert str(path) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)
    assert "background first" in str(e.value) and "delete it" in str(e.value)


def test_labels_past_the_named_classes_name_the_class_names_file(tmp_path):
    label = np.zeros((40, 40), np.uint8)
    label[5, 5] = 3
    base = _write_voc(tmp_path, [label])
    images, labels = voc.read_split(base, "train")
    assert voc.check_split(images, labels, num_classes=4).tolist() == [[40, 40]]
    with pytest.raises(DatasetError, match=r"2007_000000\.png has class index 3, but .*class_names\.txt names only 3 "
                                           r"classes \(0-2\); add the missing names to it"):
        voc.check_split(images, labels, num_classes=3, names_file=base / "class_names.txt")
    label[6, 6] = 30  # no name could cover it: the model has 21 outputs
    voc.write_label(labels[0], label)
    with pytest.raises(DatasetError, match=r"2007_000000\.png has unknown class index 30; labels are 0-3 \(the classes "
                                           r".*class_names\.txt names\) and 255"):
        voc.check_split(images, labels, num_classes=4, names_file=base / "class_names.txt")


def test_missing_listed_file_is_one_line_error(tmp_path):
    base = _write_voc(tmp_path, [np.zeros((40, 40), np.uint8)] * 2)
    (base / "JPEGImages" / "2007_000001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"2007_000001\.jpg not found, but .*train\.txt lists it"):
        voc.read_split(base, "train")
    with pytest.raises(DatasetError, match=r"val\.txt not found"):
        voc.read_split(base, "val")


def test_unknown_class_index_names_the_file(tmp_path):
    bad = np.zeros((40, 40), np.uint8)
    bad[3, 3] = 30
    base = _write_voc(tmp_path, [np.zeros((40, 40), np.uint8), bad])
    images, labels = voc.read_split(base, "train")
    with pytest.raises(DatasetError, match=r"2007_000001\.png has unknown class index 30"):
        voc.check_split(images, labels)


def test_rgb_label_and_size_mismatch_are_rejected(tmp_path):
    base = _write_voc(tmp_path, [np.zeros((40, 40), np.uint8)] * 2)
    images, labels = voc.read_split(base, "train")
    Image.new("RGB", (40, 40)).save(labels[0])
    with pytest.raises(DatasetError, match=r"2007_000000\.png: label is a RGB image; expected a palette PNG"):
        voc.check_split(images, labels)
    voc.write_label(labels[0], np.zeros((30, 40), np.uint8))
    with pytest.raises(DatasetError, match=r"2007_000000\.png is 40x30 but .*2007_000000\.jpg is 40x40"):
        voc.check_split(images, labels)


def test_images_smaller_than_the_crop_are_dropped_and_counted(capsys):
    sizes = np.array([[100, 100], [63, 100], [100, 63], [64, 64], [200, 50]])
    images, labels = list("abcde"), list("ABCDE")
    kept = voc.filter_by_size(images, labels, sizes, (64, 64))
    assert kept == (["a", "d"], ["A", "D"])
    assert "train: dropped 3 of 5 images smaller than the 64x64 crop" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="every train image is smaller than the 128x128 crop"):
        voc.filter_by_size(images, labels, sizes, (128, 128))


def test_random_crops_keep_image_and_label_aligned(tmp_path):
    # A noise image has one exact position for each crop: find it in the decoded full
    # image, then the label crop must be the label at that position (flipped alike).
    h, w = 70, 90
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    label = ((xx // 7 + 3 * (yy // 5)) % 21).astype(np.uint8)
    label[10, :] = 255
    base = _write_voc(tmp_path, [label] * 4, [image] * 4)
    images, labels = voc.read_split(base, "train")
    full = tf.image.decode_jpeg(tf.io.read_file(str(images[0]))).numpy().astype(np.float32)
    crops = list(voc.train_dataset(images, labels, (32, 64), batch_size=2, seed=5, epoch=1))
    assert len(crops) == 2
    for x, y in crops:
        assert x.shape == (2, 32, 64, 3) and y.shape == (2, 32, 64) and y.dtype.name == "int32"
        for img, lab in zip(x.numpy(), y.numpy()):
            found = [(y0, x0, flip) for flip in (False, True) for y0 in range(h - 31) for x0 in range(w - 63)
                     if np.array_equal(full[y0:y0 + 32, x0:x0 + 64][:, ::-1 if flip else 1], img)]
            assert len(found) == 1
            y0, x0, flip = found[0]
            np.testing.assert_array_equal(lab, label[y0:y0 + 32, x0:x0 + 64][:, ::-1 if flip else 1])
    # Stateless: the same (seed, epoch) repeats exactly, another epoch differs.
    again = list(voc.train_dataset(images, labels, (32, 64), batch_size=2, seed=5, epoch=1))
    np.testing.assert_array_equal(crops[0][1], again[0][1])
    other = list(voc.train_dataset(images, labels, (32, 64), batch_size=2, seed=5, epoch=2))
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(crops, other))


def test_eval_batches_pad_labels_with_ignore(tmp_path):
    labels = [np.full((40, 50), 1, np.uint8), np.full((33, 64), 2, np.uint8)]
    base = _write_voc(tmp_path, labels)
    images, paths = voc.read_split(base, "train")
    sizes = voc.check_split(images, paths)
    assert voc.padded_size(sizes) == (64, 64)
    (x, y), = list(voc.eval_dataset(images, paths, 2, (64, 64)))
    assert x.shape == (2, 64, 64, 3)
    y = y.numpy()
    assert (y[0, :40, :50] == 1).all() and (y[0, 40:] == 255).all() and (y[0, :, 50:] == 255).all()
    assert (y[1, :33] == 2).all() and (y[1, 33:] == 255).all()


def test_hue_rgb_is_hsv_to_rgb():
    import colorsys

    for h, sat, val in [(0.0, 1, 1), (0.1, 1, 1), (0.45, 0.6, 0.8), (0.73, 0.55, 0.5), (0.99, 1.0, 0.7)]:
        np.testing.assert_allclose(voc.hue_rgb(h, sat, val), colorsys.hsv_to_rgb(h, sat, val), atol=1e-12)
