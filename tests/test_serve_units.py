"""Fast checks of the serving pieces without a model: batching, limits, header sniffing, metrics, version discovery."""

import asyncio
import base64
import json
import time

import numpy as np
import pytest

from corolla.serve.batching import Batcher, DeadlineExceeded, Overloaded
from corolla.serve.jsonio import parse_json
from corolla.serve.limits import ApiError, Limits, check_image, decode_base64
from corolla.serve.metrics import Metrics
from corolla.runtime.versions import complete_versions, is_complete
from tests.conftest import encode, noisy_colour


def run(coroutine):
    return asyncio.run(coroutine)


def test_requests_from_many_clients_share_batches():
    sizes = []

    def model(pixels):
        sizes.append(len(pixels))
        time.sleep(0.01)
        return pixels.sum(axis=(1, 2, 3))[:, None]

    async def main():
        batcher = Batcher(model, max_batch_size=8, batch_timeout_ms=20)

        async def client(i):
            with batcher.reserve(1) as ticket:
                return await ticket.run(np.full((1, 2, 2, 1), i, np.float32), deadline=time.monotonic() + 5)

        results = await asyncio.gather(*(client(i) for i in range(20)))
        batcher.close()
        return results

    results = run(main())
    assert [float(r[0, 0]) for r in results] == [4.0 * i for i in range(20)]  # each client gets its own answer
    assert max(sizes) == 8 and sum(sizes) == 20 and len(sizes) <= 4


def test_a_request_larger_than_a_batch_is_split_and_reassembled():
    sizes = []

    async def main():
        batcher = Batcher(lambda p: (sizes.append(len(p)), p[:, 0, 0, :])[1], max_batch_size=4, batch_timeout_ms=0)
        with batcher.reserve(10) as ticket:
            out = await ticket.run(np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), deadline=time.monotonic() + 5)
        batcher.close()
        return out

    assert run(main())[:, 0].tolist() == list(range(10))
    assert sizes == [4, 4, 2]



@pytest.mark.parametrize(
    "ms_per_image, expected",
    [
        ({1: 4.0, 2: 2.0, 4: 1.0, 8: 0.5}, 8),  # an accelerator: each bigger batch is cheaper per image
        ({1: 1.0, 2: 0.9, 4: 1.5, 8: 3.0}, 2),  # a small CPU: big batches are slower per image
        ({1: 1.0, 2: 1.02, 4: 1.04, 8: 2.0}, 4),  # within 10% of the fastest, the larger batch
    ],
)
def test_batch_size_chosen_avoids_batches_slower_per_image(ms_per_image, expected):
    from corolla.runtime.runners import choose_batch_size

    assert choose_batch_size(ms_per_image) == expected


def test_batch_sizes_are_timed_at_each_power_of_two():
    from corolla.runtime.runners import time_batch_sizes

    calls = []

    def model(pixels):  # 10 ms per image
        calls.append(len(pixels))
        time.sleep(0.01 * len(pixels))
        return pixels[:, 0, 0, :]

    measured = time_batch_sizes(model, (1, 1, 1), max_batch_size=6)
    assert sorted(measured) == [1, 2, 4, 6] == sorted(set(calls))  # the bound itself too
    assert all(calls.count(size) == 3 for size in measured)  # a warm-up call, then two timed
    assert all(10 <= ms < 20 for ms in measured.values()), measured

def test_full_queue_answers_at_once_and_frees_its_room():
    async def main():
        batcher = Batcher(lambda p: p, max_batch_size=2, max_queue=4)
        first = batcher.reserve(3)
        with pytest.raises(Overloaded, match="overloaded"):
            batcher.reserve(2)
        first.__exit__(None, None, None)
        assert batcher.queued == 0
        batcher.reserve(4).__exit__(None, None, None)
        batcher.close()

    run(main())


