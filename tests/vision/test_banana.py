"""vision.banana: the book's label.csv layout, the offline generator and the tf.data pipeline."""
import numpy as np
import pytest
from PIL import Image

from common.errors import DatasetError
from vision import banana


def write_set(root, rows, images, split="bananas_train"):
    """Write label.csv rows and {name: (width, height, box or None)} images into a split directory."""
    d = root / split
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "label.csv").write_text("\n".join(["img_name,label,xmin,ymin,xmax,ymax", *rows]) + "\n")
    for name, (w, h, boxes) in images.items():
        img = np.zeros((h, w, 3), np.uint8)
        for x0, y0, x1, y1 in boxes:
            img[y0:y1, x0:x1] = 255
        Image.fromarray(img).save(d / "images" / name)
    return root


def test_reader_several_objects_per_image_and_normalization(tmp_path):
    write_set(tmp_path, ["a.png,0,10,20,50,60", "b.png,0,0,0,200,100", "a.png,1,100,0,150,10"],
              {"a.png": (200, 100, []), "b.png": (200, 100, [])})
    paths, labels, sizes = banana.read_bananas(tmp_path, "train")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["a.png", "b.png"]
    np.testing.assert_allclose(labels, [[[0, 0.05, 0.2, 0.25, 0.6], [1, 0.5, 0, 0.75, 0.1]],
                                        [[0, 0, 0, 1, 1], [-1, -1, -1, -1, -1]]])
    np.testing.assert_array_equal(sizes, [[200, 100], [200, 100]])


@pytest.mark.parametrize("rows, images, message", [
    (["a.png,0,10,20,50,60"], {}, "a.png not found"),
    (["a.png,0,10,20,300,60"], {"a.png": (256, 256, [])},
     "line 2: box (10,20,300,60) is outside the 256x256 image a.png"),
    (["a.png,0,50,20,10,60"], {"a.png": (256, 256, [])}, "is outside the 256x256 image a.png or empty"),
    (["a.png,0,x,20,50,60"], {"a.png": (256, 256, [])}, "line 2: non-numeric value"),
    (["a.png,0,1,2"], {"a.png": (256, 256, [])}, "line 2: expected 6 columns, got 4"),
    (["a.png,-1,10,20,50,60"], {"a.png": (256, 256, [])}, "line 2: class -1 must be an integer >= 0"),
])
def test_reader_bad_rows_name_file_and_line(tmp_path, rows, images, message):
    write_set(tmp_path, rows, images)
    with pytest.raises(DatasetError) as e:
        banana.read_bananas(tmp_path, "train")
    assert message in str(e.value) and "label.csv" in str(e.value) and "\n" not in str(e.value)


def test_reader_missing_label_csv_and_bad_header(tmp_path):
    with pytest.raises(DatasetError, match=r"bananas_val/label.csv not found"):
        banana.read_bananas(tmp_path, "val")
    (tmp_path / "bananas_val").mkdir()
    (tmp_path / "bananas_val" / "label.csv").write_text("name,x\n")
    with pytest.raises(DatasetError, match="header must be img_name,label,xmin,ymin,xmax,ymax"):
        banana.read_bananas(tmp_path, "val")


def test_generator_writes_readable_tight_boxes_deterministically(tmp_path):
    root = banana.generate_bananas(tmp_path / "g", num_train=6, num_val=3, seed=3, max_objects=3)
    again = banana.generate_bananas(tmp_path / "h", num_train=6, num_val=3, seed=3, max_objects=3)
    assert (root / "bananas_train/label.csv").read_text() == (again / "bananas_train/label.csv").read_text()
    paths, labels, sizes = banana.read_bananas(root, "train")
    assert len(paths) == 6 and (sizes == 256).all()
    assert labels.shape[1] >= 2  # several objects in some image
    valid = labels[..., 0] >= 0
    assert (labels[valid][:, 1:] >= 0).all() and (labels[valid][:, 1:] <= 1).all()
    w = labels[valid][:, 3] - labels[valid][:, 1]
    assert (w > 0.03).all() and (w < 0.6).all()
    _, val_labels, _ = banana.read_bananas(root, "val")
    assert val_labels.shape[0] == 3


