"""`GET /events` (moby/api/server/router/system/system_routes.go `getEvents`, v20.10).

The stream: 200 with `Content-Type: application/json` and the headers flushed at
once; then the buffered events that match (only when `since` or `until` was
given); then live events until `until` passes or the client goes away. Each
event is one HTML-escaped JSON object and a newline, written (and so flushed)
on its own, as Go's json.Encoder over a WriteFlusher.
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ... import errdefs
from ...events import Events, Filter
from ...types import gojson
from ...types.filters import Args
from ...types.timestamp import parse_timestamps
from .. import versions
from ..httputils import version_from_request

EVENTS = web.AppKey("events", Events)

# How often a stream with no events checks that its client is still there. Go's
# handler sees the request context end at once; aiohttp does not cancel a handler
# when its client disconnects (handler_cancellation is off), so we look.
_DISCONNECT_POLL = 1.0


def _event_time(form_time: str) -> int | None:
    """eventTime: Unix nanoseconds, or None for the zero time (unset, or seconds == -1)."""
    sec, nsec = parse_timestamps(form_time, -1)
    if sec == -1:
        return None
    return sec * 1_000_000_000 + nsec


async def get_events(request: web.Request) -> web.StreamResponse:
    """Stream events as dockerd does; parameters `since`, `until`, `filters`."""
    since_raw = request.query.get("since", "")
    until_raw = request.query.get("until", "")
    since = _event_time(since_raw)
    until = _event_time(until_raw)

    only_past_events = False
    deadline: float | None = None
    if until is not None:
        # A zero `since` is year 1, before any `until`.
        if since is not None and until < since:
            raise errdefs.InvalidParameter(
                f"`since` time ({since_raw}) cannot be after `until` time ({until_raw})"
            )
        now = time.time_ns()
        only_past_events = until < now
        if not only_past_events:
            deadline = time.monotonic() + (until - now) / 1e9

    ef = Args.from_json(request.query.get("filters", ""))

    events = request.app[EVENTS]
    version = version_from_request(request)
    media = versions.events_media_type(request.headers.get("Accept", ""), version)
    # 1.52: without the legacy status/id/from; json-seq records start with RS (RFC 7464).
    prefix = b"\x1e" if media == "application/json-seq" else b""
    modern = versions.at_least(version, "1.52")

    def encode(ev: object) -> bytes:
        if not modern:
            return gojson.encode_stream(ev)
        return prefix + versions.event(ev, version)

    resp = web.StreamResponse(status=200)
    resp.content_type = media
    await resp.prepare(request)  # StreamResponse sends its headers right away

    sub = events.subscribe_topic(since, until, Filter(ef))
    try:
        for past in sub.buffered:
            await resp.write(encode(past))
        if only_past_events:
            return resp
        while True:
            wait = _DISCONNECT_POLL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return resp
                wait = min(wait, remaining)
            try:
                ev = await asyncio.wait_for(sub.get(), wait)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return resp
                continue
            if ev is None:  # evicted: the daemon is shutting down
                return resp
            await resp.write(encode(ev))
    except ConnectionResetError:
        return resp  # the client went away, as ctx.Done() in Go
    finally:
        events.evict(sub)


ROUTES = [("GET", "/events", get_events)]
