"""Point one discord.py client at another Discord-compatible server (or the tests' fake).

discord.py 2.7 builds every URL from constants: REST routes from `discord.http.Route.BASE`
("https://discord.com/api/v10" + "/channels/1/messages"), the gateway from
`DiscordWebSocket.DEFAULT_GATEWAY` (a plain `Client` never asks /gateway/bot; only the sharded
client does). Setting those constants would move every client in the process, so instead each
place where a finished URL leaves the library is wrapped, for this client only:

- REST: `HTTPClient.request(route)` reads `route.url`; our subclass rewrites its prefix first.
- Gateway: `HTTPClient.ws_connect(url)` gets the default gateway (or the resume URL that READY
  sent, which already points at the right server); our subclass swaps the default for ours.
- Interactions and their webhooks (defer, edit the original response, followups) do not go
  through HTTPClient but through the `AsyncWebhookAdapter` held in the context variable
  `discord.webhook.async_.async_context`. `use_webhook_routes` sets ours in the task that runs
  the gateway; discord.py starts every event handler as a task from there, and tasks copy
  their context, so all of this client's handlers (and nobody else's) use it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

DISCORD_API = Route.BASE
DISCORD_GATEWAY = str(DiscordWebSocket.DEFAULT_GATEWAY)


class Routes:
    """Where this client's REST calls and gateway connection go."""

    def __init__(self, api_base: str, gateway_url: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.gateway_url = gateway_url

    def rest(self, route: Route) -> Route:
        if self.api_base != DISCORD_API and route.url.startswith(DISCORD_API):
            route.url = self.api_base + route.url[len(DISCORD_API):]
        return route

    def gateway(self, url: str) -> str:
        if self.gateway_url == DISCORD_GATEWAY or not url.startswith(DISCORD_GATEWAY):
            return url
        return str(yarl.URL(self.gateway_url).with_query(yarl.URL(url).query))


class RoutedHTTPClient(HTTPClient):
    def __init__(self, routes: Routes, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes = routes

    async def request(self, route: Route, **kwargs: Any) -> Any:
        return await super().request(self.routes.rest(route), **kwargs)

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        return await super().ws_connect(self.routes.gateway(url), compress=compress)


class RoutedWebhookAdapter(AsyncWebhookAdapter):
    def __init__(self, routes: Routes) -> None:
        super().__init__()
        self.routes = routes

    async def request(self, route: Route, *args: Any, **kwargs: Any) -> Any:
        return await super().request(self.routes.rest(route), *args, **kwargs)


def use_webhook_routes(routes: Routes) -> None:
    """Call inside the task that runs the client's gateway (see the module's docstring)."""
    async_context.set(RoutedWebhookAdapter(routes))


class RoutedClient(discord.Client):
    """A discord.Client whose REST calls and gateway connection follow `routes`."""

    def __init__(self, routes: Routes, **options: Any) -> None:
        self.routes = routes
        super().__init__(**options)

    def _get_state(self, **options: Any) -> Any:
        # Client.__init__ builds self.http and then, here, the connection state that shares
        # it: the one moment to put ours in its place before anything uses it. (This bot
        # passes Client no proxy or connector options, so the plain client loses none.)
        self.http = RoutedHTTPClient(self.routes, self.http.loop)
        return super()._get_state(**options)
