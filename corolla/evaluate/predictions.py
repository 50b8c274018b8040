"""Run a trained model over labelled images: a prepared split, or a folder / CSV never prepared.

Unprepared images go through the same steps as in `corolla prepare` (validated and
normalised by `corolla.data.images.prepare_image`, shrunk to the stored size) and then
`corolla.data.pipeline.decode_and_resize`, so they reach the model exactly as training
images did. The worst mistakes (highest loss) are kept as thumbnails for the report — a
filmstrip of its frames for a clip. Clips go through `corolla.data.clip_pipeline.clip_pixels`
(and, for QA, the run's question vectorizer), as in training.

Example:
    run = Run("runs/fm")
    predictions = collect_predictions(run, "photos/")
    predictions.probabilities.shape, predictions.mistakes[0].key, predictions.keys[0]
    predictions.to_csv(run.config.classes)      # key,label,predicted,confidence,loss; worst first
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import math
import os
import pathlib
import random

import numpy as np

from corolla.data.manifest import MANIFEST, Manifest
from corolla.errors import CorollaError

THUMBNAIL = 128  # px, longer side (a filmstrip's height)
FILMSTRIP = 8  # frames of a clip shown for a mistake


@dataclasses.dataclass(order=True)
class Mistake:
    loss: float
    key: str = dataclasses.field(compare=False)
    truth: int = dataclasses.field(compare=False)
    predicted: int = dataclasses.field(compare=False)
    confidence: float = dataclasses.field(compare=False)  # probability of the predicted class
    thumbnail: bytes = dataclasses.field(compare=False, repr=False)  # PNG


@dataclasses.dataclass
class Predictions:
    truth: np.ndarray
    probabilities: np.ndarray
    mistakes: list[Mistake]  # worst first
    split: str
    skipped: list[dict[str, str]]
    keys: list[str] = dataclasses.field(default_factory=list)  # of every example, in the order of `truth`

    def losses(self) -> np.ndarray:
        """Cross-entropy of each example's true class (probabilities floored at 1e-12, as for `mistakes`)."""
        return -np.log(np.maximum(self.probabilities[np.arange(len(self.truth)), self.truth], 1e-12))

    def to_csv(self, classes: list[str]) -> str:
        """`key,label,predicted,confidence,loss`, one row per example, highest loss first.

        `confidence` is the probability of the predicted class; labels are class names.
        """
        losses, predicted = self.losses(), self.probabilities.argmax(axis=-1)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "label", "predicted", "confidence", "loss"])
        for i in sorted(range(len(self.truth)), key=lambda i: (-losses[i], self.keys[i])):
            writer.writerow([self.keys[i], classes[self.truth[i]], classes[predicted[i]], f"{self.probabilities[i, predicted[i]]:.6g}", f"{losses[i]:.6g}"])
        return buffer.getvalue()


@dataclasses.dataclass
class LabelledImages:
    dataset: object  # tf.data.Dataset of (encoded bytes, int32 label, key string); clips: (frames [n] (, question), …)
    count: int
    split: str  # the split used, or "all" for a folder / CSV given for evaluation
    skipped: list[dict[str, str]]


def labelled_images(data: str | os.PathLike, config, *, split: str = "eval", own_data: bool = False, limit: int | None = None, seed: int = 0) -> LabelledImages:
    """Encoded images with labels in the run's class order, from prepared data, a folder or a CSV.

    A folder or CSV is used whole, unless it is the data the run trained on (`own_data`):
    then its `split` is taken as training took it. `limit` keeps a seeded sample.
    """
    import tensorflow as tf

    from corolla.data import records

    if (pathlib.Path(data) / MANIFEST).is_file():
        manifest = Manifest.load(data)
        if manifest.classes != config.classes:
            raise CorollaError(f"The classes of {data} differ from the ones the run was trained on. Expected: {config.classes}. Received: {manifest.classes}")
        count = manifest.count(split)
        clips = manifest.kind == "clips"
        dataset = tf.data.TFRecordDataset(manifest.shard_paths(split)).map(records.parse_clip_example if clips else records.parse_example)
        if limit is not None and limit < count:
            dataset, count = dataset.shuffle(min(count, 4 * limit), seed=seed).take(limit), limit
        dataset = dataset.map(lambda features: (_inputs(features, config), tf.cast(features[records.LABEL], tf.int32), features[records.KEY]))
        return LabelledImages(dataset, count, split, [])
    return _unprepared(str(data), config, split=split if own_data else None, limit=limit, seed=seed)


