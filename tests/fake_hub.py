"""A fake Hugging Face hub on 127.0.0.1 serving one model folder, for the download's tests.

It answers what `snapshot_download` asks, as the hub does: the repo's info
(GET /api/models/ORG/NAME/revision/REV: its commit and files), its file tree
(GET /api/models/ORG/NAME/tree/COMMIT) and each file (HEAD and GET /ORG/NAME/resolve/COMMIT/FILE,
with the commit and an ETag in the headers). A `.safetensors` file is sent in two halves with
`hold` between them while it is set, so a test can look at a download midway. `gated` answers
every request as the hub answers one for a gated model without a token.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.harness import listen_on_loopback

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, folder: Path) -> None:
        self.repo = repo
        self.files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        self.gated = False
        self.hold: asyncio.Event | None = None  # set: weights wait on it after their first half
        self.halfway = asyncio.Event()  # set when a weights file's first half has gone out
        self.url = ""
        self._runner: Any = None

    async def start(self) -> FakeHub:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/api/models/{org}/{name}/revision/{rev}", self._info)
        app.router.add_get("/api/models/{org}/{name}/tree/{rev}", self._tree)
        app.router.add_route("HEAD", "/{org}/{name}/resolve/{rev}/{file}", self._head)
        app.router.add_get("/{org}/{name}/resolve/{rev}/{file}", self._file, allow_head=False)
        self._runner, port = await listen_on_loopback(app)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.gated:
            return web.json_response(
                {"error": f"Access to model {self.repo} is restricted. You must have access "
                          "to it and be authenticated to access it. Please log in."},
                status=401, headers={"X-Error-Code": "GatedRepo"})
        return await handler(request)

    async def _info(self, request: web.Request) -> web.Response:
        siblings = [{"rfilename": name} for name in self.files]
        return web.json_response({"id": self.repo, "modelId": self.repo, "sha": COMMIT,
                                  "siblings": siblings, "private": False, "gated": False})

    async def _tree(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"type": "file", "path": name, "size": len(data), "oid": _etag(data)}
            for name, data in self.files.items()])

    def _headers(self, data: bytes) -> dict[str, str]:
        return {"X-Repo-Commit": COMMIT, "ETag": f'"{_etag(data)}"',
                "Content-Length": str(len(data)), "Accept-Ranges": "bytes"}

    async def _head(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["file"])
        if data is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        return web.Response(headers=self._headers(data))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        data = self.files.get(name)
        if data is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        response = web.StreamResponse(headers=self._headers(data))
        await response.prepare(request)
        half = len(data) // 2 if name.endswith(".safetensors") else len(data)
        await response.write(data[:half])
        if half < len(data):
            self.halfway.set()
            if self.hold is not None:
                await self.hold.wait()
            await response.write(data[half:])
        await response.write_eof()
        return response


def _etag(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
