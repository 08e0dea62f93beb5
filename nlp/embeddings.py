"""Word vectors from any source: load, nearest neighbours, analogies, and their evaluation.

`load_vectors(path)` is the public loader the rest of the suite uses (NLI reuses it for its
pretrained GloVe input layer): it reads GloVe text format (`word v1 ... vd`, one a line) and
word2vec text format (the same after a `count dim` first line) into `WordVectors`. The book's
GloVe archives come through `pretrained("glove.6b.50d")`.

    python -m nlp.embeddings similar chip -k 5 --vectors ../shared/data/glove.6b.50d_top20k/vec.txt
    python -m nlp.embeddings analogy man king woman --pretrained glove.6b.50d
    python -m nlp.embeddings evaluate --run-dir runs/word2vec/<time> --similarity wordsim353.tsv \\
        --analogies questions-words.txt

`evaluate` prints one JSON object: `spearman` (WordSim-style file: `word1<TAB>word2<TAB>score`,
`#` lines ignored) over the pairs with both words known, `similarity_pairs`,
`similarity_coverage` (known pairs / all pairs), `analogy_acc` (3CosAdd, the three query words
excluded, over the questions with all four words known), `analogy_coverage`, and
`analogy_sections` (accuracy per `: section`). Lookups are case-insensitive. Vectors that come
with a subword table (word2vec `--subwords`) give unknown words their n-gram vector, so the
coverage rises.
"""
import json
import sys
from pathlib import Path

import numpy as np

from common import cli
from common import data as cdata
from common import runs
from common.errors import DatasetError, DlsuiteError, UsageError
from nlp import subword
from nlp.text import check_text, is_reserved, read_lines

PRETRAINED = {
    "glove.6b.50d": ("http://d2l-data.s3-accelerate.amazonaws.com/glove.6B.50d.zip",
                     "0b8703943ccdb6eb788e6f091b8946e82231bc4d", "vec.txt"),
    "glove.6b.100d": ("http://d2l-data.s3-accelerate.amazonaws.com/glove.6B.100d.zip",
                      "cd43bfb07e44e6f27cbcc7bc9ae3d80284fdaf5a", "vec.txt"),
}
VECTORS_FILE = "vectors.txt"


class WordVectors:
    """Words and their vectors: `words` (list of str), `matrix` float32 `(words, dim)`.

    `oov` (optional) maps an unknown word to a vector or None (word2vec's subword model gives
    one from its character n-grams). Lookups are case-insensitive when `lowercase=True` (the
    first occurrence of a word wins over later case variants). Reserved tokens (`<unk>`, `<pad>`,
    `[CLS]`, ...: `nlp.text.is_reserved`) are never neighbours nor analogy answers, nor queries.
    """

    def __init__(self, words, matrix, oov=None, lowercase=True):
        self.words = list(words)
        self.matrix = np.asarray(matrix, dtype=np.float32)
        self.oov = oov
        self.lowercase = lowercase
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(self._key(w), i)
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        self.unit = self.matrix / np.maximum(norms, 1e-12)
        self.reserved = np.flatnonzero([is_reserved(w) for w in self.words]).astype(np.int64)

    def _key(self, word):
        return word.lower() if self.lowercase else word

    @property
    def dim(self):
        return self.matrix.shape[1]

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return self._key(word) in self.index

    def vector(self, word):
        """The word's vector, its subword vector when unknown and available, else None."""
        i = self.index.get(self._key(word))
        if i is not None:
            return self.matrix[i]
        return self.oov(word) if self.oov is not None else None

    def _unit(self, word):
        if is_reserved(word):
            raise UsageError(f"{word!r} is a reserved token (padding, unknown or a sequence mark), not a word; "
                             "ask about a word")
        v = self.vector(word)
        if v is None:
            raise UsageError(f"{word!r} is not in the vocabulary ({len(self)} words); try another word")
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def nearest(self, query, k=10, exclude=()):
        """The `k` words with the highest cosine similarity to the vector `query`, skipping the
        indices in `exclude` and the reserved tokens: list of (word, cosine); `k` >= 1."""
        if k < 1:
            raise UsageError(f"-k must be at least 1, got {k}")
        scores = self.unit @ (query / max(float(np.linalg.norm(query)), 1e-12))
        skip = set(exclude) | set(self.reserved.tolist())
        scores[list(skip)] = -np.inf
        k = min(k, len(self) - len(skip))
        if k < 1:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.words[i], float(scores[i])) for i in top[:k]]

    def similar(self, word, k=10):
        """The `k` nearest words to `word` by cosine (the word itself excluded)."""
        own = self.index.get(self._key(word))
        return self.nearest(self._unit(word), k, exclude=() if own is None else (own,))

    def analogy(self, a, b, c, k=1):
        """a : b :: c : ?  by 3CosAdd: the words nearest to unit(b) - unit(a) + unit(c), the three
        query words excluded. Returns a list of (word, cosine)."""
        query = self._unit(b) - self._unit(a) + self._unit(c)
        exclude = {self.index[self._key(w)] for w in (a, b, c) if self._key(w) in self.index}
        return self.nearest(query, k, exclude=exclude)


