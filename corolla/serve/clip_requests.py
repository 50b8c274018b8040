"""Clip inputs as the two protocols send them: a video file or a clip's encoded frames, and a question.

TF Serving REST (rows or columns):
    {"instances": [{"video_bytes": {"b64": "…"}, "question": "which way does it move", "key": "a"}]}
    {"instances": [{"frames": [{"b64": "…"}, {"b64": "…"}, …]}]}
    {"inputs": {"video_bytes": [{"b64": "…"}], "question": ["…"]}}
KServe V2: a BYTES tensor "video_bytes" [n] (a video file per row) or "frames" [n, k] (k encoded
frames per clip), plus a BYTES "question" [n] for a question-answering model.

Example:
    clips, questions, keys, where = tfserving_clips(payload, rows=True)
    probabilities = await servable.predict_clips(clips, questions, deadline=deadline, where=where)
"""

from __future__ import annotations

from corolla.serve.limits import ApiError, decode_base64

CLIP_INPUTS = ("video_bytes", "frames")


def tfserving_clips(payload: dict, *, rows: bool):
    """(clips, questions or None, keys, where(index)) from either TF Serving format."""
    if rows:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise ApiError(400, '"instances" must be a list: [{"video_bytes": {"b64": "…"}, "question": "…", "key": "…"}].')
        columns = {"video_bytes": [], "frames": [], "question": [], "key": []}
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict) or sum(name in instance for name in CLIP_INPUTS) != 1:
                raise ApiError(400, f'instances[{index}]: expected an object with one of "video_bytes": {{"b64": "…"}} or "frames": [{{"b64": "…"}}, …].')
            unknown = set(instance) - {*CLIP_INPUTS, "question", "key"}
            if unknown:
                raise ApiError(400, f"instances[{index}]: unknown input(s) {sorted(unknown)}; a clip model takes video_bytes or frames, question and key.")
            for name in columns:
                columns[name].append(instance.get(name))
        where = lambda index: f"instances[{index}]"  # noqa: E731
        clips = [_clip(video, frames, where(index)) for index, (video, frames) in enumerate(zip(columns["video_bytes"], columns["frames"]))]
        questions = columns["question"] if any(question is not None for question in columns["question"]) else None
        keys = [key if key is not None else "" for key in columns["key"]]
    else:
        inputs = payload["inputs"]
        if not isinstance(inputs, dict) or sum(name in inputs for name in CLIP_INPUTS) != 1:
            raise ApiError(400, 'inputs: expected {"video_bytes": [{"b64": "…"}, …]} or {"frames": [[{"b64": "…"}, …], …]}, with "question" and "key" lists.')
        unknown = set(inputs) - {*CLIP_INPUTS, "question", "key"}
        if unknown:
            raise ApiError(400, f"inputs: unknown input(s) {sorted(unknown)}; a clip model takes video_bytes or frames, question and key.")
        name = "video_bytes" if "video_bytes" in inputs else "frames"
        values = inputs[name] if isinstance(inputs[name], list) else [inputs[name]]
        where = lambda index: f"inputs.{name}[{index}]"  # noqa: E731
        clips = [_clip(value if name == "video_bytes" else None, value if name == "frames" else None, where(index)) for index, value in enumerate(values)]
        questions = inputs.get("question")
        questions = [questions] if isinstance(questions, str) else questions
        keys = inputs.get("key") or [""] * len(clips)
        if not isinstance(keys, list) or len(keys) != len(clips):
            raise ApiError(400, f"inputs.key: expected a list of {len(clips)} strings, one per clip.")
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise ApiError(400, f"{where(index)}.key: expected a string.")
    return clips, questions, keys, where


def _clip(video, frames, where: str):
    """A video file's bytes, or a list of encoded frames' bytes."""
    if video is not None:
        return decode_base64(video, where=f"{where}.video_bytes")
    if not isinstance(frames, list) or not frames:
        raise ApiError(400, f'{where}.frames: expected a non-empty list of encoded frames [{{"b64": "…"}}, …].')
    return [decode_base64(frame, where=f"{where}.frames[{index}]") for index, frame in enumerate(frames)]


def kserve_clips(tensors: dict[str, tuple[list, list[int], bool]], *, where: str = "inputs"):
    """(clips, questions or None) from KServe tensors {name: (flat values, shape, binary?)}."""
    names = set(tensors)
    if len(names & set(CLIP_INPUTS)) != 1 or names - {*CLIP_INPUTS, "question"}:
        raise ApiError(400, f'{where}: a clip model takes one BYTES tensor "video_bytes" [n] or "frames" [n, k], and "question" [n] for QA. Received: {sorted(names)}')
    name = "video_bytes" if "video_bytes" in tensors else "frames"
    values, shape, binary = tensors[name]
    count = shape[0] if shape else 0
    raw = [value if binary else decode_base64(value, where=f"{where}.{name}.data[{index}]") for index, value in enumerate(values)]
    if name == "video_bytes":
        if len(raw) != count:
            raise ApiError(400, f'{where}.video_bytes: one video file per row: shape [n] or [n, 1]. Received: shape {shape}')
        clips = raw
    else:
        if len(shape) != 2 or not shape[1]:
            raise ApiError(400, f'{where}.frames: expected shape [n, k]: k encoded frames per clip. Received: shape {shape}')
        clips = [[frame for frame in raw[row * shape[1] : (row + 1) * shape[1]] if frame] for row in range(count)]
    questions = None
    if "question" in tensors:
        values, shape, binary = tensors["question"]
        if len(values) != count:
            raise ApiError(400, f"{where}.question: one question per clip: shape [{count}]. Received: shape {shape}")
        questions = [value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value for value in values]
    return clips, questions
