"""The --metrics-addr listener (dockerd's `metrics API listening on …`): GET /metrics in
Prometheus' text format, and the operations page (/, /op/N, /containers/ID).

Nothing listens without --metrics-addr; an address that is not loopback is served, as
dockerd serves it, with a warning: the page and the metrics are not authenticated.
"""
from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics, page
from .core import flush

log = logging.getLogger("berth.trace")


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces, as Go's net.Listen)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid metrics address {addr!r}: want host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _metrics(request: web.Request) -> web.Response:
    metrics.SCRAPES.in_flight += 1
    try:
        flush()  # the operations and actions of the last fraction of a second too
        metrics.drain()
        body = generate_latest(metrics.REGISTRY)
    except Exception:
        metrics.SCRAPES.codes["500"] += 1
        log.exception("metrics scrape")
        raise
    finally:
        metrics.SCRAPES.in_flight -= 1
    metrics.SCRAPES.codes["200"] += 1
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def _index(request: web.Request) -> web.Response:
    return _html(page.render_index())


async def _op(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    op = page.RING.find(int(raw)) if raw.isdigit() else None
    if op is None:
        return _html(page._doc("not found", "<p>That operation is no longer in the ring. "
                                            '<a href="/">all operations</a></p>'), 404)
    return _html(page.render_op(op))


async def _container(request: web.Request) -> web.Response:
    return _html(page.render_container(request.match_info["id"]))


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", _index)
    app.router.add_get("/op/{id}", _op)
    app.router.add_get("/containers/{id}", _container)
    return app


async def start(addr: str) -> web.AppRunner:
    """Listen on `addr`; the caller cleans the runner up at shutdown."""
    host, port = parse_addr(addr)
    if not is_loopback(host):
        log.warning("metrics address %s is not a loopback address: metrics and the operations page are "
                    "served without authentication to whoever can reach it", addr)
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, host or None, port).start()
    log.info("metrics API listening on %s", addr)
    return runner
