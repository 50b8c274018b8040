"""`corolla predict`: top-k labels for image files, from a local export or a running server.

Example:
    results = predict(["shoe.png"], model="runs/fm/export")
    results = predict(["shoe.png"], url="http://127.0.0.1:8501")
    results[0]["top"][0]            # {"label": "Sneaker", "probability": 0.97}
"""

from __future__ import annotations

import base64
import os
import pathlib

import numpy as np

from corolla.errors import CorollaError


def predict(
    images: list[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    url: str | None = None,
    model_name: str | None = None,
    top_k: int = 5,
    timeout: float = 60.0,
) -> list[dict]:
    """Predict each image with `model` (an export or run folder) or the server at `url`."""
    if (model is None) == (url is None):
        raise CorollaError(f"Give exactly one of --model (an export folder) or --url (a server). Received: model={model!r}, url={url!r}")
    paths = [pathlib.Path(image) for image in images]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise CorollaError(f"Image file not found: {', '.join(missing)}")
    data = [path.read_bytes() for path in paths]
    if model is not None:
        probabilities, labels = _predict_local(model, data, [str(path) for path in paths])
    else:
        probabilities, labels = _predict_remote(url, model_name, data, [str(path) for path in paths], timeout)
    results = []
    for path, row in zip(paths, probabilities):
        order = np.argsort(-row)[: max(1, top_k)]
        results.append({"image": str(path), "top": [{"label": labels[i], "probability": float(row[i])} for i in order]})
    return results


def _predict_local(model, data, keys):
    from corolla.serve.runtime import ExportedModel

    exported = ExportedModel.load(model)
    try:
        outputs = exported.predict(data, keys)
    except ValueError as error:
        raise CorollaError(str(error)) from None
    return outputs["probabilities"], exported.labels


def _predict_remote(url, model_name, data, keys, timeout):
    import httpx

    url = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as client:
            served = _get(client, f"{url}/v1/models")["models"]
            chosen = next((entry for entry in served if model_name in (None, entry["name"])), None)
            if chosen is None:
                names = ", ".join(entry["name"] for entry in served)
                raise CorollaError(f"The server at {url} does not serve '{model_name}'. It serves: {names}.")
            model_name, labels = chosen["name"], chosen["labels"]
            instances = [{"image_bytes": {"b64": base64.b64encode(item).decode()}, "key": key} for item, key in zip(data, keys)]
            response = client.post(f"{url}/v1/models/{model_name}:predict", json={"instances": instances})
    except httpx.HTTPError as error:
        raise CorollaError(f"Cannot reach the server at {url} ({error}). Start one with `corolla serve RUN_DIR/export`.") from None
    if response.status_code != 200:
        raise CorollaError(f"The server answered {response.status_code}: {_error_text(response)}")
    predictions = response.json()["predictions"]
    return np.array([row["probabilities"] for row in predictions]), labels


def _get(client, url: str) -> dict:
    response = client.get(url)
    if response.status_code != 200:
        raise CorollaError(f"GET {url} answered {response.status_code}: {_error_text(response)}. Is this a `corolla serve` server?")
    return response.json()


def _error_text(response) -> str:
    try:
        return response.json().get("error", response.text)
    except ValueError:
        return response.text
