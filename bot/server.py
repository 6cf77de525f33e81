"""The optional HTTP listener ([server] listen): /healthz for a container's or a load
balancer's health check, /metrics for Prometheus. aiohttp comes with discord.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.exposition import Exposition
from bot.router import Router

log = logging.getLogger(__name__)


@dataclass
class Watched:
    """What /healthz looks at. `started` is the app's list of frontends started so far."""

    router: Router
    frontends: Sequence[Any]
    started: Sequence[Any]


async def health(watched: Watched) -> tuple[bool, dict[str, Any]]:
    """(healthy, the checks as a small JSON-able dict). Starting or stopping is unhealthy:
    a load balancer should send nothing then."""
    services = watched.router.services
    default = services.config.bot.default_engine
    engine = services.engines.status(default)[0]
    checks: dict[str, Any] = {
        "accepting": watched.router.accepting,
        "frontends": f"{len(watched.started)}/{len(watched.frontends)} started",
        "engine": f"{default}: {engine}",
    }
    try:
        await services.store.schema_version()  # a query: the database answers
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"{type(exc).__name__}: {exc}"
    healthy = (watched.router.accepting and checks["store"] == "ok" and engine == "ready"
               and len(watched.started) == len(watched.frontends))
    return healthy, {"status": "ok" if healthy else "unavailable", **checks}


class Server:
    """Serves /healthz and /metrics on `host`:`port` between `start` and `stop`."""

    def __init__(self, host: str, port: int, watched: Watched) -> None:
        self.host, self.port, self.watched = host, port, watched
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)  # probes every few seconds: no log
        self.bound_port = 0
        self.exposition = Exposition()  # rendered off the event loop, shared a moment

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.bound_port = self._runner.addresses[0][1]  # the real one when port is 0
        log.info("serving /healthz and /metrics on %s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = await health(self.watched)
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.exposition.latest(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
