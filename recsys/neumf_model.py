"""NeuMF's model, training and evaluation (`recsys.neumf` is its command and configuration).

The model and everything that needs TensorFlow live here, so `python -m recsys.neumf --help` and a
usage error answer without loading it.
"""
import keras
import numpy as np
from keras import ops

from recsys.implicit import UserItemIndex
from recsys.movielens import recommend
from recsys.ranking import pairwise_dataset, ranking_report
from recsys.ranking_model import PairwiseRanker, fit_ranker
from recsys.splits import load_splits
from recsys.tables import interaction_source


@keras.saving.register_keras_serializable(package="dlsuite")
class NeuMF(PairwiseRanker):
    """GMF + MLP fusion; context = user ids `(batch,)`."""

    def __init__(self, num_users, num_items, factors=32, hidden=(64, 32, 16), weight_decay=0.0, loss="bpr",
                 **kwargs):
        super().__init__(loss=loss, **kwargs)
        self.num_users, self.num_items, self.factors = num_users, num_items, factors
        self.hidden, self.weight_decay = list(hidden), weight_decay
        # one initializer per table: a shared one holds one fixed seed and would give tables of
        # the same shape identical starting values
        init = lambda: keras.initializers.RandomNormal(stddev=0.01)  # noqa: E731
        self.gmf_user = keras.layers.Embedding(num_users, factors, embeddings_initializer=init())
        self.gmf_item = keras.layers.Embedding(num_items, factors, embeddings_initializer=init())
        self.mlp_user = keras.layers.Embedding(num_users, factors, embeddings_initializer=init())
        self.mlp_item = keras.layers.Embedding(num_items, factors, embeddings_initializer=init())
        self.mlp = [keras.layers.Dense(h, activation="relu") for h in self.hidden]
        self.head = keras.layers.Dense(1, use_bias=False)

    def penalty(self, users, items):
        """weight_decay x mean squared norm of the four embeddings looked up for the batch."""
        if not self.weight_decay:
            return 0.0
        looked_up = (self.gmf_user(users), self.gmf_item(items), self.mlp_user(users), self.mlp_item(items))
        return self.weight_decay * ops.mean(sum(ops.sum(e * e, axis=-1) for e in looked_up))

    def score(self, users, items, training=False):
        pu, qi = self.gmf_user(users), self.gmf_item(items)
        uu, vi = self.mlp_user(users), self.mlp_item(items)
        h = ops.concatenate([uu, vi], axis=-1)
        for layer in self.mlp:
            h = layer(h)
        return self.head(ops.concatenate([pu * qi, h], axis=-1))[:, 0]

    def score_all(self, users):
        """`(batch, num_items)`: the first MLP layer is split into a user and an item part, so the
        (user, item) grid costs one broadcast add before the remaining layers."""
        items = ops.arange(self.num_items)
        pu, q = self.gmf_user(users), self.gmf_item(items)
        uu, v = self.mlp_user(users), self.mlp_item(items)
        first = self.mlp[0]
        w_user, w_item = first.kernel[:self.factors], first.kernel[self.factors:]
        h = ops.relu(ops.matmul(uu, w_user)[:, None, :] + ops.matmul(v, w_item)[None, :, :] + first.bias)
        for layer in self.mlp[1:]:
            h = layer(h)
        w = self.head.kernel[:, 0]
        gmf = ops.matmul(pu * w[:self.factors], ops.transpose(q))
        return gmf + ops.einsum("bnh,h->bn", h, w[self.factors:])

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "hidden": self.hidden, "weight_decay": self.weight_decay}


def build(config, num_users, num_items):
    model = NeuMF(num_users, num_items, config.factors, config.hidden, config.weight_decay,
                  config.loss)
    model.compile(keras.optimizers.Adam(config.lr))
    model((np.zeros(1, np.int32), np.zeros(1, np.int32)))
    return model


def _load(ctx):
    return load_splits(ctx.data_dir, ctx.demo, "seq-aware", **interaction_source(ctx))


def report(model, known, heldout, k, negatives=None, seed=0):
    """HR@k, NDCG@k and AUC of the held-out items given the `known` interactions (`ranking_report`;
    `negatives`: the sampled protocol)."""
    return ranking_report(lambda users: model.score_all(np.asarray(users, np.int32)), known, heldout, k,
                          negatives, seed)


def train(ctx):
    cfg = ctx.config
    splits = _load(ctx)
    fit = splits.fit
    with ctx.strategy.scope():
        model = build(cfg, fit.num_users, fit.num_items)
    index = UserItemIndex.of(fit)

    def dataset(epoch):
        return pairwise_dataset(fit.users, fit.users, fit.items, index, cfg.batch_size, cfg.seed, epoch)

    return fit_ranker(ctx, model, dataset, lambda m, known, heldout: report(
        m, known, heldout, cfg.top_k, cfg.sampled_negatives(), cfg.seed), splits)


def restore(ctx, num_users, num_items):
    """The run's model (newest checkpoint)."""
    model = build(ctx.config, num_users, num_items)
    ctx.restore(model)
    return model


def evaluate(ctx):
    splits = _load(ctx)
    model = restore(ctx, splits.train.num_users, splits.train.num_items)
    cfg = ctx.config
    return {**report(model, splits.train, splits.test, cfg.top_k, cfg.sampled_negatives(), cfg.seed),
            "protocol": cfg.protocol}


def predict(ctx):
    """The `--top` items with the highest scores for one user, among the items the user has no training
    interaction with (ids as in the ratings file)."""
    train_set = _load(ctx).train
    return recommend(ctx, train_set, lambda user: restore(ctx, train_set.num_users, train_set.num_items).score_all(
        np.array([user], np.int32))[0])


def export(ctx):
    """A SavedModel of the run (`recsys.serving.export_top_k`): a user id of the data in, the `--k` items with
    the highest scores among those the user has no training interaction with out (as `predict`)."""
    from recsys import serving

    serving.check_export(ctx)
    train_set = _load(ctx).train
    model = restore(ctx, train_set.num_users, train_set.num_items)
    return serving.export_top_k(ctx, model, train_set, model.score_all)
