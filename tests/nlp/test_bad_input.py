"""The nlp bad-input matrix (issue #28), through each command's `main(argv)`: every reader on an empty file,
a header-only file (where the format has a header) and binary files gives one line naming the file and
the fix (exit 1) and never a traceback; `-k` below 1 is a usage error (exit 2) and reserved tokens are
never neighbours or analogy answers; `predict` reports the vocabulary's coverage of its input and warns
when it knows no word; `nlp.bpe learn` writes only where `--out` says; `--help` and usage errors answer
without loading TensorFlow."""
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.errors import DatasetError
from nlp import bert, bpe, embeddings, glove, nli, sentiment, snli, word2vec
from tests.cli_helpers import run

# two kinds of binary file: a gzip archive (NUL bytes) and a PNG-like one without NUL (not UTF-8)
BINARY = {"gzip": gzip.compress(b"the cat sat on the mat\n" * 40, mtime=0),
          "not_utf8": b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)) * 4}
CONTENTS = {"empty": b"", **BINARY}
GARBAGE = "gzip"


def _write(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _one_line(err, *parts):
    """The command's stderr is exactly one error line holding every one of `parts`."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    for part in parts:
        assert str(part) in lines[0], (part, lines[0])
    return lines[0]


def _fails(main, argv, capsys, *parts, code=1):
    """Run `main(argv)`; assert it exits `code` with one stderr line holding `parts`; return the line."""
    got, out, err = run(main, argv, capsys)
    assert got == code and out is None, (got, out, err)
    return _one_line(err, *parts)


def _usage_error(main, argv, capsys, *parts):
    """argparse's usage error: exit 2 with one line holding `parts`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    return _one_line(capsys.readouterr().err, *parts)


# --- readers: (command, files) -> one line naming the file and the fix ---------------------------------
def _corpus_fix(data):
    return "pass a plain text corpus" if data else "needs at least one line of whitespace-separated words"


def _ptb_corpus(data):
    path = _write("corpus.txt", data)
    return word2vec.main, ["train", "--corpus", path, "--run-dir", "r"], path, _corpus_fix(data)


def _ptb_data_dir(data):
    path = _write("ptb/ptb.train.txt", data)
    return glove.main, ["train", "--data-dir", "ptb", "--run-dir", "r"], path, _corpus_fix(data)


def _bpe_corpus(data):
    path = _write("corpus.txt", data)
    return bpe.main, ["learn", "--corpus", path, "--out", "m.json"], path, _corpus_fix(data)


def _wikitext(data):
    for split in ("train", "valid", "test"):
        _write(f"wiki/wiki.{split}.tokens", data)
    return bert.main, ["pretrain", "--data-dir", "wiki", "--run-dir", "r"], "wiki.train.tokens", \
        "pass WikiText's .tokens files"


def _snli_tokenised(data):
    for stem in ("s1", "s2", "labels"):
        for split in ("train", "test"):
            _write(f"snli/{stem}.{split}", data)
    return nli.main, ["train", "--data-dir", "snli", "--run-dir", "r"], "s1.train", \
        "pass the s1/s2/labels files as distributed"


def _snli_official(data):
    for split in ("train", "test"):
        _write(f"snli/snli_1.0_{split}.txt", data)
    return nli.main, ["train", "--data-dir", "snli", "--run-dir", "r"], "snli_1.0_train.txt", \
        "pass the snli_1.0 files as distributed"


def _imdb(data):
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            _write(f"imdb/aclImdb/{split}/{label}/0_1.txt", data)
    return sentiment.main, ["train", "--data-dir", "imdb", "--run-dir", "r"], "train/neg/0_1.txt", \
        "remove it or restore its text"


def _vectors(data):
    path = _write("vec.txt", data)
    fix = "expected lines 'word v1 ... vd'" if not data else "GloVe or word2vec text format"
    return embeddings.main, ["similar", "cat", "--vectors", path], path, fix


def _nli_embeddings(data):
    path = _write("vec.txt", data)
    fix = "expected lines 'word v1 ... vd'" if not data else "GloVe or word2vec text format"
    return nli.main, ["train", "--demo", "--embeddings", path, "--run-dir", "r"], path, fix


def _merges(data):
    path = _write("merges.json", data)
    return bpe.main, ["segment", "cat", "--merges-file", path], path, "python -m nlp.bpe learn --out FILE"


def _similarity(data):
    vectors = _write("vec.txt", "cat 1 0\ndog 0 1\n")
    path = _write("wordsim.tsv", data)
    fix = "word1<TAB>word2<TAB>score"
    return embeddings.main, ["evaluate", "--vectors", vectors, "--similarity", path], path, fix


def _analogies(data):
    vectors = _write("vec.txt", "cat 1 0\ndog 0 1\n")
    path = _write("questions.txt", data)
    return embeddings.main, ["evaluate", "--vectors", vectors, "--analogies", path], path, "'a b c d' lines"


READERS = {"ptb_corpus": _ptb_corpus, "ptb_data_dir": _ptb_data_dir, "bpe_corpus": _bpe_corpus,
           "wikitext": _wikitext, "snli_tokenised": _snli_tokenised, "snli_official": _snli_official,
           "aclimdb": _imdb, "vectors": _vectors, "nli_embeddings": _nli_embeddings, "bpe_merges": _merges,
           "wordsim": _similarity, "analogies": _analogies}
# a header and nothing else, for the formats that have a header
HEADER_ONLY = {"snli_official": ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tpairID\n",
                                 "holds its header row but no pair"),
               "vectors": ("3 2\n", "holds no vectors"),
               "wikitext": (" = Heading = \n \n = = Section = = \n", "holds no paragraph"),
               "analogies": (": capital-common-countries\n", "holds no analogy questions")}


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("reader", READERS)
def test_reader_on_empty_and_binary_files_is_one_line(reader, content, capsys):
    main, argv, named, fix = READERS[reader](CONTENTS[content])
    line = _fails(main, argv, capsys, named, fix)
    if content in BINARY:
        assert "binary" in line or "not UTF-8" in line
    assert not Path("r").exists() and not Path("m.json").exists()  # nothing written


