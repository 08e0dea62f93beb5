"""NeuMF (the book's 16.6): generalized matrix factorization fused with an MLP, ranked with BPR.

score(u, i) = h . [p_u * q_i, MLP([u_u, v_i])] with separate embeddings for the GMF and
MLP paths, trained on the sequence-aware split's implicit feedback with one sampled
negative per observed interaction per epoch and the BPR (or hinge) loss. Each user's
second-to-last item is held out for validation (`val_hr_at_10`, `val_auc`, ... every
epoch); the test ranks each user's latest item against every item the user has not
interacted with, once at the end of `train` and by `evaluate`.

    python -m recsys.neumf train --data-dir PATH/TO/ml-100k
    python -m recsys.neumf evaluate        # the newest run, on the data it was trained on
    python -m recsys.neumf evaluate --top-k 50             # HR@50 and NDCG@50 of the same run
    python -m recsys.neumf predict --user 3 --top 5        # the user's best-scored items they have not seen
"""
import sys
from dataclasses import dataclass, field

from common import cli
from recsys.movielens import TFDS, export_arguments, recommend_arguments
from recsys.ranking import RankingConfig, protocol_arguments


@dataclass
class Config(RankingConfig):
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 0.002
    factors: int = field(default=64, metadata=cli.at_least(1, "GMF and MLP embedding size"))
    hidden: tuple = field(default=(64, 32, 16), metadata=cli.int_list("MLP layer widths"))
    weight_decay: float = field(default=1e-3, metadata=cli.bounds("[0, inf)", "L2 penalty on the batch's embeddings"))


DEMO = {"epochs": 4, "factors": 16, "hidden": (32, 16), "batch_size": 256, "lr": 0.005}


MODEL = cli.ModelModule("recsys.neumf_model")  # the model and its training, imported when a command runs
__getattr__ = MODEL.forward  # recsys.neumf.NeuMF, .build, .report, ... from recsys.neumf_model

COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train NeuMF on the sequence-aware split (implicit feedback)",
                         trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "HR@k, NDCG@k and AUC of a trained run",
                            add_arguments=protocol_arguments),
    "predict": cli.Command(MODEL.command("predict"), "recommend items for one user (not those they interacted with)",
                           add_arguments=recommend_arguments),
    "export": cli.Command(MODEL.command("export"), "a SavedModel of the run: user id in, top-k unrated items out",
                          add_arguments=export_arguments),
}
SPEC = cli.Spec("recsys.neumf", "NeuMF on MovieLens (implicit feedback, BPR)", Config, COMMANDS, DEMO, model=MODEL,
                tfds=TFDS)
main, load = SPEC.main, SPEC.load
train, evaluate, predict = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("predict")
export = SPEC.api("export")


if __name__ == "__main__":
    sys.exit(main())
