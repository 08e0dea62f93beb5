"""Word embeddings on the real PTB: our word2vec against gensim 4.4, and GloVe's counting and training.

Each measurement runs in its own subprocess (so peak memory is its own) and prints one JSON
line (benchmarks/harness.py): wall seconds of the whole call (corpus reading, vocabulary,
training), training tokens per second (tokens left after subsampling, summed over epochs, per
second of wall time), WordSim353 Spearman (gensim's test file, our evaluation for both sides)
and peak RSS. The last line holds the ratio of wall times at equal quality: how long our
default run takes against how long gensim needs for 20 epochs, whose score is the bar. With
`--seeds N` both run N times (seeds 0..N-1, alternating) and their medians are compared: one
run's Spearman over PTB's 237 covered pairs moves by about 0.02 from seed to seed.

    python benchmarks/nlp_word2vec.py --data-dir ../shared/data/ptb --seeds 3
    python benchmarks/nlp_word2vec.py --data-dir ../shared/data/ptb --only ours -- --epochs 8

Arguments after `--` go to `python -m nlp.word2vec train`.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine, peak_rss_mb  # noqa: E402


def _line(what, unit, count, seconds, **extra):
    return {"what": what, "unit": unit, "rate": round(count / seconds, 1), "seconds": round(seconds, 2),
            "count": count, "peak_rss_mb": peak_rss_mb(), "machine": machine(), **extra}


def gensim_run(data_dir, epochs, seed=0):
    import gensim

    from nlp import data as ndata
    from nlp import embeddings as E

    tic = time.perf_counter()
    sentences = ndata.read_sentences(Path(data_dir) / "ptb.train.txt")
    model = gensim.models.Word2Vec(sentences, sg=1, vector_size=100, window=5, negative=5, sample=1e-4,
                                   min_count=1, workers=2, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - tic
    vectors = E.WordVectors(model.wv.index_to_key, model.wv.vectors)
    similarity = E.evaluate_similarity(vectors, E.read_similarity(E.reference_files()[0]))
    effective = _gensim_effective_words(model, sentences, epochs)
    return _line(f"gensim {gensim.__version__} skip-gram, {epochs} epochs, seed {seed}", "training tokens",
                 effective, seconds,
                 spearman=similarity["spearman"], similarity_pairs=similarity["similarity_pairs"],
                 chip=[w for w, _ in vectors.similar("chip", 5)])


def _gensim_effective_words(model, sentences, epochs):
    """Tokens gensim keeps after its own subsampling, summed over the epochs (its expected value:
    sum over tokens of its keep probability, which `sample_int` stores scaled by 2^32)."""
    counts = np.array([model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key], dtype=np.float64)
    keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in model.wv.index_to_key], dtype=np.float64)
    return int(epochs * float((counts * np.minimum(keep / 2 ** 32, 1.0)).sum()))


def ours_run(data_dir, extra):
    from nlp import word2vec

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        tic = time.perf_counter()
        code = word2vec.main(["train", "--data-dir", str(data_dir), "--run-dir", str(run_dir), *extra])
        seconds = time.perf_counter() - tic
        if code:
            raise SystemExit(code)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        from nlp import embeddings as E

        vectors = E.load_vectors(run_dir / E.VECTORS_FILE)
        tokens = sum(m["tokens_per_s"] * m["time_s"] for m in metrics)
    return _line(f"dlsuite word2vec {config['model']} ({' '.join(extra) or 'defaults'})", "training tokens",
                 int(tokens), seconds, spearman=metrics[-1].get("spearman"),
                 spearman_per_epoch=[m.get("spearman") for m in metrics],
                 epoch_seconds=[m["time_s"] for m in metrics],
                 chip=[w for w, _ in vectors.similar("chip", 5)])


def glove_run(data_dir, extra):
    from nlp import glove

    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = glove.main(["train", "--data-dir", str(data_dir), "--run-dir", str(Path(tmp) / "run"), *extra])
        seconds = time.perf_counter() - tic
        if code:
            raise SystemExit(code)
        result = json.loads(out.getvalue().strip().splitlines()[-1])
        from nlp import embeddings as E

        evaluation = E.evaluate(E.load_vectors(Path(tmp) / "run" / E.VECTORS_FILE), *E.reference_files())
    return _line("dlsuite GloVe", "co-occurrence entries", result["entries"], seconds,
                 count_tokens_per_s=result["count_tokens_per_s"], train_entries_per_s=result["entries_per_s"],
                 spearman=evaluation["spearman"], analogy_acc=evaluation["analogy_acc"],
                 analogy_coverage=evaluation["analogy_coverage"])


def _run_one(data_dir, name, seed, extra):
    """One measurement in its own process; its JSON line, or an error line."""
    cmd = [sys.executable, __file__, "--data-dir", str(data_dir), "--only", name, "--seed", str(seed)]
    cmd += ["--", *extra] if name == "ours" and extra else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    found = [line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not found:
        return {"what": name, "seed": seed, "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(found[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="directory holding ptb.train.txt")
    parser.add_argument("--only", choices=["ours", "gensim5", "gensim20", "glove"], help="one measurement")
    parser.add_argument("--seed", type=int, default=0, help="with --only: the seed of that run")
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs of gensim's 20 epochs and of ours, seeds 0..N-1, compared by their medians")
    parser.add_argument("extra", nargs="*", help="flags for nlp.word2vec train (after --)")
    args = parser.parse_args()
    if args.only:
        if args.only == "ours":
            line = ours_run(args.data_dir, [*args.extra, "--seed", str(args.seed)])
        elif args.only == "glove":
            line = glove_run(args.data_dir, args.extra)
        else:
            line = gensim_run(args.data_dir, int(args.only[6:]), args.seed)
        print("RESULT " + json.dumps(line), flush=True)
        return
    results = {"gensim20": [], "ours": []}
    plan = [("gensim5", 0)] + [(name, seed) for seed in range(args.seeds) for name in ("gensim20", "ours")]
    for name, seed in plan + [("glove", 0)]:
        line = _run_one(args.data_dir, name, seed, args.extra)
        print(json.dumps(line), flush=True)
        if name in results and "error" not in line:
            results[name].append(line)
    if results["ours"] and results["gensim20"]:
        ours, peer = results["ours"], results["gensim20"]
        median = lambda lines, key: float(np.median([line[key] or 0 for line in lines]))  # noqa: E731
        print(json.dumps({"what": "wall-time ratio gensim 20 epochs / ours (above 1: ours faster), medians over "
                                  f"{len(ours)} seeds",
                          "ratio": round(median(peer, "seconds") / median(ours, "seconds"), 3),
                          "ours_seconds": round(median(ours, "seconds"), 2),
                          "gensim_seconds": round(median(peer, "seconds"), 2),
                          "ours_spearman": round(median(ours, "spearman"), 4),
                          "gensim_spearman": round(median(peer, "spearman"), 4),
                          "equal_or_better_quality": median(ours, "spearman") >= median(peer, "spearman")}), flush=True)


if __name__ == "__main__":
    main()