@pytest.mark.parametrize("reader", HEADER_ONLY)
def test_reader_on_a_header_only_file_is_one_line(reader, capsys):
    header, says = HEADER_ONLY[reader]
    main, argv, named, _ = READERS[reader](header)
    _fails(main, argv, capsys, named, says)
    assert not Path("r").exists()


def test_word2vec_binary_vectors_ask_for_the_text_format(capsys):
    """word2vec's .bin format: a text header, then raw floats (it used to read as 'line 2: 1 values')."""
    rows = b"".join(w + b" " + np.arange(3, dtype=np.float32).tobytes() + b"\n" for w in (b"cat", b"dog"))
    path = _write("vectors.bin", b"2 3\n" + rows)
    _fails(embeddings.main, ["similar", "cat", "--vectors", path], capsys, path, "is binary",
           "convert word2vec's binary .bin format to text first")


def test_bpe_merges_of_another_shape_is_one_line(capsys):
    for text in ('{"merges": [["a"]], "symbols": ["a"]}', "[1, 2]", '{"merges": [], "symbols": []}'):
        path = _write("merges.json", text)
        _fails(bpe.main, ["segment", "cat", "--merges-file", path], capsys, path, "not a merges file")
    Path("folder").mkdir()
    _fails(bpe.main, ["segment", "cat", "--merges-file", "folder"], capsys, "merges file folder is a folder")


