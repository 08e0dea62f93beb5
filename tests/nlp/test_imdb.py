"""nlp.imdb: the aclImdb layout on hand-written files, tokenisation, the empty-review error, the
demo generator's layout, and the real 1,000-per-class subset."""
import numpy as np
import pytest

from common.errors import DatasetError
from nlp import imdb


def _write(root, split, folder, texts):
    (root / split / folder).mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (root / split / folder / f"{i}_5.txt").write_text(text)


def test_reader_labels_and_tokens(tmp_path):
    root = tmp_path / "aclImdb"
    _write(root, "train", "pos", ["A GREAT film!<br /><br />Loved it.", "fine"])
    _write(root, "train", "neg", ["Awful... don't watch"])
    reviews = imdb.read_imdb(root, "train")
    assert reviews.labels.tolist() == [0, 1, 1]  # negatives first, files in name order
    assert reviews.tokens[0] == ["awful", "don", "t", "watch"]
    assert reviews.tokens[1] == ["a", "great", "film", "!", "loved", "it"]
    _write(root, "test", "pos", ["ok"])
    _write(root, "test", "neg", ["ok"])
    assert imdb.imdb_directory(tmp_path) == root  # --data-dir may name the folder above aclImdb


def test_empty_review_is_one_line(tmp_path):
    _write(tmp_path, "train", "pos", ["good"])
    _write(tmp_path, "train", "neg", ["  <br /> \n"])
    with pytest.raises(DatasetError, match=r"review .*neg/0_5.txt is empty"):
        imdb.read_imdb(tmp_path, "train")


def test_demo_layout_and_learnable_cues(tmp_path):
    root = imdb.generate_demo(tmp_path / "aclImdb", per_class=(40, 10))
    train, test = imdb.read_imdb(root, "train"), imdb.read_imdb(root, "test")
    assert (len(train), len(test)) == (80, 20) and np.bincount(train.labels).tolist() == [40, 40]
    # the rule: more words of the own polarity than of the other, in every review
    score = np.array([sum(t in imdb.DEMO_POSITIVE for t in r) - sum(t in imdb.DEMO_NEGATIVE for t in r)
                      for r in train.tokens])
    assert np.array_equal(score > 0, train.labels == 1)


def test_real_subset(shared_data):
    root = imdb.imdb_directory(shared_data / "aclImdb_subset")
    test = imdb.read_imdb(root, "test")
    assert len(test) == 2000 and np.bincount(test.labels).tolist() == [1000, 1000]
