"""Augmentation presets for training: Keras preprocessing layers plus one tf.image op.

    none      resize only
    light     resize, random horizontal flip, random shift up to 10%
    standard  random-resized crop (8%–100% of the area, aspect 3/4–4/3), flip, brightness, contrast

Each works eagerly on a single image or a batch and inside tf.data (where `corolla.data.load`
runs it). Random-resized crop needs the full-size decoded image, so it runs per image before
batching; the Keras layers run on whole batches, which is faster.

Example:
    crop = per_image("standard", image_size=224)        # image [h, w, c] → [224, 224, c]
    layers = batch_layers("standard", seed=1)           # keras.Sequential, call with training=True
"""

from __future__ import annotations

import tensorflow as tf

from corolla.errors import CorollaError

PRESETS = ("none", "light", "standard")


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise CorollaError(f"Unknown augmentation '{preset}'. Available: {', '.join(PRESETS)}. Received: augment={preset!r}")
    return preset


def random_resized_crop(image: tf.Tensor, *, image_size: int, area=(0.08, 1.0), aspect=(3 / 4, 4 / 3)) -> tf.Tensor:
    """Inception-style crop: a random box of `area` × the image and `aspect` ratio, resized to image_size²."""
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        min_object_covered=0.0,
        aspect_ratio_range=aspect,
        area_range=area,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    from corolla.data.pipeline import resize

    return resize(tf.slice(image, begin, size), image_size=image_size)


def per_image(preset: str, *, image_size: int):
    """The per-image step: decoded image of any size → uint8 [image_size, image_size, c], batched next."""
    from corolla.data.pipeline import fit

    if check_preset(preset) == "standard":
        return lambda image: fit(random_resized_crop(tf.cast(image, tf.float32), image_size=image_size), image_size=image_size)
    return lambda image: fit(image, image_size=image_size)


def batch_layers(preset: str, *, seed: int | None = None):
    """Keras layers for whole batches of 0–255 float images, or None for 'none'."""
    import keras

    if check_preset(preset) == "none":
        return None
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if preset == "light":
        layers.append(keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed))
    else:
        layers += [keras.layers.RandomBrightness(0.2, seed=seed), keras.layers.RandomContrast(0.2, seed=seed)]
    return keras.Sequential(layers, name=f"augment_{preset}")
