"""The offline photograph segmentation set: layout, labels, seeding, CLI; and the scale/jitter augmentation."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vision import photo_segmentation, voc


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    return photo_segmentation.generate_photo_voc(tmp_path_factory.mktemp("photos"), num_train=3, num_val=1, seed=0)


def test_sample_photographs_are_the_three_offline_photos():
    photos = photo_segmentation.sample_photographs()
    assert [p.shape for p in photos] == [(427, 640, 3), (427, 640, 3), (600, 512, 3)]
    assert all(p.dtype == np.uint8 and p.std() > 20 for p in photos)  # real pictures, not flat colours


def test_photo_set_is_voc_layout_with_void_outlines(photo_root):
    images, labels = voc.read_split(photo_root, "train")
    sizes = voc.check_split(images, labels)  # decodes, sizes match, only 0-20 and 255
    assert len(images) == 3 and voc.read_split(photo_root, "val")[0][0].name == "photo_000003.jpg"
    lo_h, hi_h = photo_segmentation.HEIGHT
    lo_w, hi_w = photo_segmentation.WIDTH
    assert ((sizes[:, 0] >= lo_h) & (sizes[:, 0] <= hi_h) & (sizes[:, 1] >= lo_w) & (sizes[:, 1] <= hi_w)).all()
    for path in labels:
        label = voc.read_label(path)
        assert set(np.unique(label)) <= {0, 1, 2, 3, 4, 5, 255}
        objects, void = (label > 0) & (label < 255), label == 255
        assert objects.any() and void.any()
        # The void band is centred on the edges, BOUNDARY_PX wide: each void pixel is within BOUNDARY_PX + 1 px
        # of both an object pixel and a pixel of another class (background here, or another object).
        width = 2 * photo_segmentation.BOUNDARY_PX + 3
        near = lambda mask: tf.nn.max_pool2d(mask[None, ..., None].astype(np.float32), width, 1, "SAME").numpy()[0, ..., 0] > 0
        assert near(objects)[void].mean() > 0.97  # (star tips thinner than the band are void throughout)
        assert (near(label == 0) | near(objects & (label != label.max())))[void].mean() > 0.97
        assert void.sum() < 0.2 * label.size
    with Image.open(images[0]) as img:
        assert img.format == "JPEG" and img.mode == "RGB"
    # The classes are named in the set, so vision.fcn evaluate reports circle..star, not aeroplane..bottle.
    assert (photo_root / "class_names.txt").read_text().split() == ["background", "circle", "square", "triangle",
                                                                      "cross", "star"]
    assert voc.class_names(photo_root) == voc.SHAPE_NAMES


def test_photo_set_is_seeded(tmp_path, photo_root):
    again = photo_segmentation.generate_photo_voc(tmp_path / "a", num_train=1, num_val=1, seed=0)
    other = photo_segmentation.generate_photo_voc(tmp_path / "b", num_train=1, num_val=1, seed=1)
    name = "SegmentationClass/photo_000000.png"
    assert (again / name).read_bytes() == (photo_root / name).read_bytes()
    assert (other / name).read_bytes() != (photo_root / name).read_bytes()


def test_bumped_generator_version_writes_a_fresh_cached_set(monkeypatch):
    old = photo_segmentation.photo_voc(num_train=1, num_val=1, seed=0)
    assert old.parent.parent.name == "photos-voc-1-1-seed0-v1"
    (old / "JPEGImages" / "photo_000000.jpg").write_bytes(b"stale")  # what an older generator left
    assert photo_segmentation.photo_voc(num_train=1, num_val=1, seed=0) == old  # same version: reused
    monkeypatch.setattr(photo_segmentation, "GENERATOR_VERSION", 2)
    new = photo_segmentation.photo_voc(num_train=1, num_val=1, seed=0)
    assert new.parent.parent.name == "photos-voc-1-1-seed0-v2"
    assert Image.open(new / "JPEGImages" / "photo_000000.jpg").size[0] >= 450


def test_cli_writes_the_set(tmp_path, capsys):
    assert photo_segmentation.main(["--out", str(tmp_path), "--train", "1", "--val", "1"]) == 0
    assert "python -m vision.fcn train --data-dir" in capsys.readouterr().out
    assert (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text() == "photo_000001\n"
    assert voc.class_names(tmp_path / "VOCdevkit/VOC2012") == voc.SHAPE_NAMES
    with pytest.raises(SystemExit) as e:
        photo_segmentation.main(["--out", str(tmp_path), "--train", "0"])
    assert e.value.code == 2


def test_scale_augmentation_pads_with_void_and_keeps_classes(photo_root):
    images, labels = voc.read_split(photo_root, "train")
    crop = (384, 512)  # larger than every image: scales below ~1.3 need padding
    data = voc.train_dataset(images, labels, crop, 3, seed=0, epoch=0, scale=(0.5, 0.5))
    x, y = next(iter(data))
    assert x.shape == (3, 384, 512, 3) and y.shape == (3, 384, 512)
    x, y = x.numpy(), y.numpy()
    assert 0 <= x.min() and x.max() <= 255
    for i in range(3):
        # Half size: about 165-188 x 225-250 pixels of image; the rest is padding, labelled void, pixels 0.
        rows = np.flatnonzero((y[i] != 255).any(axis=1))
        assert 150 <= len(rows) <= 190
        assert (x[i][y[i] == 255] == 0).mean() > 0.9
    assert set(np.unique(y)) <= {0, 1, 2, 3, 4, 5, 255}
    jittered = lambda epoch: next(iter(voc.train_dataset(images, labels, crop, 3, 0, epoch, scale=(0.5, 1.5), jitter=0.3)))
    first = jittered(0)
    np.testing.assert_array_equal(jittered(0)[0].numpy(), first[0].numpy())  # stateless: the same epoch, the same batch
    assert not np.array_equal(jittered(1)[0].numpy(), first[0].numpy())


def test_colour_jitter_scales_brightness_contrast_saturation():
    image = tf.constant(np.random.default_rng(0).uniform(50, 200, (8, 8, 3)), tf.float32)
    key = tf.constant([3, 4], tf.int64)
    jittered = voc._colour_jitter(image, 0.3, key).numpy()
    assert not np.allclose(jittered, image.numpy()) and 0 <= jittered.min() and jittered.max() <= 255
    np.testing.assert_array_equal(voc._colour_jitter(image, 0.3, key).numpy(), jittered)
    # Strength 0 draws every factor as exactly 1: the identity.
    np.testing.assert_allclose(voc._colour_jitter(image, 0.0, key).numpy(), image.numpy(), atol=1e-3)
