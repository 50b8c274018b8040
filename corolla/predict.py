"""`corolla predict`: top-k labels for image files and folders, from a local model or a running server.

`model` is an export folder (newest version), one version of it, or a run folder (its newest
export, else its best Keras checkpoint). Files that cannot be read are reported one by one,
and the rest are still predicted.

Example:
    results = predict(["shoe.png", "photos/"], model="runs/fm")
    results = predict(["shoe.png"], url="http://127.0.0.1:8501")
    results[0]["top"][0]            # {"label": "Sneaker", "probability": 0.97}
    results[1].get("error")         # e.g. "not an image (unrecognised content)"
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import io
import json
import os
import pathlib
import re

import numpy as np

from corolla.config import CONFIG
from corolla.errors import CorollaError

OUTPUT_FORMATS = ("table", "json", "csv")


def predict(
    images: list[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    url: str | None = None,
    model_name: str | None = None,
    top_k: int = 5,
    batch_size: int = 32,
    timeout: float = 60.0,
    question: str | None = None,
    verbose: bool = False,
) -> list[dict]:
    """One result per image (or video) file (folders are searched recursively), in order.

    Each result is {"image": path, "top": [{"label", "probability"}, ...]} or, for a file that
    could not be read or decoded, {"image": path, "error": reason}. A clip model takes video
    files, sampled as `prepare` samples them; a question-answering one also `question`.
    """
    from rich.console import Console
    from rich.progress import Progress

    from corolla.data.images import InvalidImage, inspect_image
    from corolla.data.video import InvalidClip, is_video

    if (model is None) == (url is None):
        raise CorollaError(f"Give exactly one of --model (an export or run folder) or --url (a server). Received: model={model!r}, url={url!r}")
    paths, has_folder = _expand(images)
    results = []
    with _predictor(model, url, model_name, timeout, question) as (run, labels, kind), Progress(console=Console(stderr=True), transient=True, disable=not (verbose and has_folder)) as progress:
        task = progress.add_task("Predicting", total=len(paths))
        for start in range(0, len(paths), batch_size):
            batch = []
            for path in paths[start : start + batch_size]:
                try:
                    data = path.read_bytes()
                    if kind == "clips" and not is_video(data):
                        raise InvalidClip("not a video (unrecognised content)")
                    if kind != "clips":
                        inspect_image(data)
                    batch.append((path, data))
                except (OSError, InvalidImage) as error:
                    results.append({"image": str(path), "error": _reason(error)})
            results.extend(_predict_batch(run, labels, batch, top_k))
            progress.advance(task, len(paths[start : start + batch_size]))
    order = {str(path): index for index, path in enumerate(paths)}
    return sorted(results, key=lambda result: order[result["image"]])


def format_results(results: list[dict], output_format: str) -> str:
    """`json` (the list as is) or `csv` (one row per image and rank; errors in their own column)."""
    if output_format == "json":
        return json.dumps(results, indent=2, ensure_ascii=False)
    if output_format != "csv":
        raise CorollaError(f"Unknown output format '{output_format}'. Expected one of: {', '.join(OUTPUT_FORMATS)}. Received: format={output_format!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "rank", "label", "probability", "error"])
    for result in results:
        if "error" in result:
            writer.writerow([result["image"], "", "", "", result["error"]])
        for rank, entry in enumerate(result.get("top", []), start=1):
            writer.writerow([result["image"], rank, entry["label"], f"{entry['probability']:.6f}", ""])
    return buffer.getvalue()


def _expand(images) -> tuple[list[pathlib.Path], bool]:
    paths, has_folder = [], False
    for image in map(pathlib.Path, images):
        if image.is_dir():
            has_folder = True
            paths.extend(sorted(path for path in image.rglob("*") if path.is_file() and not any(part.startswith(".") for part in path.relative_to(image).parts)))
        else:
            paths.append(image)  # a missing file is reported by predict, with the others
    if not any(path.is_file() for path in paths):
        raise CorollaError(f"Image file not found: no file to predict in {', '.join(map(str, images))}. Received: images={[str(image) for image in images]}")
    return list(dict.fromkeys(paths)), has_folder


def _predict_batch(run, labels, batch, top_k) -> list[dict]:
    """Predict the batch at once; if an image in it cannot be decoded, go one by one to name it."""
    if not batch:
        return []
    try:
        probabilities = run([data for _, data in batch])
    except ValueError as error:
        if len(batch) == 1:
            return [{"image": str(batch[0][0]), "error": re.sub(r"^(image 0 |instances\[0\]\.image_bytes: )", "", str(error))}]
        return [result for item in batch for result in _predict_batch(run, labels, [item], top_k)]
    return [_top(path, row, labels, top_k) for (path, _), row in zip(batch, probabilities)]


def _top(path, row, labels, top_k) -> dict:
    order = np.argsort(-row)[: max(1, top_k)]
    return {"image": str(path), "top": [{"label": labels[i], "probability": float(row[i])} for i in order]}


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


@contextlib.contextmanager
def _predictor(model, url, model_name, timeout, question):
    """Yields (run(list of encoded files) → probabilities [n, classes], labels, kind); run raises ValueError for undecodable ones."""
    if model is not None:
        run, labels, kind, task = local_predictor(pathlib.Path(model), question)
    else:
        import httpx

        client = httpx.Client(timeout=timeout)
        run, labels, kind, task = _remote(client, url.rstrip("/"), model_name, question)
    if task == "qa" and not (question or "").strip():
        raise CorollaError("This model answers questions about clips: pass --question, e.g. --question 'which way does it move'.")
    if task != "qa" and question:
        raise CorollaError(f"--question is for question-answering clip models, and this one is a {kind} classifier. Received: question={question!r}")
    try:
        yield run, labels, kind
    finally:
        if model is None:
            client.close()


def _sampled(info: dict, question: str | None):
    """video bytes → what a clip model's serving_default takes: its sampled frames (and the question), as prepare stores them."""
    from corolla.data.video import InvalidClip, read_clip

    def sample(data: bytes):
        try:
            frames = read_clip(data, frames=info["frames"], image_size=info["image_size"]).frames
        except InvalidClip as error:
            raise ValueError(str(error)) from None
        return (frames, question) if info.get("task") == "qa" else frames

    return sample