def _parse_floats(parts, path, number):
    try:
        return [float(x) for x in parts]
    except ValueError:
        bad = next(x for x in parts if not _is_float(x))
        raise DatasetError(f"{path} line {number}: {bad!r} is not a number") from None


def _is_float(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_vectors(path, limit=None, lowercase=True):
    """Read word vectors in GloVe text format (`word v1 ... vd` a line) or word2vec text format
    (a first line `count dim`, then the same) into `WordVectors`.

    `limit` keeps the first `limit` words (files list the frequent ones first). Raises
    `DatasetError` with the line number for a line whose dimension differs from the first
    vector's or that holds a non-numeric value, and for an empty file.
    """
    path = check_text(path, "vectors file", "pass vectors in GloVe or word2vec text format (convert word2vec's "
                                            "binary .bin format to text first)")
    words, rows, dim, declared = [], [], None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                declared = (int(parts[0]), int(parts[1]))
                dim = declared[1]
                continue
            if not line.strip():
                continue
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise DatasetError(f"{path} line {number}: a word with no vector; "
                                       "expected 'word v1 ... vd' (GloVe text format)")
            if len(parts) - 1 != dim:
                raise DatasetError(f"{path} line {number}: {len(parts) - 1} values where the vectors have {dim}; "
                                   "every line must be 'word' and the same number of values")
            words.append(parts[0])
            rows.append(_parse_floats(parts[1:], path, number))
            if limit is not None and len(words) >= limit:
                break
    if not words:
        raise DatasetError(f"{path} holds no vectors; expected lines 'word v1 ... vd'")
    if declared is not None and limit is None and declared[0] != len(words):
        raise DatasetError(f"{path}: the header announces {declared[0]} vectors but the file has {len(words)}")
    return WordVectors(words, np.array(rows, dtype=np.float32), lowercase=lowercase)


def save_vectors(path, words, matrix):
    """Write vectors in GloVe text format (`word v1 ... vd` a line, 6 significant digits),
    atomically."""
    from common.files import atomic_path

    matrix = np.asarray(matrix, dtype=np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for word, row in zip(words, matrix):
                f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
    return Path(path)


def pretrained(name):
    """Path of the book's pretrained vectors `name` (`glove.6b.50d`, `glove.6b.100d`): the
    archive is downloaded (SHA-1 checked) and extracted into the dataset cache once."""
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained vectors {name!r}; choose one of {', '.join(PRETRAINED)}")
    url, sha1, file = PRETRAINED[name]
    return cdata.resolve_dataset(name, required=[file], url=url, sha1=sha1) / file


# --- evaluation ----------------------------------------------------------------------------------
def read_similarity(path):
    """(word1, word2, score) triples of a WordSim-style file (tab-separated, `#` lines ignored)."""
    lines = read_lines(path, "similarity file", "pass word1<TAB>word2<TAB>score lines such as wordsim353.tsv")
    triples = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not _is_float(parts[2]):
            raise DatasetError(f"{path} line {number}: expected 'word1<TAB>word2<TAB>score', got {line!r}")
        triples.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
    if not triples:
        raise DatasetError(f"{path} holds no word pairs; expected word1<TAB>word2<TAB>score lines")
    return triples


def read_analogies(path):
    """Google analogy questions: list of (section, a, b, c, d) from `: section` headers and
    `a b c d` lines."""
    lines = read_lines(path, "analogy file", "pass Google analogy questions ('a b c d' lines) such as "
                                             "questions-words.txt")
    section, questions = "", []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        parts = line.split()
        if len(parts) != 4:
            raise DatasetError(f"{path} line {number}: expected four words 'a b c d', got {line!r}")
        questions.append((section, *parts))
    if not questions:
        raise DatasetError(f"{path} holds no analogy questions; expected 'a b c d' lines under ': section' headers")
    return questions


def spearman(x, y):
    """Spearman rank correlation of two 1-D arrays (average ranks for ties; NaN when either is constant):
    `scipy.stats.spearmanr`."""
    from scipy import stats

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def evaluate_similarity(vectors, triples):
    """Spearman correlation between cosine similarity and the human scores over the pairs whose
    two words have vectors; a dict with `spearman`, `similarity_pairs` (pairs used),
    `similarity_coverage` (used / all)."""
    cosines, gold = [], []
    for a, b, score in triples:
        va, vb = vectors.vector(a), vectors.vector(b)
        if va is None or vb is None:
            continue
        cosines.append(float(va @ vb) / max(float(np.linalg.norm(va) * np.linalg.norm(vb)), 1e-12))
        gold.append(score)
    rho = spearman(cosines, gold) if len(gold) >= 2 else float("nan")
    return {"spearman": round(rho, 4), "similarity_pairs": len(gold),
            "similarity_coverage": round(len(gold) / len(triples), 4)}


def evaluate_analogies(vectors, questions, batch=1024):
    """3CosAdd accuracy over the questions whose four words are in the vocabulary (the three
    query words and the reserved tokens excluded from the answers), vectorised in batches of questions. Returns
    `analogy_acc`, `analogy_questions`, `analogy_coverage` and `analogy_sections`."""
    keys = [[vectors._key(w) for w in q[1:]] for q in questions]
    known = [all(k in vectors.index for k in q) for q in keys]
    idx = np.array([[vectors.index[k] for k in q] for q, ok in zip(keys, known) if ok], dtype=np.int64)
    sections = [q[0] for q, ok in zip(questions, known) if ok]
    correct = np.zeros(len(idx), dtype=bool)
    for start in range(0, len(idx), batch):
        part = idx[start:start + batch]
        query = vectors.unit[part[:, 1]] - vectors.unit[part[:, 0]] + vectors.unit[part[:, 2]]
        scores = query @ vectors.unit.T
        rows = np.arange(len(part))[:, None]
        scores[rows, part[:, :3]] = -np.inf
        scores[:, vectors.reserved] = -np.inf
        correct[start:start + batch] = scores.argmax(axis=1) == part[:, 3]
    per_section = {}
    for name in dict.fromkeys(q[0] for q in questions):
        hits = [c for c, s in zip(correct, sections) if s == name]
        per_section[name] = round(float(np.mean(hits)), 4) if hits else None
    return {"analogy_acc": round(float(correct.mean()), 4) if len(correct) else None,
            "analogy_questions": int(len(correct)), "analogy_coverage": round(len(correct) / len(questions), 4),
            "analogy_sections": per_section}


def evaluate(vectors, similarity=None, analogies=None):
    """Both evaluations for the files given (paths or None); one flat dict."""
    if similarity is None and analogies is None:
        raise UsageError("nothing to evaluate: pass --similarity FILE and/or --analogies FILE")
    result = {"vocabulary": len(vectors), "dim": vectors.dim}
    if similarity is not None:
        result.update(evaluate_similarity(vectors, read_similarity(similarity)))
    if analogies is not None:
        result.update(evaluate_analogies(vectors, read_analogies(analogies)))
    return result


def reference_files():
    """(wordsim353.tsv, questions-words.txt) shipped in gensim's test data, or (None, None) when
    gensim is not installed. gensim is located, never imported."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    folder = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"
    files = folder / "wordsim353.tsv", folder / "questions-words.txt"
    return tuple(f if f.is_file() else None for f in files)


def cluster_precision(vectors, clusters):
    """The mean, over the words of `clusters` (name -> word list) that have vectors, of the
    fraction of a word's (cluster size - 1) nearest clustered words that share its cluster (by
    chance about (size - 1) / (words - 1), 0.15 for the demo corpus's six clusters of ten)."""
    words = [w for c in clusters.values() for w in c if w in vectors]
    label = np.array([i for i, c in enumerate(clusters.values()) for w in c if w in vectors])
    if len(words) < 2:
        raise DlsuiteError("none of the cluster words are in the vocabulary")
    unit = np.stack([vectors.unit[vectors.index[vectors._key(w)]] for w in words])
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    sizes = np.bincount(label)
    hits = [np.mean(label[np.argsort(-sims[i], kind="stable")[:sizes[label[i]] - 1]] == label[i])
            for i in range(len(words))]
    return round(float(np.mean(hits)), 4)


# --- commands --------------------------------------------------------------------------------------
def load_run(run_dir):
    """`WordVectors` of a word2vec or GloVe run directory, its `vectors.txt`; a run that kept an n-gram
    table (`nlp.subword.TABLE_FILE`, word2vec `--subwords`) gives unknown words their n-gram vector."""
    run_dir = Path(run_dir)
    path = run_dir / VECTORS_FILE
    if not path.is_file():
        raise DlsuiteError(f"{run_dir} holds no {VECTORS_FILE}; train into it first (or pass --vectors FILE)")
    table = run_dir / subword.TABLE_FILE
    config = run_config(run_dir)
    if not table.is_file() and config.get("subwords"):
        trainer = runs.module_of(config) or "the module that trained it"
        raise DatasetError(f"{run_dir} was trained with --subwords but holds no {subword.TABLE_FILE} (an older run); "
                           f"read it with python -m {trainer} similar|analogy|evaluate --run-dir {run_dir}")
    vectors = load_vectors(path)
    if table.is_file():
        vectors.oov = subword.SubwordVectors.load(table)
    return vectors


def run_config(run_dir):
    """The run's config.json as a dict ({} when absent); one-line `DatasetError` when corrupt."""
    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        config = None
    if not isinstance(config, dict):
        raise DatasetError(f"{path} is corrupt (not a JSON object); restore it or train a new run")
    return config


def _neighbours(pairs):
    return {"neighbours": [w for w, _ in pairs], "cosines": [round(c, 4) for _, c in pairs]}


def _similar(vectors, args):
    return {"word": args.word, **_neighbours(vectors.similar(args.word, args.k))}


def _analogy(vectors, args):
    return {"query": [args.a, args.b, args.c], **_neighbours(vectors.analogy(args.a, args.b, args.c, args.k))}


def _evaluate(vectors, args, demo=False):
    similarity, analogies = args.similarity, args.analogies
    if similarity is None and analogies is None and not demo:
        similarity, analogies = reference_files()
        if similarity is None and analogies is None:
            raise UsageError("pass --similarity FILE and/or --analogies FILE (gensim's test data, which holds "
                             "WordSim353 and the Google analogies, is not installed)")
    result = evaluate(vectors, similarity, analogies) if (similarity or analogies) else {
        "vocabulary": len(vectors), "dim": vectors.dim}
    if demo:
        from nlp.data import DEMO_TOPICS

        result["cluster_precision"] = cluster_precision(vectors, DEMO_TOPICS)
    return result


def _similar_arguments(p):
    p.add_argument("word", help="the query word")
    p.add_argument("-k", type=cli.positive_int, default=10, help="how many neighbours, at least 1 (default 10)")


def _analogy_arguments(p):
    for name, text in (("a", "a in a : b :: c : ?"), ("b", "b"), ("c", "c")):
        p.add_argument(name, help=text)
    p.add_argument("-k", type=cli.positive_int, default=1, help="how many answers, at least 1 (default 1)")


def _evaluate_arguments(p):
    p.add_argument("--similarity", type=Path, metavar="FILE",
                   help="word1<TAB>word2<TAB>score lines (default: gensim's wordsim353.tsv when installed)")
    p.add_argument("--analogies", type=Path, metavar="FILE",
                   help="Google analogy file (default: gensim's questions-words.txt when installed)")


def run_commands(load=load_run):
    """The `evaluate`, `similar` and `analogy` commands over a trained run's vectors, for a
    trainer's `COMMANDS` table (word2vec, GloVe); `load(run_dir)` reads the vectors (`load_run`)."""
    def command(fn, with_demo=False):
        if with_demo:
            return lambda ctx: fn(load(ctx.run_dir), ctx.args, ctx.demo)
        return lambda ctx: fn(load(ctx.run_dir), ctx.args)

    return {
        "evaluate": cli.Command(command(_evaluate, True), "WordSim Spearman and analogy accuracy of a run's vectors "
                                "(--demo: the demo clusters' precision)", add_arguments=_evaluate_arguments),
        "similar": cli.Command(command(_similar), "nearest words by cosine", add_arguments=_similar_arguments),
        "analogy": cli.Command(command(_analogy), "a : b :: c : ? by 3CosAdd", add_arguments=_analogy_arguments),
    }


def _vectors_arguments(p):
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--vectors", type=Path, metavar="FILE", help="GloVe or word2vec text format file")
    source.add_argument("--pretrained", choices=sorted(PRETRAINED), help="the book's GloVe vectors (downloaded)")
    source.add_argument("--run-dir", type=Path, help="a word2vec or GloVe run directory")
    p.add_argument("--limit", type=cli.positive_int, help="read only the first LIMIT vectors (at least 1)")


def _over_vectors(fn, help, add_arguments):
    """A tool running `fn(vectors, args)` on the vectors that --vectors/--pretrained/--run-dir name."""
    def tool(args):
        if args.run_dir is not None:
            return fn(load_run(args.run_dir), args)
        return fn(load_vectors(args.vectors or pretrained(args.pretrained), limit=args.limit), args)

    def arguments(p):
        _vectors_arguments(p)
        add_arguments(p)
    return cli.Tool(tool, help, arguments)


TOOLS = {"similar": _over_vectors(_similar, "nearest words by cosine", _similar_arguments),
         "analogy": _over_vectors(_analogy, "a : b :: c : ? by 3CosAdd", _analogy_arguments),
         "evaluate": _over_vectors(_evaluate, "WordSim Spearman and analogy accuracy", _evaluate_arguments)}


def main(argv=None):
    """`python -m nlp.embeddings similar|analogy|evaluate` over --vectors, --pretrained or --run-dir."""
    return cli.tool_main("nearest words, analogies and evaluation of word vectors (GloVe or word2vec text format)",
                         TOOLS, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
