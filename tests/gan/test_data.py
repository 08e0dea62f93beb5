"""Sprite reading (compositing, resizing, scaling), bad folders, the offline generator, real sprites."""
import numpy as np
import pytest
from PIL import Image

from common.errors import DatasetError
from gan import data


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def test_rgba_is_composited_onto_the_background_and_scaled_to_minus_one_one(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255                       # transparent red: must become background
    rgba[2:6, 2:6] = (0, 0, 0, 255)          # opaque black square
    rgba[0, 0] = (0, 0, 255, 128)            # half-transparent blue
    path = _write(tmp_path / "a" / "x.png", Image.fromarray(rgba, "RGBA"))
    white = data.load_sprite(path, 8, (255, 255, 255))
    assert white.shape == (8, 8, 3) and white.dtype == np.float32
    np.testing.assert_allclose(white[7, 7], [1, 1, 1])
    np.testing.assert_allclose(white[3, 3], [-1, -1, -1])
    # 128/255 of blue over white: R = G = 255 * 127/255 = 127 -> 127/127.5 - 1
    np.testing.assert_allclose(white[0, 0], [127 / 127.5 - 1, 127 / 127.5 - 1, 1], atol=1e-6)
    black = data.load_sprite(path, 8, (0, 0, 0))
    np.testing.assert_allclose(black[7, 7], [-1, -1, -1])


def test_palette_transparency_and_resize(tmp_path):
    img = Image.new("P", (96, 96), 0)
    img.putpalette([10, 200, 30] + [250, 0, 0] + [0] * 762)
    img.paste(1, (24, 24, 72, 72))
    img.info["transparency"] = 0
    path = _write(tmp_path / "a" / "p.png", img)
    x = data.load_sprite(path, 32, (255, 255, 255))
    assert x.shape == (32, 32, 3)
    np.testing.assert_allclose(x[0, 0], [1, 1, 1])                       # transparent green -> white
    np.testing.assert_allclose(x[16, 16], [250 / 127.5 - 1, -1, -1], atol=1e-6)  # opaque red centre


def test_empty_folder_and_unreadable_images(tmp_path, capsys):
    (tmp_path / "empty" / "001").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        data.read_image_folder(tmp_path / "empty", 16)
    root = tmp_path / "mixed"
    data.write_image_folder(root, data.demo_sprite_arrays(3, 16))
    (root / "001" / "broken.png").write_bytes(b"not a png")
    x = data.read_image_folder(root, 16)
    assert x.shape == (3, 16, 16, 3)
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image(s) of 4" in err and "broken.png" in err
    bad = tmp_path / "bad"
    (bad / "001").mkdir(parents=True)
    (bad / "001" / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="none of the 1 image files"):
        data.read_image_folder(bad, 16)


def test_demo_sprites_are_seeded_symmetric_transparent_figures(tmp_path):
    a = data.demo_sprite_arrays(6, 32, seed=3)
    np.testing.assert_array_equal(a, data.demo_sprite_arrays(6, 32, seed=3))
    assert not np.array_equal(a, data.demo_sprite_arrays(6, 32, seed=4))
    alpha = a[..., 3]
    assert set(np.unique(alpha)) == {0, 255}
    assert (alpha[:, 0, :] == 0).all() and (alpha[:, :, 0] == 0).all()      # transparent border
    cover = (alpha > 0).mean(axis=(1, 2))
    assert ((cover > 0.1) & (cover < 0.7)).all()
    # silhouettes are mirror-symmetric about the vertical axis (up to the pixel grid)
    assert (alpha == alpha[:, :, ::-1]).mean() > 0.9
    root = data.demo_sprites(n=10, size=32, seed=1)
    assert root.name == "pokemon" and len(data.image_files(root)) == 10
    assert data.read_image_folder(root, 16).shape == (10, 16, 16, 3)


def test_bumped_generator_version_writes_fresh_sprites_instead_of_reusing_the_old(monkeypatch, tmp_path):
    old = data.demo_sprites(n=4, size=16, seed=0)
    assert old.parent == tmp_path / "cache" / "gan-demo" / "sprites-4-16-0-v1"
    first = data.image_files(old)[0]
    pixels = first.read_bytes()
    first.write_bytes(b"stale")  # what an older generator left
    assert data.demo_sprites(n=4, size=16, seed=0) == old and first.read_bytes() == b"stale"  # same version: reused
    monkeypatch.setattr(data, "GENERATOR_VERSION", 2)
    new = data.demo_sprites(n=4, size=16, seed=0)
    assert new.parent == tmp_path / "cache" / "gan-demo" / "sprites-4-16-0-v2"
    assert data.image_files(new)[0].read_bytes() == pixels


def test_sprite_root_layouts(tmp_path):
    (tmp_path / "book" / "pokemon" / "001").mkdir(parents=True)
    assert data.sprite_root(tmp_path / "book") == tmp_path / "book" / "pokemon"
    (tmp_path / "folder" / "cats").mkdir(parents=True)
    assert data.sprite_root(tmp_path / "folder") == tmp_path / "folder"
    with pytest.raises(DatasetError, match="does not exist"):
        data.sprite_root(tmp_path / "missing")


def test_split_holdout_is_seeded_and_disjoint():
    x = np.arange(20, dtype=np.float32)[:, None]
    train, held = data.split_holdout(x, 0.25, seed=0)
    assert len(train) == 15 and len(held) == 5
    assert sorted(np.concatenate([train, held]).ravel().tolist()) == list(range(20))
    np.testing.assert_array_equal(held, data.split_holdout(x, 0.25, seed=0)[1])
    with pytest.raises(DatasetError, match="too few"):
        data.split_holdout(x[:3], 0.25, seed=0)


def test_real_sprites(shared_data):
    root = data.sprite_root(shared_data / "pokemon_sprites")
    x = data.read_image_folder(root, 16)
    assert x.shape == (2093, 16, 16, 3)
    assert x.min() >= -1 and x.max() <= 1
    # transparent backgrounds became white: the corners are white in nearly every sprite
    assert (x[:, 0, 0] > 0.95).all(axis=-1).mean() > 0.95