def test_an_empty_evaluation_split_stops_before_training(capsys):
    """An empty SNLI test split or a damaged IMDb test review: one line before any epoch is trained."""
    snli.generate_demo("snli", sizes=(60, 0, 0))
    for stem in ("s1", "s2", "labels"):
        _write(f"snli/{stem}.test", b"")
    _fails(nli.main, ["train", "--data-dir", "snli", "--run-dir", "r"], capsys, "snli/s1.test is empty",
           "pass the s1/s2/labels files as distributed")
    assert not Path("r").exists()

    for split in ("train", "test"):
        for i, label in enumerate(("neg", "pos")):
            _write(f"imdb/aclImdb/{split}/{label}/0_{7 * i + 1}.txt", "a great film" if i else "a dull film")
    _write("imdb/aclImdb/test/pos/1_9.txt", BINARY["not_utf8"])
    _fails(sentiment.main, ["train", "--data-dir", "imdb", "--run-dir", "r"], capsys, "test/pos/1_9.txt",
           "not UTF-8 text (byte 0)", "remove it or restore its text")
    assert not Path("r").exists()


def test_corrupt_run_config_of_a_vectors_run_is_one_line(capsys):
    _write("run/vectors.txt", "cat 1 0\ndog 0 1\n")
    _write("run/config.json", BINARY[GARBAGE])
    _fails(embeddings.main, ["similar", "cat", "--run-dir", "run"], capsys, "run/config.json", "is corrupt",
           "train a new run")


# --- a saved vocabulary, and predict's coverage: tiny real runs ------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A one-epoch demo run of nli (attention) and of sentiment (TextCNN), with tiny layers."""
    root = tmp_path_factory.mktemp("tiny_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("DLSUITE_CACHE", str(root / "cache"))
        assert nli.main(["train", "--demo", "--epochs", "1", "--hidden", "8", "--embedding-dim", "4",
                         "--run-dir", str(root / "nli")]) == 0
        assert sentiment.main(["train", "--demo", "--epochs", "1", "--channels", "4,4,4", "--embedding-dim", "4",
                               "--run-dir", str(root / "sentiment")]) == 0
    return root


def _predict(model, run_dir, text):
    if model == "nli":
        return nli.main, ["predict", "--run-dir", run_dir, "--premise", text, "--hypothesis", text]
    return sentiment.main, ["predict", "--run-dir", run_dir, text]


VOCABULARIES = {"empty": (b"", "is empty"), "gzip": (BINARY["gzip"], "is binary"),
                "not_utf8": (BINARY["not_utf8"], "is not UTF-8 text"),
                "no_pad": ("<unk>\nthe\ncat\n", "lacks the reserved token(s) <pad>"),
                "repeated": ("<unk>\n<pad>\nthe\nthe\n", "lists 'the' 2 times"),
                "unk_not_first": ("<pad>\n<unk>\nthe\n", "starts with '<pad>', not <unk>")}


@pytest.mark.parametrize("damage", VOCABULARIES)
@pytest.mark.parametrize("model", ["nli", "sentiment"])
def test_a_damaged_saved_vocabulary_is_one_line_and_changes_nothing(model, damage, tiny_runs, capsys):
    shutil.copytree(tiny_runs / model, "run")
    data, says = VOCABULARIES[damage]
    _write("run/vocab.txt", data)
    before = {p: p.read_bytes() for p in Path("run").rglob("*") if p.is_file()}
    main, argv = _predict(model, "run", "a man is sleeping")
    _fails(main, argv, capsys, "run/vocab.txt", says, "restore the run's own vocab.txt or train a new run")
    assert {p: p.read_bytes() for p in Path("run").rglob("*") if p.is_file()} == before


def test_bert_vocabulary_without_its_reserved_tokens_is_one_line():
    """BERT's run vocabulary goes through the same reader (a pretraining run is too slow to make here)."""
    _write("run/vocab.txt", "[PAD]\n[UNK]\nthe\ncat\n")
    with pytest.raises(DatasetError, match=r"run/vocab.txt lacks the reserved token\(s\) \[CLS\] \[SEP\] \[MASK\]"):
        bert._load_vocabulary("run")
    for data, says in ((b"", "is empty"), (BINARY["gzip"], "is binary")):
        _write("run/vocab.txt", data)
        with pytest.raises(DatasetError, match=f"run/vocab.txt {says}") as e:
            bert._load_vocabulary("run")
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("model", ["nli", "sentiment"])
def test_predict_reports_coverage_and_warns_when_no_word_is_known(model, tiny_runs, capsys):
    main, argv = _predict(model, tiny_runs / model, "qwzx blorft zzyzx")
    code, out, err = run(main, argv, capsys)
    words = 6 if model == "nli" else 3  # nli: the premise and the hypothesis
    assert code == 0 and out["words"] == words and out["unknown_words"] == words and out["known_fraction"] == 0.0
    line = err.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("warning: no word of the ") and "has no basis" in line[0], err
    assert ("the premise and the hypothesis" in line[0]) == (model == "nli")

    main, argv = _predict(model, tiny_runs / model, "the qwzx")  # 'the' is in both demo vocabularies
    code, out, err = run(main, argv, capsys)
    assert code == 0 and out["unknown_words"] == out["words"] // 2 and out["known_fraction"] == 0.5
    assert "warning" not in err


def test_nli_warns_for_a_hypothesis_it_knows_no_word_of(tiny_runs, capsys):
    code, out, err = run(nli.main, ["predict", "--run-dir", tiny_runs / "nli", "--premise", "a man is sleeping .",
                                    "--hypothesis", "qwzx"], capsys)
    assert code == 0 and (out["words"], out["unknown_words"], out["known_fraction"]) == (6, 1, 0.8333)
    assert err.strip().startswith("warning: no word of the hypothesis (1 word)") and len(err.strip().splitlines()) == 1


def test_bert_encode_reports_coverage(tmp_path, capsys):
    vocab = bert.RESERVED_TOKENS + ["the", "cat", "sat", "##s", "."]
    config = bert.Config(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2, max_len=16)
    bert.save_preset(bert.build_backbone(config, len(vocab)), bert.make_tokenizer(vocab), 12, tmp_path / "tiny")
    code, out, err = run(bert.main, ["encode", "--preset", tmp_path / "tiny", "the cats sat ."], capsys)
    assert code == 0 and (out["words"], out["unknown_words"], out["known_fraction"]) == (4, 0, 1.0)
    assert "warning" not in err
    code, out, err = run(bert.main, ["encode", "--preset", tmp_path / "tiny", "zebra giraffe"], capsys)
    assert code == 0 and (out["words"], out["unknown_words"], out["known_fraction"]) == (2, 2, 0.0)
    assert err.strip().startswith("warning: no word of the text (2 words)")


# --- -k and reserved tokens ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    [word2vec.main, "similar", "chip", "-k", "-2"], [word2vec.main, "similar", "chip", "-k", "0"],
    [word2vec.main, "analogy", "man", "king", "woman", "-k", "0"], [glove.main, "similar", "chip", "-k", "0"],
    [embeddings.main, "similar", "chip", "-k", "-2", "--vectors", "vec.txt"],
    [embeddings.main, "analogy", "a", "b", "c", "-k", "0", "--vectors", "vec.txt"],
    [embeddings.main, "similar", "chip", "--limit", "0", "--vectors", "vec.txt"],
], ids=["word2vec_similar_-2", "word2vec_similar_0", "word2vec_analogy_0", "glove_similar_0",
        "embeddings_similar_-2", "embeddings_analogy_0", "embeddings_limit_0"])
