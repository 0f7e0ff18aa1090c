"""The volume routes over a real unix socket (AppRunner + UnixSite, production settings),
with bodies and statuses as the reference dockerd 20.10.24 answered them."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from berth.api.router.volume import ROUTES, VOLUME_SERVICE
from berth.api.server import build_app
from berth.volume.service import VolumeService


@pytest.fixture
def tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="bv-rt-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


Request = tuple[str, str, dict[str, Any]]


def _run(tmp: str, requests: list[Request]) -> tuple[list[tuple[int, bytes]], VolumeService]:
    svc = VolumeService(os.path.join(tmp, "volumes"))

    async def main() -> list[tuple[int, bytes]]:
        app = build_app(ROUTES, {VOLUME_SERVICE: svc})
        runner = web.AppRunner(app)
        await runner.setup()
        sock = os.path.join(tmp, "api.sock")
        await web.UnixSite(runner, sock).start()
        out = []
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s:
                for method, path, kw in requests:
                    async with s.request(method, "http://x" + path, **kw) as r:
                        out.append((r.status, await r.read()))
        finally:
            await runner.cleanup()
        return out

    return asyncio.run(main()), svc


JSON = {"Content-Type": "application/json"}


def test_volume_routes_end_to_end(tmp: str) -> None:
    q = lambda f: "?filters=" + quote(f)  # noqa: E731
    res, svc = _run(tmp, [
        ("POST", "/v1.41/volumes/create", {"data": b'{"Name":"bvtest1"}', "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b'{"name":"bv5","labels":{},"driveropts":{}}', "headers": JSON}),
        ("GET", "/v1.41/volumes/bvtest1", {}),
        ("GET", "/v1.41/volumes", {}),
        ("GET", "/v1.41/volumes/nosuch", {}),
        ("GET", "/v1.41/volumes/", {}),
        ("GET", "/v1.41/volumes/a/b", {}),
        ("GET", "/v1.41/volumes" + q('{"driver":["loc"]}'), {}),
        ("GET", "/v1.41/volumes" + q('{"dangling":["maybe"]}'), {}),
        ("GET", "/v1.41/volumes" + q('{"foo":["x"]}'), {}),
        ("GET", "/v1.41/volumes" + q("xx"), {}),
        ("GET", "/v1.41/volumes" + q('{"name":"x"}'), {}),
        ("POST", "/v1.41/volumes/prune" + q("xx"), {}),
        ("POST", "/v1.41/volumes/prune" + q('{"label!":["zzz"],"label":["bvnone"]}'), {}),
        ("DELETE", "/v1.41/volumes/nosuchbv", {}),
        ("DELETE", "/v1.41/volumes/nosuchbv?force=1", {}),
        ("DELETE", "/v1.41/volumes/bv5", {}),
        ("POST", "/v1.41/volumes/prune", {}),
        ("GET", "/volumes", {}),
    ])
    root = os.path.join(tmp, "volumes")
    created = json.loads(res[0][1])["CreatedAt"]
    v1 = (f'{{"CreatedAt":"{created}","Driver":"local","Labels":null,"Mountpoint":"{root}/bvtest1/_data",'
          f'"Name":"bvtest1","Options":null,"Scope":"local"}}').encode()
    assert res[0] == (201, v1 + b"\n")
    assert res[1][0] == 201 and b'"Labels":{},' in res[1][1] and b'"Options":{},' in res[1][1]
    assert res[2] == (200, v1 + b"\n")
    assert res[3][0] == 200 and res[3][1].startswith(b'{"Volumes":[{') and res[3][1].endswith(b'],"Warnings":null}\n')
    assert sorted(v["Name"] for v in json.loads(res[3][1])["Volumes"]) == ["bv5", "bvtest1"]
    assert res[4] == (404, b'{"message":"get nosuch: no such volume"}\n')
    assert res[5] == (404, b'{"message":"get: no such volume"}\n')
    assert res[6] == (404, b'{"message":"get a/b: no such volume"}\n')
    assert res[7] == (200, b'{"Volumes":[],"Warnings":null}\n')
    assert res[8] == (400, b'{"message":"Invalid filter \'dangling=[maybe]\'"}\n')
    assert res[9] == (400, b'{"message":"Invalid filter \'foo\'"}\n')
    assert res[10] == (400, b'{"message":"error reading volume filters: invalid character \'x\' looking for beginning of value"}\n')
    assert res[11] == \
        (400, b'{"message":"error reading volume filters: json: cannot unmarshal string into Go value of type map[string]bool"}\n')
    assert res[12] == (500, b'{"message":"invalid character \'x\' looking for beginning of value"}\n')
    assert res[13] == (200, b'{"VolumesDeleted":[],"SpaceReclaimed":0}\n')
    assert res[14] == (404, b'{"message":"get nosuchbv: no such volume"}\n')
    assert res[15] == (204, b"")
    assert res[16] == (204, b"")
    assert res[17] == (200, b'{"VolumesDeleted":["bvtest1"],"SpaceReclaimed":0}\n')
    assert res[18] == (200, b'{"Volumes":[],"Warnings":null}\n')


def test_volume_create_errors(tmp: str) -> None:
    res, _ = _run(tmp, [
        ("POST", "/v1.41/volumes/create", {"data": b'{"Name":"x"}', "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b'{"Name":"bv2","Driver":"nosuch"}', "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b'{"Name":"bv3","DriverOpts":{"foo":"1"}}', "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b"", "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b'{"Name":5}', "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b"[]", "headers": JSON}),
        ("POST", "/v1.41/volumes/create", {"data": b"{}", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("POST", "/v1.41/volumes/create", {"data": b"{}", "headers": JSON}),
    ])
    assert res[0] == (400, b'{"message":"create x: volume name is too short, names should be at least two alphanumeric characters"}\n')
    assert res[1] == (404, b'{"message":"create bv2: error looking up volume plugin nosuch: plugin \\"nosuch\\" not found"}\n')
    assert res[2] == (400, b'{"message":"create bv3: invalid option: \\"foo\\""}\n')
    assert res[3] == (400, b'{"message":"got EOF while reading request body"}\n')
    assert res[4] == (400, b'{"message":"json: cannot unmarshal number into Go struct field VolumeCreateBody.Name of type string"}\n')
    assert res[5] == (400, b'{"message":"json: cannot unmarshal array into Go value of type volume.VolumeCreateBody"}\n')
    assert res[6] == (400, b'{"message":"Content-Type specified (application/x-www-form-urlencoded) must be \'application/json\'"}\n')
    assert res[7][0] == 201 and len(json.loads(res[7][1])["Name"]) == 64


def test_volume_remove_in_use_over_http(tmp: str) -> None:
    svc = VolumeService(os.path.join(tmp, "volumes"))

    async def main() -> tuple[int, bytes]:
        svc.create("bvuse", reference="c1")
        svc.acquire("bvuse", "c2")
        app = build_app(ROUTES, {VOLUME_SERVICE: svc})
        runner = web.AppRunner(app)
        await runner.setup()
        sock = os.path.join(tmp, "api.sock")
        await web.UnixSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s, \
                    s.delete("http://x/v1.41/volumes/bvuse?force=1") as r:
                return r.status, await r.read()
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == (409, b'{"message":"remove bvuse: volume is in use - [c1, c2]"}\n')
