"""Registry client logic: endpoints and trust, challenges, error decoding, manifests and
platform matching, X-Registry-Auth decoding."""
from __future__ import annotations

import json

import pytest

from berth import errdefs
from berth.distribution import manifest as mf
from berth.pkg.platforms import Platform
from berth.registry.config import ServiceConfig, ssl_context, validate_mirror
from berth.registry.errors import ErrCodes, handle_error_response, parse_challenges


def test_endpoints_and_insecure_registries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "reg.example:5000").mkdir()
    cfg = ServiceConfig(insecure_registries=["http://other.example:5000", "10.0.0.0/8"],
                        mirrors=["https://mirror.example"], certs_dirs=(str(tmp_path),))
    assert "127.0.0.0/8" in cfg.info()["InsecureRegistryCIDRs"]  # type: ignore[operator]
    eps = cfg.endpoints("127.0.0.1:5000")
    assert [(e.url, e.verify) for e in eps] == [("https://127.0.0.1:5000", False), ("http://127.0.0.1:5000", False)]
    eps = cfg.endpoints("other.example:5000")
    assert [e.url for e in eps] == ["https://other.example:5000", "http://other.example:5000"]
    eps = cfg.endpoints("10.1.2.3:5000")
    assert len(eps) == 2
    eps = cfg.endpoints("reg.example:5000")
    assert [(e.url, e.verify, e.certs_dir) for e in eps] == [
        ("https://reg.example:5000", True, str(tmp_path / "reg.example:5000"))]
    assert [e.url for e in cfg.endpoints("docker.io")] == ["https://mirror.example", "https://registry-1.docker.io"]
    assert [e.url for e in cfg.endpoints("docker.io", push=True)] == ["https://registry-1.docker.io"]
    # Berth's own per-registry mirrors (moby#18818)
    cfg2 = ServiceConfig(registry_mirrors_by_host={"reg.example:5000": ["http://127.0.0.1:1/"]})
    assert [e.url for e in cfg2.endpoints("reg.example:5000")][0] == "http://127.0.0.1:1"
    assert validate_mirror("https://m.example") == "https://m.example/"
    with pytest.raises(errdefs.InvalidParameter):
        validate_mirror("ftp://m.example")


def test_certs_d_client_certificate_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from berth.registry.config import Endpoint

    d = tmp_path / "h:1"
    d.mkdir()
    (d / "client.cert").write_text("x")
    with pytest.raises(errdefs.DockerError, match="missing key client.key for client certificate client.cert"):
        ssl_context(Endpoint("https://h:1", True, True, certs_dir=str(d)))
    (d / "client.cert").unlink()
    (d / "other.key").write_text("x")
    with pytest.raises(errdefs.DockerError, match="Missing client certificate other.cert for key other.key"):
        ssl_context(Endpoint("https://h:1", True, True, certs_dir=str(d)))