def test_k_below_one_is_a_usage_error(argv, capsys):
    main, *argv = argv
    flag = "--limit" if "--limit" in argv else "-k"
    _usage_error(main, argv, capsys, f"argument {flag}: must be at least 1")


RESERVED_VECTORS = "cat 1 0 0\nkitten 0.9 0.1 0\n<unk> 1 0.01 0\n<pad> 1 0 0.01\n[CLS] 0.99 0 0\n[MASK] 1 0.02 0\n" \
                   "dog 0 1 0\npuppy 0.1 0.9 0\n[SEP] 0 1 0.01\n"


def test_reserved_tokens_are_never_neighbours_or_answers(capsys):
    _write("vec.txt", RESERVED_VECTORS)
    code, out, _ = run(embeddings.main, ["similar", "cat", "-k", 100, "--vectors", "vec.txt"], capsys)
    assert code == 0 and out["neighbours"] == ["kitten", "puppy", "dog"]  # every word, no reserved token
    # cat : kitten :: dog : ?  -> puppy (the [SEP] row sits closer to dog + kitten - cat than puppy does)
    code, out, _ = run(embeddings.main, ["analogy", "cat", "kitten", "dog", "-k", 2, "--vectors", "vec.txt"], capsys)
    assert code == 0 and out["neighbours"] == ["puppy"]
    _fails(embeddings.main, ["similar", "<unk>", "--vectors", "vec.txt"], capsys, "'<unk>' is a reserved token",
           code=2)
    _write("run/vectors.txt", RESERVED_VECTORS)  # a word2vec/GloVe run's vectors.txt holds <unk>
    code, out, _ = run(embeddings.main, ["similar", "cat", "-k", 3, "--run-dir", "run"], capsys)
    assert code == 0 and out["neighbours"] == ["kitten", "puppy", "dog"]

    vectors = embeddings.load_vectors("vec.txt")  # without the rule a reserved token would be the answer
    query = vectors.unit[1] - vectors.unit[0] + vectors.unit[6]
    scores = np.where(np.isin(np.arange(len(vectors)), [0, 1, 6]), -np.inf, vectors.unit @ query)
    assert vectors.words[int(np.argmax(scores))] in {"<unk>", "<pad>", "[CLS]", "[MASK]", "[SEP]"}
    questions = _write("q.txt", ": s\ncat kitten dog puppy\n")
    assert embeddings.evaluate(vectors, analogies=questions)["analogy_acc"] == 1.0


