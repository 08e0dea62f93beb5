"""Backbones for dense prediction: the book's ResNet-18 in Keras, and Keras' ResNet-50.

Both return a functional `keras.Model` mapping raw RGB pixels (0-255, float) of any
size to the last convolutional feature map, output stride 32 (no global pooling, no
classifier): the part of the network that FCN keeps.

ImageNet weights for the resnet18 backbone come from torchvision's checkpoint, converted
on any machine (torch needed, not torchvision):

    curl -LO https://download.pytorch.org/models/resnet18-f37072fd.pth
    python -m vision.resnet convert-torchvision resnet18-f37072fd.pth resnet18_imagenet.weights.h5
    python -m vision.fcn train --width 64 --backbone-weights resnet18_imagenet.weights.h5

This module is that tool's command; the networks and the converter are `vision.resnet_model`
(whose names this module also gives: `vision.resnet.build_backbone`), loaded with Keras when used.
"""
import argparse
import pickle
import sys
from pathlib import Path

from common import cli
from common.errors import DlsuiteError
from common.files import writable_dir


def _weights_path(text):
    """argparse type: an output path Keras can save weights to (it must end in .weights.h5)."""
    if not text.endswith(".weights.h5"):
        raise argparse.ArgumentTypeError(f"{text}: the output path must end in .weights.h5")
    return text


def _convert(args):
    from common.extras import require

    torch = require("torch", "gp")
    out = Path(args.out)
    if out.is_dir():
        raise DlsuiteError(f"{out} is a folder; name the .weights.h5 file to write")
    writable_dir(out.parent, "the output folder")  # before the checkpoint is read
    try:
        state_dict = torch.load(args.source, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        reason = "not a tensor-only PyTorch checkpoint" if isinstance(e, pickle.UnpicklingError) else \
            (str(e) or type(e).__name__).splitlines()[0]
        raise DlsuiteError(f"cannot read {args.source} ({reason}); "
                           "download https://download.pytorch.org/models/resnet18-f37072fd.pth") from None
    if not isinstance(state_dict, dict):
        raise DlsuiteError(f"{args.source} holds a {type(state_dict).__name__}, not a state dict; "
                           "download https://download.pytorch.org/models/resnet18-f37072fd.pth")
    _model().convert_torchvision_resnet18(state_dict, args.out)
    return {"out": args.out, "use": f"python -m vision.fcn train --width 64 --backbone-weights {args.out}"}


def _convert_arguments(p):
    p.add_argument("source", help="torchvision checkpoint, e.g. resnet18-f37072fd.pth")
    p.add_argument("out", type=_weights_path, help="output path ending in .weights.h5")


TOOLS = {"convert-torchvision": cli.Tool(_convert, "torchvision resnet18 .pth -> Keras .weights.h5",
                                         _convert_arguments)}


def _model():
    """`vision.resnet_model`: the networks and the converter, imported (with Keras) when a tool runs."""
    from vision import resnet_model

    return resnet_model


def __getattr__(name):
    """The backbones' names (`resnet18`, `build_backbone`, `ImagePreprocess`, ...) from `vision.resnet_model`."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_model(), name)


def main(argv=None):
    return cli.tool_main("backbone weight tools", TOOLS, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
