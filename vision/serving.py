"""`export` for the vision models: serving graphs on encoded images, with `predict`'s pre- and post-processing.

`vision.ssd export`: input `images` (tf.string (batch,), JPEG/PNG/GIF/BMP bytes); each image is decoded
to RGB and resized to the model's square input as in training and `predict` (`banana.resize_image`);
the detector of `predict` (`ssd_model.make_detector`: softmax, offset decoding, NMS) runs on the batch;
outputs `boxes` float32 (batch, max_detections, 4) xmin, ymin, xmax, ymax in the ORIGINAL image's pixels,
`scores` float32 (batch, max_detections), `classes` int32 (batch, max_detections) and `num_detections`
int32 (batch,); rows past an image's detections have class -1, score 0 and box 0. Its TFLite model
(no JPEG decoder without Flex ops) takes `images` uint8 (1, size, size, 3), already resized, and gives the
same outputs with boxes in that input's pixels (NMS as TFLite's builtin NonMaxSuppressionV5).

`vision.fcn export`: input `images` (tf.string (batch,)); outputs `classes` int32 (batch, H, W), the
class map at each image's own size (the batch's largest H and W, smaller images padded with -1),
`image_size` int32 (batch, 2) (height, width), and with `--probabilities` `probabilities` float32
(batch, H, W, classes) (padding 0). Each image is padded at the bottom/right to a multiple of 32 as
`predict` does (`fcn_model.segment`). Its TFLite model takes `image` uint8 (1, H, W, 3) at the training
crop's size.

A corrupt or unknown image raises InvalidArgumentError from the decode op ("Unknown image file format",
"Invalid PNG data", ...): the request fails, the serving process does not.
"""
import numpy as np
import tensorflow as tf

from common import export as exporting
from vision import banana, detection_data
from vision.boxes import offset_inverse
from vision.detection_draw import read_images

REST_EXAMPLE = '{"instances": [{"b64": "<base64 of the JPEG/PNG file>"}]}'


