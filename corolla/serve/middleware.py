"""Around every request: 503 while draining, in-flight count, metrics, a JSON access-log line, and
a JSON 500 (never an HTML page or a dropped connection) if a handler ever fails.

Example:
    app.add_middleware(Observe, metrics=metrics, access_log=True)
"""

from __future__ import annotations

import datetime
import logging
import time

from corolla.serve.jsonio import dumps

access_logger = logging.getLogger("corolla.access")
logger = logging.getLogger("corolla.serve")
ALWAYS_OPEN = ("/v2/health/live", "/metrics")  # still answered while draining


class Observe:
    def __init__(self, app, *, metrics, access_log: bool = True):
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope["app"].state if "app" in scope else None
        started = time.perf_counter()
        status, sent_bytes = 500, 0
        response_started = False

        async def observe_send(message):
            nonlocal status, sent_bytes, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        draining = getattr(state, "draining", False) if state is not None else False
        self.metrics.inflight += 1
        try:
            if draining and scope["path"] not in ALWAYS_OPEN:
                await _json(observe_send, 503, {"error": "The server is shutting down; send the request to another replica or retry."}, close=True)
            else:
                await self.app(scope, receive, observe_send)
        except Exception:
            logger.exception("Unhandled error answering %s %s", scope["method"], scope["path"])
            if not response_started:
                await _json(observe_send, 500, {"error": "Internal server error; the server log has the details."})
        finally:
            self.metrics.inflight -= 1
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(route=route, method=scope["method"], code=status, seconds=seconds)
            if self.access_log:
                client = scope.get("client") or ("", 0)
                access_logger.info(dumps({
                    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                    "client": f"{client[0]}:{client[1]}",
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "bytes": sent_bytes,
                }).decode())


async def _json(send, status: int, content: dict, *, close: bool = False) -> None:
    body = dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
