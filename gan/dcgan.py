"""The book's DCGAN (D2L 17.2) on sprite images: `python -m gan.dcgan train|evaluate|generate`.

Generator: z (batch, latent_dim) -> a 4x4 transposed convolution, then stride-2
transposed-convolution blocks (batch norm, ReLU) that double the size, and a last
transposed convolution to 3 channels with tanh. Discriminator: stride-2 convolutions with
LeakyReLU(0.2), batch norm on every block but the first, and a 4x4 convolution to one
logit. Convolution weights ~ N(0, 0.02); Adam with beta_1 = 0.5. The defaults (32x32,
widths 64, batch 32, lr 2e-4, 100 epochs) give sprite-like figures on the 2,093 real sprites
in 10 CPU-minutes (22 minutes wall on a shared 2-core machine); `--preset book` gives the
book's setting (64x64, widths 64, batch 256, lr 0.005, 20 epochs).

Every epoch writes a fixed-noise sample grid (`samples/epoch-NNNN.png`) and the sample
quality (`gan.quality`: Frechet distance in the features of a rotation classifier the
suite trains on the real training split), with its floor (held-out real images) and
ceiling (the untrained generator) in `quality_reference.json`.
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.errors import UsageError
from gan import data

BOOK = {"image_size": 64, "gen_width": 64, "disc_width": 64, "latent_dim": 100, "batch_size": 256,
        "lr": 0.005, "epochs": 20, "flip": False, "augment": "none", "ema": 0.0, "spectral_norm": False, "loss": "bce"}
AUGMENTATIONS = ("color", "translation", "cutout")  # gan.diffaugment.OPS, in the order they are applied


@dataclass
class Config(cli.TrainConfig):
    epochs: int = 100
    batch_size: int = 32
    lr: float = field(default=0.0002, metadata={"help": "Adam learning rate of both networks"})
    image_size: int = field(default=32, metadata={"choices": [16, 32, 64, 128], "help": "image side in pixels"})
    latent_dim: int = field(default=100, metadata=cli.at_least(1, "size of the generator's noise input"))
    gen_width: int = field(default=64, metadata=cli.at_least(
        1, "channels of the generator's last block (doubling inwards)"))
    disc_width: int = field(default=64, metadata=cli.at_least(
        1, "channels of the discriminator's first block (doubling)"))
    beta_1: float = field(default=0.5, metadata=cli.bounds("[0, 1)", "Adam beta_1"))
    background: str = field(default="white", metadata={"choices": sorted(data.BACKGROUNDS),
                                                       "help": "colour transparent pixels are composited onto"})
    flip: bool = field(default=True, metadata={"help": "random left-right flips of the real images"})
    holdout: float = field(default=0.15, metadata=cli.bounds(
        "(0, 0.5)", "fraction of images held out as the quality floor"))
    quality_epochs: int = field(default=4, metadata=cli.at_least(1, "epochs of the quality metric's feature network"))
    augment: str = field(default="translation", metadata={
        "help": "differentiable augmentations of every image the discriminator sees (DiffAugment): a comma list "
                f"of {', '.join(AUGMENTATIONS)}, or none"})
    ema: float = field(default=0.999, metadata=cli.bounds(
        "[0, 1)", "decay of the moving average of the generator's weights that draws the samples (0: none)"))
    spectral_norm: bool = field(default=False, metadata={
        "help": "spectral normalisation of the discriminator's convolutions (in place of its batch norms)"})
    loss: str = field(default="bce", metadata={"choices": ["bce", "hinge"], "help": "adversarial loss"})

    def validate(self):
        super().validate()
        self.augment_policy  # noqa: B018 (raises UsageError on an unknown name)

    @property
    def augment_policy(self):
        """--augment as a tuple of names in the order they are applied (() for none)."""
        names = [n.strip() for n in self.augment.split(",") if n.strip()]
        if names in ([], ["none"]):
            return ()
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise UsageError(f"--augment {unknown[0]!r} is not an augmentation; give a comma list of "
                                 f"{','.join(AUGMENTATIONS)}, or none")
        return tuple(n for n in AUGMENTATIONS if n in names)


DEMO = {"epochs": 4, "batch_size": 32, "lr": 0.0005, "gen_width": 32, "disc_width": 32, "quality_epochs": 2}


def _generate_arguments(parser):
    parser.add_argument("--n", type=cli.positive_int, default=64, help="number of images (default: 64)")
    parser.add_argument("--out", type=Path, help="directory to write sample_NNNN.png into (default: RUN_DIR/samples)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--interpolate", type=cli.positive_int, metavar="STEPS",
                        help="also write interpolation.png: 4 latent walks of STEPS images between two random points")


MODEL = cli.ModelModule("gan.dcgan_model")  # the networks and their training, imported when a command runs
__getattr__ = MODEL.forward  # gan.dcgan.DCGAN, .build_generator, .build, ... from gan.dcgan_model

VERBS = {"predict": "generate"}  # the field's word for what a trained GAN answers
COMMANDS = {
    "train": cli.Command(MODEL.command("train"), "train the DCGAN on sprite images", trains=True),
    "evaluate": cli.Command(MODEL.command("evaluate"), "sample quality (Frechet distance) with its floor and ceiling"),
    "generate": cli.Command(MODEL.command("generate"), "write generated images from a checkpoint",
                            add_arguments=_generate_arguments),
}
PRESETS = {"book": BOOK}
SPEC = cli.Spec("gan.dcgan", "The book's DCGAN on sprite images (D2L 17.2)", Config, COMMANDS, DEMO, PRESETS, MODEL)
main, load = SPEC.main, SPEC.load
train, evaluate, generate = SPEC.api("train"), SPEC.api("evaluate"), SPEC.api("generate")


if __name__ == "__main__":
    sys.exit(main())