def decode_rgb(encoded):
    """One encoded image (JPEG, PNG, GIF's first frame, BMP) -> uint8 (h, w, 3) RGB, as `predict` reads it
    (PIL): JPEG with libjpeg's accurate integer DCT (PIL's; TensorFlow's default is the fast one)."""
    image = tf.cond(tf.io.is_jpeg(encoded),
                    lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def _readme(title, command, inputs, outputs, tflite_note, example_call):
    return (f"{title}\nWritten by: {command}\n\nInputs: {inputs}\nOutputs: {outputs}\n\n"
            f"Example (Python, TensorFlow only):\n  import tensorflow as tf\n"
            f"  serve = tf.saved_model.load(DIR).signatures['serving_default']\n  {example_call}\n\n"
            f"TensorFlow Serving (REST): POST /v1/models/NAME:predict with {REST_EXAMPLE}\n"
            f"A corrupt image fails the request with InvalidArgumentError from the decode op.\n\n{tflite_note}")


# --- SSD ---------------------------------------------------------------------------------
def ssd_class_names(run_dir, num_classes):
    """The names of the detector's classes 0..num_classes-1: the run's classes.json, else the banana set's."""
    names = detection_data.read_class_names(run_dir)
    if names:
        return list(names)
    return ["banana"] if num_classes == 1 else [f"class{i}" for i in range(num_classes)]


def split_detections(dets):
    """`(batch, k, 6)` rows (class, score, box) of `make_detector` -> boxes (batch, k, 4) in units of the
    input, scores, int32 classes and num_detections; rows past the detections get class -1, score 0, box 0."""
    found = dets[..., 0] >= 0
    classes = tf.where(found, tf.cast(dets[..., 0], tf.int32), -1)
    scores = tf.where(found, dets[..., 1], 0.0)
    boxes = tf.where(found[..., None], dets[..., 2:], 0.0)
    return boxes, scores, classes, tf.reduce_sum(tf.cast(found, tf.int32), axis=-1)


def nms_detections(model, images, nms_threshold, max_detections, pos_threshold=0.009999999):
    """The book's class-agnostic NMS for ONE image `(1, size, size, 3)` with TFLite's builtin
    NonMaxSuppressionV5: the same kept boxes as `boxes.top_detections` (one best class per anchor).
    Returns `(1, max_detections, 6)` rows like `make_detector`."""
    cls_preds, bbox_preds = model(images, training=False)
    probs = tf.nn.softmax(tf.cast(cls_preds, tf.float32), axis=-1)[0]
    boxes = offset_inverse(model.anchors, tf.reshape(tf.cast(bbox_preds, tf.float32), [-1, 4]))
    conf = tf.reduce_max(probs[:, 1:], axis=-1)
    class_id = tf.argmax(probs[:, 1:], axis=-1, output_type=tf.int32)
    keep, kept_scores, count = tf.raw_ops.NonMaxSuppressionV5(
        boxes=boxes, scores=conf, max_output_size=max_detections, iou_threshold=nms_threshold,
        score_threshold=pos_threshold, soft_nms_sigma=0.0, pad_to_max_output_size=True)
    found = tf.range(max_detections) < count
    rows = tf.concat([tf.cast(tf.where(found, tf.gather(class_id, keep), -1), tf.float32)[:, None],
                      kept_scores[:, None], tf.gather(boxes, keep)], axis=-1)
    return rows[None]


def ssd_export(ctx):
    """`python -m vision.ssd export`: see the module docstring."""
    from vision import ssd_model

    options = exporting.options(ctx.args)
    cfg, max_detections = ctx.config, ctx.args.max_detections
    model = ssd_model.restore(ctx)
    size = cfg.image_size
    detector = ssd_model.make_detector(model, cfg.nms_threshold, max_detections)
    module = tf.Module()
    module.model = model

    def outputs(dets, scale):
        boxes, scores, classes, count = split_detections(dets)
        return {"boxes": boxes * scale[:, None, :], "scores": scores, "classes": classes, "num_detections": count}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        def decode(encoded):
            image = decode_rgb(encoded)
            return banana.resize_image(image, size), tf.shape(image)[:2]

        resized, hw = tf.map_fn(decode, images, fn_output_signature=(
            tf.TensorSpec([size, size, 3], tf.uint8), tf.TensorSpec([2], tf.int32)))
        hw = tf.cast(hw, tf.float32)
        return outputs(detector(resized), tf.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], axis=-1))

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")])
    def serve_decoded(images):
        return outputs(nms_detections(model, images, cfg.nms_threshold, max_detections),
                       tf.fill([1, 4], float(size)))

    representative = None
    if options["quantize"]:
        representative = _ssd_representative(ctx, ssd_model, cfg)
    names = ssd_class_names(ctx.run_dir, model.num_classes)
    readme = _readme(
        f"TinySSD detector ({model.num_classes} classes: labels.txt, line i = class i), input {size}x{size}.",
        f"python -m vision.ssd export --run-dir {ctx.run_dir}",
        "images, tf.string [batch], encoded JPEG/PNG/GIF/BMP bytes (any size; resized to the model's input in "
        "the graph)",
        f"boxes float32 [batch, {max_detections}, 4] (xmin, ymin, xmax, ymax in the original image's pixels), "
        f"scores float32 [batch, {max_detections}], classes int32 [batch, {max_detections}], num_detections int32 "
        "[batch]; after NMS, by decreasing score; rows past num_detections have class -1, score 0, box 0",
        f"model.tflite (with --format tflite): images uint8 [1, {size}, {size}, 3], an RGB image already resized "
        f"to {size}x{size} (TFLite decodes no JPEG without Flex ops); the same outputs, boxes in the pixels of "
        f"that {size}x{size} input (scale by the original width/{size} and height/{size}).",
        "serve(images=tf.constant([open('photo.jpg', 'rb').read()]))['boxes']")
    return exporting.write(ctx.args.out, module, {"serving_default": serve}, readme=readme,
                           files={"labels.txt": "".join(f"{n}\n" for n in names)}, **options,
                           representative_dataset=representative, tflite_signature=serve_decoded)


def _ssd_representative(ctx, ssd_model, cfg, count=100):
    """TFLite's int8 calibration set: the first `count` training images, resized as in training."""
    train_set = ssd_model.load_split(ctx, cfg, "train")
    paths = list(train_set[0])[:count]

    def batches():
        for path in paths:
            yield [read_images([path], cfg.image_size)[1]]
    return batches


# --- FCN ---------------------------------------------------------------------------------
def fcn_class_names(ctx):
    """The names of the FCN's class indices: the run's classes.json, else the class_names.txt of the
    --data-dir it trained on, else its generated set's (both offline sets: `voc.SHAPE_NAMES`), else
    VOC's 21. Reads no images and generates or downloads nothing."""
    from common.errors import DatasetError
    from vision import voc

    names = detection_data.read_class_names(ctx.run_dir)
    if names is not None:
        return list(names)
    if ctx.data_dir is not None:
        try:
            return list(voc.class_names(voc.voc_root(ctx.data_dir)))
        except DatasetError:
            return list(voc.VOC_CLASSES)
    return list(voc.VOC_CLASSES if ctx.config.dataset == "voc2012" else voc.SHAPE_NAMES)


