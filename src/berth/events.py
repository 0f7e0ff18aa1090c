"""The daemon's event log: the last 256 events, live subscribers and their filters.

Follows moby v20.10 daemon/events/events.go (`Events`: Log, SubscribeTopic,
loadBufferedEvents, Evict), pkg/pubsub/publisher.go (each subscriber has a
1024-event channel and 100 ms to make room before an event is dropped for it),
daemon/events/filter.go (`Filter.Include`) and daemon/events.go (the
Log*Event helpers that build each type's attributes).

Threading: `log()` may be called from any thread (subsystems run in worker
threads). The ring buffer and the subscriber set are changed only on the
event loop once one is bound (by the first subscription, or `bind_loop`);
from another thread the event is stamped at once and handed to the loop
with `call_soon_threadsafe`. Since `run_in_executor` hands its result back the
same way and later, an event logged by a worker is in the ring before the
awaiting coroutine resumes, so a reply sent afterwards never outruns its event.
"""
from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping

from .types.events import (
    CONFIG_EVENT_TYPE,
    CONTAINER_EVENT_TYPE,
    DAEMON_EVENT_TYPE,
    IMAGE_EVENT_TYPE,
    NETWORK_EVENT_TYPE,
    NODE_EVENT_TYPE,
    PLUGIN_EVENT_TYPE,
    SECRET_EVENT_TYPE,
    SERVICE_EVENT_TYPE,
    VOLUME_EVENT_TYPE,
    Actor,
    Message,
)
from .types.filters import Args

EVENTS_LIMIT = 256  # events kept for replay (eventsLimit)
BUFFER_SIZE = 1024  # a subscriber's channel (bufferSize)
PUBLISH_TIMEOUT = 0.1  # seconds a subscriber has to take an event (NewPublisher(100ms))


