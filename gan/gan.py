"""The book's GAN on Gaussian data (D2L 17.1): `python -m gan.gan train|evaluate|generate`.

Data X = Z A + b (Z standard normal, A = [[1, 2], [-0.1, 0.5]], b = [1, 2], 1000 points);
a linear generator; an MLP discriminator 2 -> 5 -> 3 -> 1 with tanh; Adam with
discriminator lr 0.05 and generator lr 0.005; latent dim 2; batch 8; 20 epochs.

The models and their training are `gan.gan_model`, imported (with TensorFlow) when a command
runs, so `--help` and a usage error answer at once.
"""
import sys
from dataclasses import dataclass, field

from common import cli
from common.errors import UsageError


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 20
    batch_size: int = 8
    lr: float = 0.005
    d_lr: float = field(default=0.05, metadata=cli.positive("Adam learning rate of the discriminator"))
    latent_dim: int = field(default=2, metadata=cli.at_least(1, "size of the generator's noise input"))
    n_points: int = field(default=1000, metadata=cli.at_least(1, "points of the Gaussian data set"))

    def validate(self):
        super().validate()
        if self.n_points < self.batch_size:
            raise UsageError(f"--n-points {self.n_points} is smaller than --batch-size {self.batch_size}")


DEMO = {"epochs": 10}


def _generate_arguments(parser):
    parser.add_argument("--n", type=cli.positive_int, default=10, help="number of points (default: 10)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the noise (default: 0)")


MODEL = cli.ModelModule("gan.gan_model")  # the models and their training, imported when a command runs
__getattr__ = MODEL.forward  # gan.gan.GAN, .GaussianGAN, .gan_dataset, .build, ... from gan.gan_model

VERBS = {"predict": "generate"}  # the field's word for what a trained GAN answers
COMMANDS = {"train": cli.Command(MODEL.command("train"), "train the GAN on the book's 2-D Gaussian data", trains=True),
            "evaluate": cli.Command(MODEL.command("evaluate"), "mean and covariance of generated vs real samples"),
            "generate": cli.Command(MODEL.command("generate"), "draw points from the trained generator",
                                    add_arguments=_generate_arguments)}
SPEC = cli.Spec("gan.gan", "The book's GAN on 2-D Gaussian data (D2L 17.1)", Config, COMMANDS, DEMO, model=MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, generate = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("generate")


if __name__ == "__main__":
    sys.exit(main())