# --- files a command writes by default -------------------------------------------------------------------
def test_bpe_learn_writes_only_where_out_says(capsys):
    _write("corpus.txt", "low lower lowest\nnew newer\n")
    _usage_error(bpe.main, ["learn", "--corpus", "corpus.txt"], capsys, "--out")
    _usage_error(bpe.main, ["segment", "low"], capsys, "--merges-file")
    assert list(Path().iterdir()) == [Path("corpus.txt")]
    Path("folder").mkdir()
    _fails(bpe.main, ["learn", "--corpus", "corpus.txt", "--out", "folder"], capsys, "--out folder is a folder",
           "folder/merges.json")
    _fails(bpe.main, ["learn", "--corpus", "corpus.txt", "--out", "/proc/x/merges.json"], capsys,
           "--out /proc/x cannot be written")
    code, out, _ = run(bpe.main, ["learn", "--corpus", "corpus.txt", "--merges", 3, "--out", "m/merges.json"], capsys)
    assert code == 0 and out["out"] == "m/merges.json" and json.loads(Path("m/merges.json").read_text())["merges"]
    assert sorted(p.name for p in Path().iterdir()) == ["corpus.txt", "folder", "m"]


# --- usage errors answer at once ---------------------------------------------------------------------------
@pytest.mark.parametrize("module, usage_error", [
    ("bert", ["pretrain", "--demo", "--num-heads", "3"]), ("bpe", ["segment", "low"]),
    ("embeddings", ["similar", "cat"]), ("glove", ["train", "--epochs", "0"]),
    ("nli", ["train", "--demo", "--model", "bert"]), ("sentiment", ["train", "--demo", "--kernel-sizes", "3,4"]),
    ("word2vec", ["train", "--demo", "--subwords", "6-3"])])
def test_help_and_usage_errors_answer_without_tensorflow(module, usage_error):
    """The command module, its --help, an unknown flag and a bad value: exit 0 or 2, nothing heavy imported."""
    code = (f"import sys\nfrom nlp import {module}\n"
            f"for argv in (['--help'], ['--no-such-flag'], {usage_error!r}):\n"
            f"    try:\n        code = {module}.main(argv)\n    except SystemExit as e:\n        code = e.code\n"
            "    print(code)\n"
            "print(sorted({'tensorflow', 'keras', 'keras_hub', 'torch', 'sklearn', 'matplotlib', 'pandas'} "
            "& set(sys.modules)))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert lines[-4] == "0" and lines[-3:] == ["2", "2", "[]"], (out.stdout[-500:], out.stderr[-2000:])
