"""The optional HTTP listener ([server] listen): /healthz (liveness) for a container's health
check, /readyz (readiness: which engines can answer) for a load balancer, /metrics for
Prometheus. What they check is bot/health.py. aiohttp comes with discord.py."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.exposition import Exposition
from bot.health import Watched, liveness, readiness

log = logging.getLogger(__name__)


class Server:
    """Serves /healthz, /readyz and /metrics on `host`:`port` between `start` and `stop`."""

    def __init__(self, host: str, port: int, watched: Watched) -> None:
        self.host, self.port, self.watched = host, port, watched
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)  # probes every few seconds: no log
        self.bound_port = 0
        self.exposition = Exposition()  # rendered off the event loop, shared a moment

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.bound_port = self._runner.addresses[0][1]  # the real one when port is 0
        log.debug("serving /healthz, /readyz and /metrics on %s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        alive, body = await liveness(self.watched)
        return web.json_response(body, status=200 if alive else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, body = await readiness(self.watched)
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.exposition.latest(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