class Subscription:
    """One listener (a pubsub channel): the matching buffered events plus live ones.

    `buffered` holds the replayed events (only when since/until was given).
    `get()` returns the next live event, or None once evicted or closed.

    Go's publisher waits up to 100 ms on a full channel before dropping the
    event for that subscriber. Here the publisher never blocks: an event that
    finds the channel full waits in `_overflow` and is dropped if no room
    appears within 100 ms of its publication.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, buffered: list[Message], ef: Filter | None) -> None:
        self.buffered = buffered
        self._loop = loop
        self._filter = ef
        self._chan: collections.deque[Message] = collections.deque()
        self._overflow: collections.deque[tuple[float, Message]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0  # events dropped for this subscriber (slow reader)

    def _send(self, msg: Message) -> None:
        """Publisher side (on the loop): the topic check, then the channel."""
        if self._closed or (self._filter is not None and not self._filter.include(msg)):
            return
        self._expire()
        if not self._overflow and len(self._chan) < BUFFER_SIZE:
            self._chan.append(msg)
        else:
            self._overflow.append((time.monotonic() + PUBLISH_TIMEOUT, msg))
        self._wake()

    def _expire(self) -> None:
        """Move waiting events into freed room; drop those past their 100 ms."""
        now = time.monotonic()
        while self._overflow:
            deadline, msg = self._overflow[0]
            if deadline < now:
                self._overflow.popleft()
                self.dropped += 1
            elif len(self._chan) < BUFFER_SIZE:
                self._overflow.popleft()
                self._chan.append(msg)
            else:
                break

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _close(self) -> None:
        self._closed = True
        self._chan.clear()
        self._overflow.clear()
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        """Events waiting to be read (channel plus those still within their 100 ms)."""
        return len(self._chan) + len(self._overflow)

    async def get(self) -> Message | None:
        """The next live event; None when the subscription is closed."""
        while True:
            if self._closed:
                return None
            if self._chan:
                msg = self._chan.popleft()
                self._expire()
                return msg
            self._expire()
            if self._chan:
                continue
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Message]:
        while (msg := await self.get()) is not None:
            yield msg


class Events:
    """Pubsub for engine events (events.Events); the Daemon owns one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[Message] = collections.deque(maxlen=EVENTS_LIMIT)
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.logged = 0  # engine_daemon_events_total

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on `loop` (default: the running one); call it from that loop."""
        with self._lock:
            self._loop = loop or asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()

    # --- publishing ------------------------------------------------------------------

    def log(self, action: str, event_type: str, actor_id: str, attributes: Mapping[str, str] | None) -> Message:
        """Events.Log: stamp a local-scope event now and publish it. Any thread.

        Container events also carry the deprecated `status`/`id`/`from` (= the
        `image` attribute); image events `status`/`id`. Attributes are stored
        sorted, the order Go's encoder writes a map in.
        """
        now = time.time_ns()
        attrs = None if attributes is None else {k: attributes[k] for k in sorted(attributes)}
        status = msg_id = from_ = ""
        if event_type == CONTAINER_EVENT_TYPE:
            status, msg_id, from_ = action, actor_id, (attrs or {}).get("image", "")
        elif event_type == IMAGE_EVENT_TYPE:
            status, msg_id = action, actor_id
        msg = Message(
            status=status,
            id=msg_id,
            From=from_,
            Type=event_type,
            Action=action,
            Actor=Actor(ID=actor_id, Attributes=attrs),
            scope="local",
            time=now // 1_000_000_000,
            timeNano=now,
        )
        self.publish_message(msg)
        return msg

    def publish_message(self, msg: Message) -> None:
        """Events.PublishMessage: keep `msg` in the ring and send it to subscribers."""
        with self._lock:
            self.logged += 1
            loop = self._loop
            if loop is None or self._loop_thread == threading.get_ident():
                self._publish_locked(msg)
                return
        try:
            loop.call_soon_threadsafe(self._publish, msg)
        except RuntimeError:  # the loop is closed: no subscriber can read it anyway
            with self._lock:
                self._events.append(msg)

    def _publish(self, msg: Message) -> None:
        with self._lock:
            self._publish_locked(msg)

    def _publish_locked(self, msg: Message) -> None:
        self._events.append(msg)  # a full deque discards the oldest event
        for sub in self._subscribers:
            sub._send(msg)

    # --- subscribing -----------------------------------------------------------------

    def subscribe_topic(self, since: int | None, until: int | None, ef: Filter | None = None) -> Subscription:
        """SubscribeTopic: buffered events between since/until (ns; None = unset) that
        pass `ef`, and a live subscription to the events that pass it. On the loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is None or (self._loop is not loop and self._loop.is_closed()):
                self._loop, self._loop_thread = loop, threading.get_ident()
            if ef is not None and len(ef.args) == 0:
                ef = None
            sub = Subscription(loop, self._load_buffered_events(since, until, ef), ef)
            self._subscribers.add(sub)
        return sub

    def subscribe(self) -> Subscription:
        """Events.Subscribe: every buffered event, and all live ones. On the loop."""
        sub = self.subscribe_topic(None, None)
        with self._lock:
            sub.buffered = list(self._events)
        return sub

    def evict(self, sub: Subscription) -> None:
        """Events.Evict: stop `sub`; its pending `get()` returns None."""
        with self._lock:
            self._subscribers.discard(sub)
        sub._close()

    def close(self) -> None:
        """Close every subscription (daemon shutdown)."""
        with self._lock:
            subs, self._subscribers = self._subscribers, set()
        for sub in subs:
            sub._close()

    def subscribers_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def buffered(self) -> list[Message]:
        """A copy of the ring, oldest first."""
        with self._lock:
            return list(self._events)

    def _load_buffered_events(self, since: int | None, until: int | None, ef: Filter | None) -> list[Message]:
        """loadBufferedEvents: newest first until one older than `since`, then reversed.

        Nothing without since and until. As in Go, an `until` at or before the epoch
        (`until=0`) sets no upper bound, and the walk stops at the first event older
        than `since` even if older ones follow out of order.
        """
        if since is None and until is None:
            return []
        since_ns = since or 0
        until_ns = until or 0
        out: list[Message] = []
        for ev in reversed(self._events):
            if ev.timeNano < since_ns:
                break
            if until_ns > 0 and ev.timeNano > until_ns:
                continue
            if ef is None or ef.include(ev):
                out.append(ev)
        out.reverse()
        return out

    # --- per-type helpers (daemon/events.go) ----------------------------------------

    def log_container_event(
        self,
        container_id: str,
        container_name: str,
        image: str,
        labels: Mapping[str, str] | None,
        action: str,
        extra_attrs: Mapping[str, str] | None = None,
    ) -> Message:
        """LogContainerEventWithAttributes: extra attributes, then all labels, then
        `image` (if set) and `name` (without leading slashes), later ones winning."""
        attributes = dict(extra_attrs or {})
        attributes.update(labels or {})
        if image:
            attributes["image"] = image
        attributes["name"] = container_name.lstrip("/")
        return self.log(action, CONTAINER_EVENT_TYPE, container_id, attributes)

    def log_image_event(
        self,
        image_id: str,
        ref_name: str,
        action: str,
        labels: Mapping[str, str] | None = None,
        extra_attrs: Mapping[str, str] | None = None,
    ) -> Message:
        """LogImageEventWithAttributes: the image's Config.Labels (pass None when the
        image is already gone, as for `delete`), then `name` = ref_name if set."""
        attributes = dict(extra_attrs or {})
        attributes.update(labels or {})
        if ref_name:
            attributes["name"] = ref_name
        return self.log(action, IMAGE_EVENT_TYPE, image_id, attributes)

    def log_volume_event(self, volume_id: str, action: str, attributes: Mapping[str, str] | None) -> Message:
        """LogVolumeEvent: the caller's attributes as given (`driver`, `container`, ...)."""
        return self.log(action, VOLUME_EVENT_TYPE, volume_id, dict(attributes) if attributes is not None else None)

    def log_network_event(
        self,
        network_id: str,
        network_name: str,
        network_type: str,
        action: str,
        extra_attrs: Mapping[str, str] | None = None,
    ) -> Message:
        """LogNetworkEventWithAttributes: extra attributes (`container` for connect and
        disconnect), then `name` and `type` (the driver)."""
        attributes = dict(extra_attrs or {})
        attributes["name"] = network_name
        attributes["type"] = network_type
        return self.log(action, NETWORK_EVENT_TYPE, network_id, attributes)

    def log_daemon_event(
        self, daemon_id: str, daemon_name: str, action: str, attributes: Mapping[str, str] | None = None
    ) -> Message:
        """LogDaemonEventWithAttributes (`reload`): `name` = the daemon's Info.Name if set."""
        attrs = dict(attributes or {})
        if daemon_name:
            attrs["name"] = daemon_name
        return self.log(action, DAEMON_EVENT_TYPE, daemon_id, attrs)


