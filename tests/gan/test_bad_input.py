"""The gan bad-input matrix (issue 28): the sprite reader (the book's Pokemon folder or any ImageFolder) on a
missing folder, a file, an empty folder, a folder of non-images, images outside a class folder, and empty,
binary-garbage, truncated and corrupted PNGs; the run's quality feature network damaged; `generate --out`
that is a file or cannot be written. Each gives one line naming the file or folder and exit 1, before any
model is built, leaving the run byte-identical; `generate` writes into RUN_DIR/samples by default.
(gan.gan reads no files: its data is generated from the seed.)"""
import os
import shutil

import pytest

from gan import data, dcgan, dcgan_model
from tests.cli_helpers import one_line, run, tree_digest

GARBAGE = bytes(range(256)) * 4 + b"\x00\xff\xfe" * 64
TINY = ["--image-size", "16", "--gen-width", "8", "--disc-width", "8", "--batch-size", "8", "--quality-epochs", "1",
        "--epochs", "1"]


def _sprites(root, n=12):
    return data.write_image_folder(root, data.demo_sprite_arrays(n, 16), per_class=4)


def _damage_every_png(damage):
    def apply(root):
        for path in data.image_files(root):
            damage(path)
    return apply


def _truncate(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _corrupt(path):
    raw = bytearray(path.read_bytes())
    raw[60:120] = bytes(60)
    path.write_bytes(bytes(raw))


def _non_images(root):
    for path in data.image_files(root):
        path.rename(path.with_suffix(".txt"))


def _flat(root):
    for path in data.image_files(root):
        path.rename(root / path.name)


FOLDER_CASES = {
    # name: (what to do to a good folder, which path the line names, what it says)
    "missing folder": (lambda r: shutil.rmtree(r), lambda r: r, "does not exist"),
    "a file": (lambda r: (shutil.rmtree(r), r.write_bytes(GARBAGE)), lambda r: r, "is not a directory"),
    "empty folder": (lambda r: (shutil.rmtree(r), r.mkdir()), lambda r: r, "holds no images"),
    "empty class folder": (lambda r: (shutil.rmtree(r), (r / "001").mkdir(parents=True)), lambda r: r,
                           "holds no images"),
    "only non-images": (_non_images, lambda r: r, "holds no images"),
    "images outside a class folder": (_flat, lambda r: r, "expected the ImageFolder layout"),
    "every PNG empty": (_damage_every_png(lambda p: p.write_bytes(b"")), lambda r: r,
                        "none of the 12 image files"),
    "every PNG binary garbage": (_damage_every_png(lambda p: p.write_bytes(GARBAGE)), lambda r: r,
                                 "none of the 12 image files"),
    "every PNG truncated": (_damage_every_png(_truncate), lambda r: r, "none of the 12 image files"),
    "every PNG corrupted": (_damage_every_png(_corrupt), lambda r: r, "none of the 12 image files"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_sprite_folder(tmp_path, capsys, monkeypatch, case):
    damage, named, message = FOLDER_CASES[case]
    root = _sprites(tmp_path / "sprites")
    damage(root)
    monkeypatch.setattr(dcgan_model, "build", lambda *a, **k: pytest.fail("a model was built"))
    code, _, err = run(dcgan.main, ["train", "--data-dir", root, *TINY, "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(named(root)), message)
    assert not (tmp_path / "r").exists()


def test_the_book_layout_pokemon_folder_is_read_inside_data_dir(tmp_path, capsys):
    (tmp_path / "pokemon").mkdir()  # the archive's top folder, here empty
    code, _, err = run(dcgan.main, ["train", "--data-dir", tmp_path, *TINY, "--run-dir", tmp_path / "r"], capsys)
    assert code == 1
    one_line(err, str(tmp_path / "pokemon"), "holds no images")


@pytest.mark.parametrize("damage", [lambda p: p.write_bytes(b""), lambda p: p.write_bytes(GARBAGE), _truncate, _corrupt],
                         ids=["empty", "binary garbage", "truncated", "corrupted"])
def test_one_bad_png_among_good_ones_is_skipped_and_named(tmp_path, capsys, damage):
    root = _sprites(tmp_path / "sprites")
    bad = data.image_files(root)[3]
    damage(bad)
    images = data.read_image_folder(root, 16)
    assert images.shape == (11, 16, 16, 3)
    one_line(capsys.readouterr().err, "skipped 1 unreadable image(s) of 12", str(bad))


# --- a trained run: generate's output folder, the run's own files ----------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcgan")
    _sprites(root / "sprites", n=24)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLSUITE_CACHE", str(root / "cache"))
        assert dcgan.main(["train", "--data-dir", str(root / "sprites"), *TINY, "--run-dir", str(root / "run")]) == 0
    return root / "run"


def _unwritable():
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc on this system")
    return "/proc/dlsuite-out"


@pytest.mark.parametrize("target", ["file", "under a file", "unwritable"])
def test_generate_out(tiny_run, tmp_path, capsys, monkeypatch, target):
    (tmp_path / "taken").write_text("keep me")
    out = {"file": tmp_path / "taken", "under a file": tmp_path / "taken" / "sub", "unwritable": _unwritable()}[target]
    before = tree_digest(tiny_run)
    monkeypatch.setattr(dcgan_model, "build", lambda *a, **k: pytest.fail("a model was built before the check"))
    code, _, err = run(dcgan.main, ["generate", "--run-dir", tiny_run, "--n", 2, "--out", out], capsys)
    assert code == 1
    one_line(err, "--out", str(out) if target != "under a file" else str(tmp_path / "taken"))
    assert tree_digest(tiny_run) == before and (tmp_path / "taken").read_text() == "keep me"


def test_generate_writes_into_the_run_directory_by_default(tiny_run, tmp_path, capsys):
    code, result, err = run(dcgan.main, ["generate", "--run-dir", tiny_run, "--n", 3], capsys)
    assert code == 0, err
    assert result["out"] == str(tiny_run / "samples")
    assert sorted(p.name for p in (tiny_run / "samples").glob("sample_*.png")) == [f"sample_{i:04d}.png"
                                                                                   for i in range(3)]
    assert not list(tmp_path.iterdir())  # nothing in the working directory
    code, result, err = run(dcgan.main, ["generate", "--run-dir", tiny_run, "--n", 1, "--out", tmp_path / "mine"],
                            capsys)
    assert code == 0 and result["out"] == str(tmp_path / "mine") and (tmp_path / "mine" / "sample_0000.png").is_file()


@pytest.mark.parametrize("content", [b"", GARBAGE], ids=["empty", "binary garbage"])
def test_damaged_quality_feature_network(tiny_run, tmp_path, capsys, content):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (copy / dcgan.FEATURE_NET).write_bytes(content)
    before = tree_digest(copy)
    code, _, err = run(dcgan.main, ["evaluate", "--run-dir", copy], capsys)
    assert code == 1
    one_line(err, str(copy / dcgan.FEATURE_NET), "is damaged", "train a new run")
    assert tree_digest(copy) == before