def fcn_segment_graph(model, image, probabilities):
    """One uint8 image (h, w, 3) -> class map int32 (h, w) (and probabilities (h, w, classes)), padded with
    zeros at the bottom/right to a multiple of 32 as `fcn_model.segment` does, then cropped back."""
    from vision.architectures import FEATURE_STRIDE

    h, w = tf.shape(image)[0], tf.shape(image)[1]
    ph, pw = -(-h // FEATURE_STRIDE) * FEATURE_STRIDE, -(-w // FEATURE_STRIDE) * FEATURE_STRIDE
    padded = tf.pad(tf.cast(image, tf.float32), [[0, ph - h], [0, pw - w], [0, 0]])[None]
    logits = tf.cast(model(padded, training=False), tf.float32)[0, :h, :w]
    classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return (classes, tf.nn.softmax(logits, axis=-1)) if probabilities else (classes,)


def fcn_export(ctx):
    """`python -m vision.fcn export`: see the module docstring."""
    from vision import fcn_model

    options = exporting.options(ctx.args)
    cfg, probabilities = ctx.config, ctx.args.probabilities
    names = fcn_class_names(ctx)
    model = fcn_model.restore(ctx)
    num_classes = int(model.output_shape[-1])
    module = tf.Module()
    module.model = model
    ragged = [tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)]
    if probabilities:
        ragged.append(tf.RaggedTensorSpec([None, None, num_classes], tf.float32, ragged_rank=1))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        def one(encoded):
            image = decode_rgb(encoded)
            maps = fcn_segment_graph(model, image, probabilities)
            return (*(tf.RaggedTensor.from_tensor(m) for m in maps), tf.shape(image)[:2])

        got = tf.map_fn(one, images, fn_output_signature=(*ragged, tf.TensorSpec([2], tf.int32)))
        result = {"classes": got[0].to_tensor(default_value=-1), "image_size": got[-1]}
        if probabilities:
            result["probabilities"] = got[1].to_tensor(default_value=0.0)
        return result

    crop_h, crop_w = cfg.crop

    @tf.function(input_signature=[tf.TensorSpec([1, crop_h, crop_w, 3], tf.uint8, name="image")])
    def serve_decoded(image):
        maps = fcn_segment_graph(model, image[0], probabilities)
        result = {"classes": maps[0][None]}
        if probabilities:
            result["probabilities"] = maps[1][None]
        return result

    representative = None
    if options["quantize"]:
        representative = _fcn_representative(ctx, fcn_model, cfg)
    prob_text = (f", probabilities float32 [batch, H, W, {num_classes}] (softmax; padding 0)" if probabilities
                 else "")
    readme = _readme(
        f"FCN semantic segmentation ({cfg.head}, {num_classes} outputs; labels.txt, line i = class i).",
        f"python -m vision.fcn export --run-dir {ctx.run_dir}{' --probabilities' if probabilities else ''}",
        "images, tf.string [batch], encoded JPEG/PNG/GIF/BMP bytes of any size",
        "classes int32 [batch, H, W], the class of every pixel at the image's own size (H, W the batch's largest; "
        f"smaller images padded with -1), image_size int32 [batch, 2] (height, width){prob_text}",
        f"model.tflite (with --format tflite): image uint8 [1, {crop_h}, {crop_w}, 3] (an RGB image of that "
        "size; TFLite decodes no JPEG without Flex ops) -> classes [1, H, W]"
        + (" and probabilities" if probabilities else "") + ".",
        "serve(images=tf.constant([open('photo.jpg', 'rb').read()]))['classes'][0]")
    return exporting.write(ctx.args.out, module, {"serving_default": serve}, readme=readme,
                           files={"labels.txt": "".join(f"{n}\n" for n in names)}, **options,
                           representative_dataset=representative, tflite_signature=serve_decoded)


def _fcn_representative(ctx, fcn_model, cfg, count=50):
    """TFLite's int8 calibration set: training images, top-left crops of the export's input size, zero-padded."""
    from PIL import Image

    images, _, _ = fcn_model._split(fcn_model.dataset_root(ctx), "train")
    crop_h, crop_w = cfg.crop

    def batches():
        for path in list(images)[:count]:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))[:crop_h, :crop_w]
            batch = np.zeros((1, crop_h, crop_w, 3), np.uint8)
            batch[0, :pixels.shape[0], :pixels.shape[1]] = pixels
            yield [batch]
    return batches
