"""The floor of `benchmarks/serve_overhead.py`: a bare ASGI app that reads the body, parses the same
JSON a predict request carries, and answers a fixed response. What the HTTP stack alone costs.

    uvicorn benchmarks.asgi_floor:app   (serve_overhead.py starts it with the server's own settings)
"""

from __future__ import annotations

try:
    import orjson

    loads = orjson.loads
except ImportError:  # the floor is the cheapest parse there is here
    import json

    loads = json.loads

ANSWER = b'{"predictions":[{"probabilities":[0.1,0.9],"classes":1,"labels":"b","key":""}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    status = 200
    if scope["method"] == "POST":
        try:
            loads(b"".join(chunks))
        except ValueError:
            status = 400
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