def local_predictor(path: pathlib.Path, question: str | None = None):
    """(run(list of encoded files) → probabilities, labels, kind, task) for an export or a run folder."""
    from corolla.runtime.exported import ExportedModel, find_version

    if (path / CONFIG).is_file():
        try:
            find_version(path)
        except CorollaError:
            return _keras(path, question)  # a run folder not exported yet
    exported = ExportedModel.load(path)
    info = exported.info
    if info.get("kind") == "clips":
        sample = _sampled(info, question)
        return (lambda data: exported.predict([sample(item) for item in data])["probabilities"]), exported.labels, "clips", info.get("task", "classify")
    return (lambda data: exported.predict(data)["probabilities"]), exported.labels, "images", "classify"


def _keras(run_dir: pathlib.Path, question: str | None):
    import tensorflow as tf

    from corolla.data.pipeline import decode_and_resize
    from corolla.run import Run

    run = Run(run_dir)
    model = run.load_model()
    config = run.config
    if config.kind == "clips":
        from corolla.evaluate.predictions import batch_inputs, decoder

        sample, decode, to_model = _sampled(dataclasses.asdict(config), question), decoder(config), batch_inputs(config)

        def run_clips(data: list[bytes]) -> np.ndarray:
            decoded = [decode((tf.constant(inputs[0]), tf.constant(inputs[1])) if config.task == "qa" else tf.constant(inputs))
                       for inputs in map(sample, data)]  # fmt: skip
            batch = (tf.stack([d[0] for d in decoded]), tf.stack([d[1] for d in decoded])) if config.task == "qa" else tf.stack(decoded)
            return model.predict_on_batch(to_model(batch))

        return run_clips, config.classes, "clips", config.task

    def run_model(data: list[bytes]) -> np.ndarray:
        pixels = []
        for index, item in enumerate(data):
            try:
                pixels.append(decode_and_resize(tf.constant(item), image_size=run.config.image_size, channels=run.config.channels))
            except tf.errors.InvalidArgumentError as error:
                raise ValueError(f"image {index} cannot be decoded ({error.message.strip().splitlines()[0]})") from None
        return model.predict_on_batch(tf.stack(pixels))

    return run_model, run.config.classes, "images", "classify"


def _remote(client, url: str, model_name: str | None, question: str | None):
    import httpx

    try:
        served = _get(client, f"{url}/v1/models")["models"]
    except httpx.HTTPError as error:
        raise CorollaError(f"Cannot reach the server at {url} ({error}). Start one with `corolla serve RUN_DIR/export`.") from None
    chosen = next((entry for entry in served if model_name in (None, entry["name"])), None)
    if chosen is None:
        raise CorollaError(f"The server at {url} does not serve '{model_name}'. It serves: {', '.join(entry['name'] for entry in served)}.")

    kind, task = chosen.get("kind", "images"), chosen.get("task", "classify")

    def instance(item: bytes) -> dict:
        encoded = {"b64": base64.b64encode(item).decode()}
        if kind != "clips":
            return {"image_bytes": encoded}
        return {"video_bytes": encoded, **({"question": question} if task == "qa" else {})}

    def run_model(data: list[bytes]) -> np.ndarray:
        instances = [instance(item) for item in data]
        try:
            response = client.post(f"{url}/v1/models/{chosen['name']}:predict", json={"instances": instances})
        except httpx.HTTPError as error:
            raise CorollaError(f"Cannot reach the server at {url} ({error}). Is `corolla serve` still running?") from None
        if response.status_code == 400 and re.search(r"cannot be decoded|\.image_bytes: ", _error_text(response)):
            raise ValueError(_error_text(response))  # one bad image; the caller finds which
        if response.status_code != 200:
            raise CorollaError(f"The server answered {response.status_code}: {_error_text(response)}")
        return np.array([row["probabilities"] for row in response.json()["predictions"]])

    return run_model, chosen["labels"], kind, task


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


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, predict)  # `corolla.predict(...)` even once the module is imported
