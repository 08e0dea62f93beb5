"""The names and output stride of the segmentation networks' parts, without Keras.

What `vision.fcn`'s flags offer (`--backbone`, `--head`) and check (`--crop`, multiples of the
stride), and what `vision.resnet_model` and `vision.fcn_model` build from.
"""

BACKBONES = ("resnet18", "resnet50")
FEATURE_STRIDE = 32  # input pixels per feature-map pixel at a backbone's last stage
HEADS = ("fcn32s", "fcn16s", "fcn8s")
