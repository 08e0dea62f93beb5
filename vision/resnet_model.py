"""Backbones for dense prediction: the book's ResNet-18 in Keras, Keras' ResNet-50, and the converter of
torchvision's ResNet-18 weights (`vision.resnet` is the converter's command).

Both backbones return a functional `keras.Model` mapping raw RGB pixels (0-255, float) of any size to the
last convolutional feature map, output stride `vision.architectures.FEATURE_STRIDE` (32; no global
pooling, no classifier): the part of the network that FCN (`vision.fcn_model`) keeps.
"""
import socket

import keras
import numpy as np

from common.errors import DlsuiteError, UsageError
from vision.architectures import BACKBONES

# The last layer of the stride-8 and stride-16 stages, where FCN-16s/8s take their skip connections
# (Long et al.'s pool3 and pool4).
SKIP_LAYERS = {"resnet18": ("stage2_block2_out", "stage3_block2_out"),
               "resnet50": ("conv3_block4_out", "conv4_block6_out")}


@keras.saving.register_keras_serializable(package="dlsuite")
class ImagePreprocess(keras.layers.Layer):
    """Normalise raw RGB pixels (0-255) inside the model, so callers feed plain images.

    `mode="torch"`: scale to [0, 1] and standardise with the ImageNet channel mean and
    standard deviation (the book's `normalize_image`). `mode="caffe"`: RGB -> BGR and
    subtract the ImageNet BGR mean, what Keras' ResNet-50 ImageNet weights expect.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)
    CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, mode="torch", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("torch", "caffe"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "torch":
            return (images / 255.0 - keras.ops.array(self.MEAN)) / keras.ops.array(self.STD)
        return keras.ops.flip(images, axis=-1) - keras.ops.array(self.CAFFE_MEAN_BGR)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _bn(name):
    # Synchronised over replicas, so N-replica training equals one replica on the global batch.
    return keras.layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)


def _basic_block(x, channels, stride, name):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""
    shortcut = x
    y = keras.layers.Conv2D(channels, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
    y = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != channels:
        shortcut = keras.layers.Conv2D(channels, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = _bn(f"{name}_proj_bn")(shortcut)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet18(width=64, name="resnet18"):
    """ResNet-18 feature extractor: (batch, H, W, 3) pixels -> (batch, H/32, W/32, 8*width).

    The torchvision/book layout: 7x7/2 stem convolution, 3x3/2 max-pool, then four stages
    of two basic blocks with `width`, 2`width`, 4`width`, 8`width` channels (strides 1, 2,
    2, 2). `width=64` is the standard network (11.2 M parameters without the classifier).
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = ImagePreprocess("torch", name="preprocess")(inputs)
    x = keras.layers.Conv2D(width, 7, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage, mult in enumerate((1, 2, 4, 8)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width * mult, stride, name=f"stage{stage + 1}_block{block + 1}")
    return keras.Model(inputs, x, name=name)


def _imagenet_resnet50_weights():
    """Fetch Keras' ResNet-50 no-top ImageNet weights (cached), or fail with one line."""
    from keras.src.applications import resnet

    fname = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        return keras.utils.get_file(fname, resnet.BASE_WEIGHTS_PATH + fname, cache_subdir="models",
                                    file_hash=resnet.WEIGHTS_HASHES["resnet50"][1])
    except Exception as e:  # noqa: BLE001 - any download failure becomes one actionable line
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DlsuiteError(
            f"cannot download the ImageNet weights for resnet50 ({reason}); pass --backbone-weights none "
            "to train from scratch, or --backbone-weights PATH to a local weights file"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def build_backbone(name="resnet18", weights="none", width=64, stages=False):
    """The feature extractor `name` with `weights`: "none", "imagenet" (resnet50) or a file PATH.

    `stages=True` gives a model with three outputs, the stride-8, stride-16 and stride-32
    feature maps (the `SKIP_LAYERS` and the last layer), for FCN-16s/8s. Raises `UsageError` for an unknown
    name or a missing weights file and `DlsuiteError` when the ImageNet weights cannot be downloaded (offline).
    """
    if name not in BACKBONES:
        raise UsageError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if weights == "imagenet" and name != "resnet50":
        raise UsageError(f"no ImageNet weights are published for Keras {name}; use --backbone resnet50, "
                         "--backbone-weights none, or --backbone-weights PATH")
    if name == "resnet18":
        model = resnet18(width)
    else:
        inputs = keras.Input((None, None, 3), name="image")
        x = ImagePreprocess("caffe", name="preprocess")(inputs)
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
        features = base
        if stages:
            features = keras.Model(base.input, [*(base.get_layer(n).output for n in SKIP_LAYERS[name]), base.output],
                                   name="resnet50_stages")
        model = keras.Model(inputs, features(x), name="resnet50")
        if weights == "imagenet":
            base.load_weights(_imagenet_resnet50_weights())
            return model
    if weights not in ("none", "imagenet"):
        try:
            (model if name == "resnet18" else base).load_weights(weights)
        except (OSError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DlsuiteError(f"--backbone-weights {weights}: cannot load ({reason}); "
                               f"give a .weights.h5 file saved from a {name} backbone, or none") from None
    if stages and name == "resnet18":
        model = keras.Model(model.input, [*(model.get_layer(n).output for n in SKIP_LAYERS[name]), model.output],
                            name=model.name)
    return model


def _torch_array(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def convert_torchvision_resnet18(state_dict, path):
    """Write torchvision's `resnet18` weights (`state_dict`: name -> tensor) as a `resnet18(64)` .weights.h5.

    Convolution kernels go from torch's (out, in, kh, kw) to Keras' (kh, kw, in, out); batch
    norm weight/bias/running_mean/running_var become gamma/beta/moving_mean/moving_variance;
    `fc.*` (the classifier) is dropped. Both normalise pixels the same way (`ImagePreprocess
    ("torch")`). Keras' "same" padding puts the odd pixel of a stride-2 convolution at the
    bottom/right where torch pads both sides, so features are shifted by up to a pixel: fine as
    a starting point for fine-tuning, not a bit-exact port. Returns the converted model.
    """
    model = resnet18(64)
    missing = [k for k in ("conv1.weight", "bn1.running_var", "layer4.1.conv2.weight") if k not in state_dict]
    if missing:
        raise DlsuiteError(f"not a torchvision resnet18 state dict: no {missing[0]}; "
                           "download https://download.pytorch.org/models/resnet18-f37072fd.pth")

    def conv(layer, key):
        model.get_layer(layer).kernel.assign(_torch_array(state_dict[f"{key}.weight"]).transpose(2, 3, 1, 0))

    def bn(layer, key):
        target = model.get_layer(layer)
        for name, source in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                             ("moving_variance", "running_var")):
            getattr(target, name).assign(_torch_array(state_dict[f"{key}.{source}"]))

    conv("stem_conv", "conv1")
    bn("stem_bn", "bn1")
    for stage in range(1, 5):
        for block in range(1, 3):
            ours, theirs = f"stage{stage}_block{block}", f"layer{stage}.{block - 1}"
            for i in (1, 2):
                conv(f"{ours}_conv{i}", f"{theirs}.conv{i}")
                bn(f"{ours}_bn{i}", f"{theirs}.bn{i}")
            if f"{theirs}.downsample.0.weight" in state_dict:
                conv(f"{ours}_proj", f"{theirs}.downsample.0")
                bn(f"{ours}_proj_bn", f"{theirs}.downsample.1")
    model.save_weights(path)
    return model