def test_challenges_and_errors() -> None:
    assert parse_challenges(['Bearer realm="https://auth.example/token",service="reg",scope="a:b:pull"',
                             'Basic realm="x"']) == [
        ("bearer", {"realm": "https://auth.example/token", "service": "reg", "scope": "a:b:pull"}),
        ("basic", {"realm": "x"})]
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
    assert str(handle_error_response(404, "Not Found", {}, body)) == "manifest unknown: manifest unknown"
    two = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"},
                                 {"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
    e = handle_error_response(401, "Unauthorized", {}, two)
    assert isinstance(e, ErrCodes)
    assert str(e) == "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n"
    assert str(handle_error_response(401, "Unauthorized", {}, b'{"details":"incorrect username or password"}')) == \
        "unauthorized: incorrect username or password"
    assert str(handle_error_response(500, "Internal Server Error", {}, b"boom")) == \
        "received unexpected HTTP status: 500 Internal Server Error"
    assert str(handle_error_response(404, "Not Found", {}, b"<html>")).startswith(
        "error parsing HTTP 404 response body: invalid character '<' looking for beginning of value")
    merged = handle_error_response(401, "Unauthorized", {}, b"{}", [
        'Bearer realm="r",error="insufficient_scope"'])
    assert str(merged) == "denied: requested access to the resource is denied"


def _index(entries: list[dict]) -> mf.Manifest:
    doc = {"schemaVersion": 2, "mediaType": mf.MANIFEST_LIST,
           "manifests": [{"mediaType": mf.SCHEMA2, "digest": "sha256:" + str(i) * 64, "size": 1, "platform": p}
                         for i, p in enumerate(entries)]}
    return mf.parse(mf.MANIFEST_LIST, json.dumps(doc).encode())


def test_platform_matching() -> None:
    m = _index([{"os": "linux", "architecture": "amd64", "variant": "v3"}, {"os": "linux", "architecture": "amd64"},
                {"os": "linux", "architecture": "arm64", "variant": "v8"}, {"os": "linux", "architecture": "arm"},
                {"os": "linux", "architecture": "arm", "variant": "v6"}])
    assert mf.select(m, Platform("linux", "amd64")).digest.endswith("1" * 64)  # v3 never matches the host
    assert mf.select(m, Platform("linux", "arm64")).digest.endswith("2" * 64)
    assert mf.select(m, Platform("linux", "arm", "v7")).digest.endswith("3" * 64)  # arm without variant = v7
    assert mf.select(m, Platform("linux", "arm", "v6")).digest.endswith("4" * 64)
    with pytest.raises(mf.ManifestError, match="no matching manifest for linux/s390x in the manifest list entries"):
        mf.select(m, Platform("linux", "s390x"))


def test_manifest_parsers() -> None:
    with pytest.raises(mf.ManifestError, match="mediaType in manifest should be"):
        mf.parse(mf.SCHEMA2, b'{"schemaVersion":2,"mediaType":"x"}')
    with pytest.raises(mf.ManifestError, match="index: expected index but found manifest"):
        mf.parse(mf.OCI_INDEX, b'{"schemaVersion":2,"config":{}}')
    with pytest.raises(mf.ManifestError, match="^missing signature key$"):
        mf.parse("text/plain", b"{}")  # any other type is read as a signed schema1 manifest
    mf.check_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(mf.ManifestError, match="unsupported media type application/x-foo"):
        mf.check_layer_media_type("application/x-foo")
    m = mf.parse(mf.SCHEMA2, json.dumps({"schemaVersion": 2, "mediaType": mf.SCHEMA2,
                                         "config": {"mediaType": "application/vnd.docker.plugin.v1+json"}}).encode())
    with pytest.raises(mf.ManifestError, match=r'Encountered remote "application/vnd.docker.plugin.v1\+json"\(plugin\)'):
        mf.check_config_media_type(m)
    raw = mf.schema2_manifest(mf.Descriptor(mf.CONFIG_V1, "sha256:" + "a" * 64, 10),
                              [mf.Descriptor(mf.LAYER_GZIP, "sha256:" + "b" * 64, 20)])
    assert raw.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": ') and not raw.endswith(b"\n")


def test_registry_auth_header_decoding() -> None:
    import base64

    from aiohttp.test_utils import make_mocked_request

    from berth.api.httputils import registry_auth

    good = base64.urlsafe_b64encode(b'{"username":"u","password":"p"}').decode()
    assert registry_auth(make_mocked_request("GET", "/", headers={"X-Registry-Auth": good})).username == "u"
    # standard alphabet or missing padding: anonymous, as dockerd
    for bad in (good.rstrip("="), "e30+/w==", "!!!!"):
        assert registry_auth(make_mocked_request("GET", "/", headers={"X-Registry-Auth": bad})) is None


def test_transfer_manager_limits_shares_and_cancels() -> None:
    import asyncio

    from berth.distribution.xfer import TransferManager

    async def main() -> None:
        mgr = TransferManager(1)
        gate = asyncio.Event()
        seen: dict[str, list[bytes]] = {"a": [], "b": [], "a2": []}

        def start(name: str):  # type: ignore[no-untyped-def]
            async def run(t):  # type: ignore[no-untyped-def]
                await mgr.acquire(lambda: t.broadcast(b"Waiting " + name.encode()))
                try:
                    t.broadcast(b"Downloading " + name.encode())
                    await gate.wait()
                    return name
                finally:
                    mgr.release()
            return run

        ta, shared = mgr.watch("k1", start("a"), seen["a"].append)
        assert not shared
        tb, _ = mgr.watch("k2", start("b"), seen["b"].append)
        await asyncio.sleep(0.01)
        assert seen["b"] == [b"Waiting b"]  # over the limit of 1
        ta2, shared = mgr.watch("k1", start("x"), seen["a2"].append)
        assert shared and ta2 is ta and seen["a2"] == [b"Downloading a"]  # the latest line at once
        mgr.unwatch(ta, seen["a"].append)
        assert not ta.task.done()  # still watched by the second client
        gate.set()
        assert await ta.task == "a" and await tb.task == "b"
        mgr.unwatch(ta2, seen["a2"].append)
        # the last watcher leaving cancels
        gate.clear()
        tc, _ = mgr.watch("k3", start("c"), lambda _b: None)
        await asyncio.sleep(0.01)
        assert mgr.unwatch(tc, tc.watchers[0]) is True
        await asyncio.sleep(0.01)
        assert tc.task.cancelled()

    asyncio.run(main())


def test_content_range_of_a_resumed_download() -> None:
    """A 206 answering `Range: bytes=<n>-` is checked as dockerd's httpReadSeeker does."""
    from berth.distribution.service import _content_range_error as check

    assert check("bytes 100-199/200", 100) == "" and check("bytes 100-199/*", 100) == ""
    assert check(None, 100) == "no Content-Range header found in HTTP 206 response"
    assert check("bytes=100-199", 100) == "could not parse Content-Range header: bytes=100-199"
    assert check("bytes 0-199/200", 100) == "received Content-Range starting at offset 0 instead of requested 100"
    assert check("bytes 100-150/200", 100) == "range in Content-Range stops before the end of the content: bytes 100-150/200"


def test_manifest_cache_keeps_only_what_matches_its_digest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from berth.distribution.metadata import ManifestCache

    cache = ManifestCache(str(tmp_path))
    raw = json.dumps({"schemaVersion": 2, "mediaType": mf.SCHEMA2}).encode()
    dgst = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert cache.get(dgst) is None
    cache.put(mf.SCHEMA2, raw, "127.0.0.1:5000/b")
    cache.put(mf.SCHEMA2, raw, "127.0.0.1:5000/a")
    assert cache.get(dgst) == (mf.SCHEMA2, raw, ["127.0.0.1:5000/a", "127.0.0.1:5000/b"])
    path = tmp_path / "sha256" / dgst[7:]
    path.write_bytes(path.read_bytes() + b" ")  # damaged on disk: not used
    assert cache.get(dgst) is None
    assert cache.get("sha256:../../etc") is None and cache.get("md5:00") is None