def test_generated_box_is_tight_around_the_drawn_banana():
    rng = np.random.default_rng(5)
    for _ in range(5):
        img = np.zeros((256, 256, 3))
        x0, y0, x1, y1 = banana._paste_banana(rng, img, [])
        ys, xs = np.nonzero(img.max(-1) > 40)  # visibly drawn (edges are anti-aliased)
        assert 0 <= x0 and x1 <= 256 and 0 <= y0 and y1 <= 256
        assert abs(xs.min() - x0) <= 2 and abs(xs.max() + 1 - x1) <= 2
        assert abs(ys.min() - y0) <= 2 and abs(ys.max() + 1 - y1) <= 2


def test_download_source_fails_offline_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(banana, "URL", "http://127.0.0.1:9/banana-detection.zip")  # a closed port
    with pytest.raises(DatasetError) as e:
        banana.banana_root(source="download")
    text = str(e.value)
    assert "banana-detection" in text and "--data-dir" in text and "\n" not in text
    assert text.endswith("or use --source generated (the offline generated set) or --demo")  # flags that exist


def test_data_dir_must_hold_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="bananas_train/label.csv not found"):
        banana.banana_root(tmp_path)
    write_set(tmp_path / "extracted" / "banana-detection", ["a.png,0,1,1,5,5"], {"a.png": (8, 8, [])})
    write_set(tmp_path / "extracted" / "banana-detection", ["a.png,0,1,1,5,5"], {"a.png": (8, 8, [])}, "bananas_val")
    assert banana.banana_root(tmp_path / "extracted") == tmp_path / "extracted" / "banana-detection"


def test_flip_boxes_hand_values():
    labels = np.array([[0, 0.1, 0.2, 0.4, 0.6], [-1, -1, -1, -1, -1]], np.float32)
    np.testing.assert_allclose(banana.flip_boxes(labels).numpy(), [[0, 0.6, 0.2, 0.9, 0.6], [-1, -1, -1, -1, -1]])


def test_pipeline_flips_images_with_their_boxes_reproducibly(tmp_path):
    # White rectangles on black at the labelled box: after random flips the box must still
    # cover the white pixels.
    rows, images = [], {}
    rng = np.random.default_rng(0)
    for i in range(12):
        x0, y0 = rng.integers(0, 40, 2)
        box = (int(x0), int(y0), int(x0) + 20, int(y0) + 12)
        rows.append(f"{i}.png,0,{box[0]},{box[1]},{box[2]},{box[3]}")
        images[f"{i}.png"] = (64, 64, [box])
    write_set(tmp_path, rows, images)
    paths, labels, sizes = banana.read_bananas(tmp_path, "train")
    decoded = banana.decoded_dataset(paths, labels, sizes, 64)
    first = [(x.numpy(), y.numpy()) for x, y in banana.batches(decoded, 5, shuffle_seed=7, flip=True, count=12)]
    again = [(x.numpy(), y.numpy()) for x, y in banana.batches(decoded, 5, shuffle_seed=7, flip=True, count=12)]
    assert [b[0].shape[0] for b in first] == [5, 5, 2]
    for (x, y), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    images_, labels_ = np.concatenate([b[0] for b in first]), np.concatenate([b[1] for b in first])
    originals = {tuple(int(v) for v in r.split(",")[2:4]) for r in rows}
    flipped = 0
    for img, lab in zip(images_, labels_):
        x0, y0, x1, y1 = (lab[0, 1:] * 64).round().astype(int)
        mask = np.zeros((64, 64), bool)
        mask[y0:y1, x0:x1] = True
        assert (img[mask] == 255).all() and (img[~mask] == 0).all()
        flipped += int((x0, y0) not in originals)
    assert 0 < flipped < 12  # some but not all examples were mirrored


def test_resize_to_image_size(tmp_path):
    write_set(tmp_path, ["a.png,0,0,0,40,20"], {"a.png": (80, 40, [(0, 0, 40, 20)])})
    paths, labels, sizes = banana.read_bananas(tmp_path, "train")
    x, y = next(iter(banana.batches(banana.decoded_dataset(paths, labels, sizes, 64), 1)))
    assert x.shape == (1, 64, 64, 3) and x.dtype.name == "uint8"
    np.testing.assert_allclose(y.numpy()[0, 0], [0, 0, 0, 0.5, 0.5])
    assert x.numpy()[0, :30, :30].min() > 200 and x.numpy()[0, 34:, 34:].max() < 50