def _inputs(features: dict, config):
    """A record's model input before decoding: the encoded image, a clip's frames, or (frames, question)."""
    from corolla.data import records

    if config.kind != "clips":
        return features[records.IMAGE]
    return (features[records.FRAMES], features[records.QUESTION]) if config.task == "qa" else features[records.FRAMES]


def decoder(config):
    """inputs (see `_inputs`) → what the model takes for one example, decoded exactly as training decodes it."""
    from corolla.data.clip_pipeline import clip_pixels
    from corolla.data.pipeline import decode_and_resize

    size, channels = config.image_size, config.channels
    if config.kind != "clips":
        return lambda encoded: decode_and_resize(encoded, image_size=size, channels=channels)
    frames = lambda encoded: clip_pixels(encoded, frames=config.frames, image_size=size, channels=channels)  # noqa: E731
    return (lambda inputs: (frames(inputs[0]), inputs[1])) if config.task == "qa" else frames


def batch_inputs(config):
    """batch of decoded inputs → the model's input: QA questions go through the run's vectorizer."""
    if config.task != "qa":
        return lambda batch: batch
    from corolla.data.questions import vectorizer

    vectorize = vectorizer(config.vocabulary, question_length=config.question_length)
    return lambda batch: (batch[0], vectorize(batch[1]))


def collect_predictions(run, data: str | os.PathLike, *, split: str = "eval", checkpoint: str = "best", tta: str | None = None, batch_size: int = 256, mistakes: int = 24, verbose: bool = True) -> Predictions:
    """Predict every image or clip of `data` (see `labelled_images`), keeping the worst mistakes."""
    from rich.progress import Progress

    from corolla.data.pipeline import AUTOTUNE, finish

    config = run.config
    images = labelled_images(data, config, split=split, own_data=pathlib.Path(data).resolve() == pathlib.Path(config.data_dir).resolve())
    decode, to_model = decoder(config), batch_inputs(config)
    dataset = images.dataset.map(lambda inputs, label, key: (decode(inputs), label, key), num_parallel_calls=AUTOTUNE)
    model = run.load_model(checkpoint, tta=tta)
    truths, probabilities, worst, all_keys = [], [], [], []
    noun = "clips" if config.kind == "clips" else "images"
    with Progress(transient=True, disable=not verbose) as progress:
        task = progress.add_task(f"Evaluating {images.count:,} {noun}", total=images.count)
        for inputs, labels, keys in finish(dataset.batch(min(batch_size, 32) if config.kind == "clips" else batch_size)):
            scores = np.asarray(model.predict_on_batch(to_model(inputs)), dtype=np.float64)
            labels = labels.numpy()
            truths.append(labels)
            probabilities.append(scores)
            all_keys += [key.decode("utf-8", "replace") for key in keys.numpy()]
            pixels = inputs[0] if isinstance(inputs, tuple) else inputs
            _keep_worst(worst, mistakes, pixels.numpy(), labels, scores, keys.numpy())
            progress.advance(task, len(labels))
    if not truths:
        reasons = "; ".join(f"{row['source']}: {row['reason']}" for row in images.skipped[:3])
        raise CorollaError(
            f"No usable images to evaluate in {data} (split '{images.split}'; {len(images.skipped)} skipped"
            f"{', e.g. ' + reasons if reasons else ''}). Received: data={str(data)!r}, split={split!r}"
        )
    return Predictions(np.concatenate(truths), np.concatenate(probabilities), sorted(worst, reverse=True), images.split, images.skipped, all_keys)