class Filter:
    """daemon/events/filter.go: which events a `filters` value lets through."""

    def __init__(self, args: Args) -> None:
        self.args = args

    def include(self, ev: Message) -> bool:
        """Filter.Include: every filter key must match (values of one key are ORed)."""
        f = self.args
        return (
            self._match_event(ev)
            and f.exact_match("type", ev.Type)
            and (not f.contains("scope") or f.exact_match("scope", ev.scope))
            and self._fuzzy_match_name(ev, DAEMON_EVENT_TYPE)
            and self._fuzzy_match_name(ev, CONTAINER_EVENT_TYPE)
            and self._fuzzy_match_name(ev, PLUGIN_EVENT_TYPE)
            and self._fuzzy_match_name(ev, VOLUME_EVENT_TYPE)
            and self._fuzzy_match_name(ev, NETWORK_EVENT_TYPE)
            and self._match_image(ev)
            and self._fuzzy_match_name(ev, NODE_EVENT_TYPE)
            and self._fuzzy_match_name(ev, SERVICE_EVENT_TYPE)
            and self._fuzzy_match_name(ev, SECRET_EVENT_TYPE)
            and self._fuzzy_match_name(ev, CONFIG_EVENT_TYPE)
            and (not f.contains("label") or f.match_kv_list("label", ev.Actor.Attributes))
        )

    def _match_event(self, ev: Message) -> bool:
        # moby#25798: `health_status`, `exec_create` and `exec_start` carry a suffix
        # (`exec_start: sh`), so given bare they match as prefixes.
        if any(v in ("health_status", "exec_create", "exec_start") for v in self.args.get("event")):
            return self.args.fuzzy_match("event", ev.Action)
        return self.args.exact_match("event", ev.Action)

    def _fuzzy_match_name(self, ev: Message, event_type: str) -> bool:
        """By ID or `name` attribute, each as a prefix. Note: not restricted to events of
        that type, as in moby (a `container=` filter also tests volume events' IDs)."""
        name = (ev.Actor.Attributes or {}).get("name", "")
        return self.args.fuzzy_match(event_type, ev.Actor.ID) or self.args.fuzzy_match(event_type, name)

    def _match_image(self, ev: Message) -> bool:
        """The image ID, or the `image` attribute (`name` for image events), each as
        given and with its tag/digest stripped."""
        attrs = ev.Actor.Attributes or {}
        image_name = attrs.get("name" if ev.Type == IMAGE_EVENT_TYPE else "image", "")
        f = self.args
        return (
            f.exact_match("image", ev.Actor.ID)
            or f.exact_match("image", image_name)
            or f.exact_match("image", _strip_tag(ev.Actor.ID))
            or f.exact_match("image", _strip_tag(image_name))
        )


# --- stripTag: reference.ParseNormalizedNamed + FamiliarName -------------------------
# The grammar of docker/distribution's reference package as vendored in moby 20.10
# (reference/regexp.go, normalize.go). Kept private: only the familiar name is needed.

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_NAME_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*(?::[0-9]+)?"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _NAME_COMPONENT + r"(?:/" + _NAME_COMPONENT + r")*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII)
_ANCHORED_DOMAIN = re.compile(_DOMAIN, re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


def _strip_tag(image: str) -> str:
    """The familiar repository name of `image` (`busybox` for
    `docker.io/library/busybox:latest`), or `image` itself if it does not parse."""
    if _IDENTIFIER.fullmatch(image):
        return image
    # splitDockerDomain
    first, slash, rest = image.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost"):
        domain, remainder = "docker.io", image
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    repo_name = remainder.split(":", 1)[0]
    if repo_name.lower() != repo_name:
        return image
    m = _REFERENCE.fullmatch(domain + "/" + remainder)
    if m is None or len(m.group(1)) > 255:
        return image
    digest = m.group(3)
    if digest is not None:
        algo, _, hexpart = digest.partition(":")
        if _DIGEST_HEX_LEN.get(algo) != len(hexpart) or hexpart.lower() != hexpart:
            return image
    name = m.group(1)
    dom, _, path = name.partition("/")
    if not _ANCHORED_DOMAIN.fullmatch(dom):  # cannot happen after splitDockerDomain
        return image
    if dom == "docker.io":
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "library":
            return parts[1]
        return path
    return name