def test_deadline_gives_504_and_the_late_request_is_not_run():
    ran = []

    def model(pixels):
        ran.append(float(pixels[0, 0, 0, 0]))
        time.sleep(0.3)
        return pixels

    async def main():
        batcher = Batcher(model, max_batch_size=1, batch_timeout_ms=0)
        with batcher.reserve(1) as first, batcher.reserve(1) as late:
            busy = asyncio.ensure_future(first.run(np.zeros((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 5))
            await asyncio.sleep(0.05)
            with pytest.raises(DeadlineExceeded):
                await late.run(np.ones((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 0.05)
            await busy
        await asyncio.sleep(0.05)
        batcher.close()

    run(main())
    assert ran == [0.0]


def test_a_request_given_up_is_not_run_and_a_model_error_reaches_every_part():
    ran = []

    def model(pixels):
        ran.append(float(pixels[0, 0, 0, 0]))
        if pixels[0, 0, 0, 0] == 7:
            raise RuntimeError("the model failed")
        time.sleep(0.2)
        return pixels

    async def main(loop_errors):
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context["message"]))
        batcher = Batcher(model, max_batch_size=1, batch_timeout_ms=0)
        with batcher.reserve(1) as first, batcher.reserve(1) as gone:
            busy = asyncio.ensure_future(first.run(np.zeros((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 5))
            await asyncio.sleep(0.05)
            client = asyncio.ensure_future(gone.run(np.ones((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 5))
            await asyncio.sleep(0.01)
            client.cancel()  # the client hung up while its request waited
            await busy
        with batcher.reserve(3) as split:  # three batches of one; the first fails
            with pytest.raises(RuntimeError, match="the model failed"):
                await split.run(np.full((3, 1, 1, 1), 7, np.float32), deadline=time.monotonic() + 5)
        await asyncio.sleep(0.1)
        batcher.close()
        await asyncio.sleep(0)

    loop_errors = []
    run(main(loop_errors))
    assert ran[:2] == [0.0, 7.0]  # the cancelled request never reached the model
    assert ran.count(7.0) < 3  # once the request failed, its parts not yet taken were dropped
    assert loop_errors == []  # no "exception was never retrieved" for the split request's other parts


def test_a_batch_waits_only_for_requests_still_decoding():
    sizes = []

    async def main():
        batcher = Batcher(lambda p: (sizes.append(len(p)), p)[1], max_batch_size=8, batch_timeout_ms=500)
        started = time.monotonic()
        with batcher.reserve(1) as alone:
            await alone.run(np.zeros((1, 1, 1, 1), np.float32), deadline=started + 5)
        assert time.monotonic() - started < 0.2  # nobody else admitted: no wait
        first, second = batcher.reserve(1), batcher.reserve(1)

        async def decode_then_run(ticket, delay):
            with ticket:
                await asyncio.sleep(delay)  # "decoding"
                return await ticket.run(np.zeros((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 5)

        await asyncio.gather(decode_then_run(first, 0), decode_then_run(second, 0.1))
        batcher.close()

    run(main())
    assert sizes == [1, 2]


def test_close_finishes_admitted_requests_then_refuses():
    async def main():
        batcher = Batcher(lambda p: p * 2, max_batch_size=4, batch_timeout_ms=50)
        with batcher.reserve(1) as ticket:
            pending = asyncio.ensure_future(ticket.run(np.ones((1, 1, 1, 1), np.float32), deadline=time.monotonic() + 5))
            await asyncio.sleep(0)
            batcher.close()
            assert float((await pending)[0, 0, 0, 0]) == 2.0
        with pytest.raises(Overloaded):
            batcher.reserve(1)

    run(main())


PNG = encode(noisy_colour(np.random.default_rng(0), (10, 20, 30), 21, 34), "PNG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_size_from_the_header(fmt):
    data = encode(noisy_colour(np.random.default_rng(0), (10, 20, 30), 21, 34), fmt)
    assert check_image(data, where="x", max_pixels=10_000) == (fmt.lower(), 34, 21)
    with pytest.raises(ApiError, match="34x21 pixels exceeds the limit of 700") as error:
        check_image(data, where="x", max_pixels=700)
    assert error.value.status == 413


def test_base64_forms():
    standard = base64.b64encode(PNG).decode()
    for form in (standard, standard.rstrip("="), base64.urlsafe_b64encode(PNG).decode(), {"b64": standard}, "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76))):
        assert decode_base64(form, where="x") == PNG
    for bad in ("a", "@@@@", "QQ=A", None, {"b64": 1}, {"b64": "QQ==", "other": 1}):
        with pytest.raises(ApiError) as error:
            decode_base64(bad, where="instances[0].image_bytes")
        assert error.value.status == 400 and error.value.message.startswith("instances[0].image_bytes: ")


def test_json_without_nan_or_deep_nesting():
    assert parse_json(b'{"a": [1]}') == {"a": [1]}
    for body, reason in ((b'{"a": NaN}', "not valid JSON"), (b"[Infinity]", "not valid JSON"), (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
                         (b"\xff", "not valid JSON"), (b'["\\ud800"]', "not valid JSON")):
        with pytest.raises(ApiError, match=reason) as error:
            parse_json(body)
        assert error.value.status == 400


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        Limits(max_pixels=0)
    with pytest.raises(ApiError, match="3 instances exceed the limit of 2"):
        Limits(max_instances=2).check_count(3)


def test_metrics_text_format():
    metrics = Metrics()
    metrics.observe_request(route='/a"b', method="GET", code=404, seconds=0.003)
    metrics.observe_batch(5, 0.01)
    text = metrics.render()
    assert 'corolla_requests_total{route="/a\\"b",method="GET",code="404"} 1' in text
    assert 'corolla_request_errors_total{code="404"} 1' in text
    assert 'corolla_batch_size_bucket{le="8"} 1' in text and "corolla_batch_size_count 1" in text


def test_a_version_is_complete_only_when_it_matches_its_card(tmp_path):
    version = tmp_path / "3"
    version.mkdir()
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "model.onnx").write_bytes(b"onnx!")
    files = {"saved_model.pb": {"bytes": 5, "sha256": "x"}, "model.onnx": {"bytes": 5, "sha256": "y"}}
    assert not is_complete(version)  # no card yet
    (version / "model_card.json").write_text(json.dumps({"files": files})[:-5])
    assert not is_complete(version)  # card half written
    (version / "model_card.json").write_text(json.dumps({"files": files}))
    assert is_complete(version) and not is_complete(version, verify_hashes=True)
    (version / "model.onnx").write_bytes(b"on")
    assert not is_complete(version)  # still being copied
    (tmp_path / ".tmp-4-123").mkdir()
    (tmp_path / "notes").mkdir()
    assert complete_versions(tmp_path) == []