def _unprepared(spec: str, config, *, split: str | None, limit: int | None, seed: int) -> LabelledImages:
    """A folder or CSV, each file validated as `prepare` does (unusable ones skipped with their reason).

    Files are read as the dataset is consumed, so a large folder is never held in memory. A run
    trained on prepared data saw `prepare`'s normalised images, so these are normalised the same
    way; a run trained straight from a folder saw the files as they are.
    """
    import tensorflow as tf

    from corolla.data.images import InvalidImage, prepare_image
    from corolla.data.sources import resolve_source, split_items

    if not pathlib.Path(spec).expanduser().exists():
        raise CorollaError(f"Cannot use {spec!r}: it does not exist. Expected prepared data, a folder of class sub-folders or a CSV. Received: data={spec!r}")
    source = resolve_source(spec, kind=config.kind)
    if config.kind == "clips" and source.task != config.task:
        raise CorollaError(f"{spec} is a {source.task} set and the run was trained for {config.task}. Received: data={spec!r}")
    index = {name: i for i, name in enumerate(config.classes)}
    unknown = sorted(set(source.classes) - set(index))
    if unknown:
        raise CorollaError(f"{spec} has classes the run was not trained on: {', '.join(unknown)}. Expected a subset of: {', '.join(config.classes)}.")
    items = source.items
    if split is not None:  # the run's own raw folder: the split training used (`describe` splits the same way)
        wanted = {item.path for item in split_items(items) if item.split == split}
        items = [item for item in items if item.path in wanted]
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    trained_on = pathlib.Path(config.data_dir)
    normalise = not (trained_on.exists() and not (trained_on / MANIFEST).is_file())
    skipped = list(source.skipped)

    def read():
        for item in items:
            try:
                if config.kind == "clips":
                    inputs = _clip_inputs(item, config)
                else:
                    with tf.io.gfile.GFile(item.path, "rb") as file:  # local paths and gs:// alike
                        data = file.read()
                    inputs = prepare_image(data, channels=config.channels, image_size=config.image_size).encoded if normalise else data  # what prepare stores
            except (InvalidImage, OSError, tf.errors.OpError) as error:
                skipped.append({"source": item.key, "reason": str(error)})
                continue
            yield inputs, index[source.classes[item.label]], item.key

    example = tf.TensorSpec([None], tf.string) if config.kind == "clips" else tf.TensorSpec([], tf.string)
    if config.task == "qa":
        example = (example, tf.TensorSpec([], tf.string))
    signature = (example, tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.string))
    dataset = tf.data.Dataset.from_generator(read, output_signature=signature)
    return LabelledImages(dataset, len(items), split or "all", skipped)


def _clip_inputs(item, config):
    """A clip read and sampled as `prepare` stores it: its encoded frames (and question, for QA)."""
    from corolla.data.clip_sources import read_clip_item
    from corolla.data.video import DEFAULT_MAX_SECONDS

    sampling = {"frames": config.frames, "fps": None, "max_seconds": DEFAULT_MAX_SECONDS}
    _, clip = read_clip_item(item.path, image_size=config.image_size, **sampling)
    return (clip.frames, item.question) if config.task == "qa" else clip.frames


def _keep_worst(heap: list[Mistake], size: int, images, labels, scores, keys) -> None:
    """Push this batch's misclassified images onto a min-heap of the `size` highest losses."""
    predicted = scores.argmax(axis=-1)
    for i in np.flatnonzero(predicted != labels):
        loss = -math.log(max(scores[i, labels[i]], 1e-12))
        if len(heap) < size or loss > heap[0].loss:
            mistake = Mistake(loss, keys[i].decode("utf-8", "replace"), int(labels[i]), int(predicted[i]), float(scores[i, predicted[i]]), _thumbnail(images[i]))
            (heapq.heappush if len(heap) < size else heapq.heapreplace)(heap, mistake)


def _thumbnail(pixels: np.ndarray) -> bytes:
    """A PNG of an image, or a filmstrip of a clip's real frames (up to FILMSTRIP of them, evenly spread)."""
    from PIL import Image

    if pixels.ndim == 4:  # a clip: its real frames side by side, padding dropped
        frames = [frame for frame in pixels if frame.max() >= 0]
        picked = np.linspace(0, len(frames) - 1, min(FILMSTRIP, len(frames))).round().astype(int) if frames else []
        pixels = np.concatenate([frames[i] for i in picked], axis=1) if frames else np.zeros((8, 8, pixels.shape[-1]))
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    image.thumbnail((THUMBNAIL * FILMSTRIP, THUMBNAIL) if image.width > 2 * image.height else (THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
