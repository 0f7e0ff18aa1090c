"""The image routes over a real unix socket (build_app + AppRunner + UnixSite)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile

import aiohttp
import pytest
from aiohttp import web

from berth.api.router import image as router
from berth.api.server import build_app
from berth.image import ImageService
from berth.layer import LayerStore

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make the helper importable
from imagetar import Entry, docker_save_tar, layer_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


async def _scenario(root: str) -> None:
    layers = LayerStore(os.path.join(root, "image", "overlay2", "layerdb"))
    svc = ImageService(os.path.join(root, "image", "overlay2"), layers, tmp_dir=os.path.join(root, "tmp"))
    app = build_app(router.ROUTES, {router.IMAGE_SERVICE: svc})
    runner = web.AppRunner(app)
    await runner.setup()
    sock = os.path.join(root, "d.sock")
    await web.UnixSite(runner, sock).start()
    data, image_id = docker_save_tar([layer_tar([Entry("a", data=b"1")])], ["imgltest/r:1"])
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s:
            async with s.post("http://x/v1.41/images/load", data=data,
                              headers={"Content-Type": "application/x-tar"}) as r:
                assert r.status == 200 and r.content_type == "application/json"
                assert await r.read() == b'{"stream":"Loaded image: imgltest/r:1\\n"}\r\n'
            async with s.get("http://x/v1.41/images/imgltest/r:1/json") as r:
                assert r.status == 200 and (await r.json())["Id"] == image_id
            async with s.get("http://x/v1.41/images/nope/json") as r:
                assert r.status == 404
                assert await r.json() == {"message": "no such image: nope: No such image: nope:latest"}
            async with s.post("http://x/v1.41/images/imgltest/r:1/tag?repo=imgltest/s&tag=2") as r:
                assert r.status == 201 and await r.read() == b""
            async with s.get("http://x/v1.41/images/json", params={"filters": '{"reference":{"imgltest/s":true}}'}) as r:
                body = await r.read()
                assert body.endswith(b"]\n") and [i["RepoTags"] for i in json.loads(body)] == [["imgltest/s:2"]]
            async with s.get("http://x/v1.41/images/imgltest/r:1/history") as r:
                assert (await r.json())[0]["Id"] == image_id
            async with s.get("http://x/v1.41/images/get", params=[("names", "imgltest/r:1")]) as r:
                assert r.status == 200 and r.content_type == "application/x-tar"
                assert len(await r.read()) > 1024
            rootfs = layer_tar([Entry("etc", kind="dir")])
            async with s.post("http://x/v1.41/images/create?fromSrc=-&repo=imgltest/imp&tag=t", data=rootfs,
                              headers={"Content-Type": "application/x-tar"}) as r:
                line = await r.read()
                assert r.status == 200 and line.startswith(b'{"status":"sha256:') and line.endswith(b'"}\r\n')
            async with s.delete("http://x/v1.41/images/imgltest/s:2") as r:
                assert await r.json() == [{"Untagged": "imgltest/s:2"}]
            async with s.delete("http://x/v1.41/images/imgltest/r:1") as r:
                records = await r.json()
                assert records[0] == {"Untagged": "imgltest/r:1"} and records[1] == {"Deleted": image_id}
    finally:
        await runner.cleanup()
        layers.close()


def test_image_routes() -> None:
    root = tempfile.mkdtemp(prefix="berth-imagetest-")
    try:
        asyncio.run(_scenario(root))
    finally:
        shutil.rmtree(root)
