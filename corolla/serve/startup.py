"""Start-up: the port opens once a version is warm, and one line says where the server answers.

Example:
    ready = ReadyLine(manager)                      # says "Ready at …" once bound and loaded
    manager.load_first()
    AnnouncingServer(uvicorn.Config(app, port=8501), on_bound=ready.bound).run()
"""

from __future__ import annotations

import logging
import threading

import uvicorn

logger = logging.getLogger("corolla.serve")


class ReadyLine:
    """Logs "Ready at URL: …" once, when the port is bound and a version is warm, whichever comes last."""

    def __init__(self, manager):
        self.manager, self.url = manager, None
        self._lock, self._said = threading.Lock(), False
        manager.on_load = lambda servable: self._say()

    def bound(self, url: str) -> None:
        self.url = url
        self._say()

    def _say(self) -> None:
        with self._lock:
            if self._said or self.url is None or self.manager.current is None:
                return
            self._said = True
        name = self.manager.model_name
        logger.info("Ready at %s/v1/models/%s: %s; web page %s/", self.url, name, describe(self.manager), self.url)


def describe(manager) -> str:
    current = manager.current
    threads = current.runtime_threads
    runtime = f"{current.runtime_name} runtime" + (f" on {threads} thread{'s' if threads > 1 else ''}" if threads else "")
    return f"model '{manager.model_name}' version {current.version}, {runtime}, batches of up to {current.batch_size}"


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, telling `on_bound(url)` once its socket accepts connections."""

    def __init__(self, config: uvicorn.Config, *, on_bound):
        super().__init__(config)
        self.on_bound = on_bound

    async def startup(self, sockets=None):
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.on_bound(f"http://{f'[{host}]' if ':' in host else host}:{port}")
