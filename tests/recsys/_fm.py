"""A factorization machine with random (seeded) parameters, for exact checks of its terms."""
import numpy as np

from recsys import fm


def randomised_fm(x, num_features=9, factors=3, **kwargs):
    """Build an FM on `x`, draw every parameter from N(0, 1); return (model, v, w, b)."""
    model = fm.FactorizationMachine(num_features=num_features, factors=factors, **kwargs)
    model(x)
    rng = np.random.default_rng(0)
    for weight in model.trainable_variables:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    v, w = np.asarray(model.embedding.embeddings), np.asarray(model.linear.embeddings)[:, 0]
    return model, v, w, float(model.bias)


def check_ctr_predict(module, data_dir, run_dir, **config):
    """Train `module` (recsys.fm or recsys.deepfm) one epoch on the book-format `data_dir`; its predict's click
    probability of a test.csv line (given with its label, without it, or as --data FILE) equals the sigmoid of the
    loaded model's output on the line encoded with the training file's vocabulary, computed here."""
    from pathlib import Path

    from recsys.ctr import CTR_THRESHOLD, FieldVocabulary, read_ctr_file

    module.train(module.Config(epochs=1, batch_size=256, **config), data_dir=str(data_dir), run_dir=run_dir)
    _, raw_train = read_ctr_file(Path(data_dir) / "train.csv")
    _, raw_test = read_ctr_file(Path(data_dir) / "test.csv")
    features = FieldVocabulary(raw_train, CTR_THRESHOLD).encode(raw_test)
    logits = module.load(run_dir).predict(features, verbose=0)
    expected = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    lines = (Path(data_dir) / "test.csv").read_text().splitlines()
    labelled = module.predict(run_dir, row=lines[:3])
    unlabelled = module.predict(run_dir, row=[line.split("\t", 1)[1] for line in lines[:3]])
    assert labelled == unlabelled and labelled["rows"] == 3
    np.testing.assert_allclose(labelled["probabilities"], expected[:3], atol=1e-6)
    whole = module.predict(run_dir, data=str(Path(data_dir) / "test.csv"))
    assert whole["rows"] == len(lines)
    np.testing.assert_allclose(whole["probabilities"], expected, atol=1e-6)
    return whole
