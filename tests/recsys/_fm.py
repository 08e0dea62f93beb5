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
