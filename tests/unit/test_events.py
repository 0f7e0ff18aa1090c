"""berth.events: the event log, its ring buffer, subscribers and filters (moby daemon/events)."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from berth import events as events_mod
from berth.events import EVENTS_LIMIT, Events, Filter, _strip_tag
from berth.types import gojson
from berth.types.events import Actor, Message
from berth.types.filters import Args

CID = "c" * 64


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_container_event_shape_and_encoding() -> None:
    ev = Events()
    before = time.time_ns()
    msg = ev.log_container_event(CID, "/web", "busybox", {"z": "1", "image": "label-loses", "a<": "&"}, "create")
    after = time.time_ns()
    assert msg.status == "create" and msg.id == CID and msg.From == "busybox"
    assert msg.Type == "container" and msg.Action == "create" and msg.scope == "local"
    assert msg.Actor.Attributes == {"a<": "&", "image": "busybox", "name": "web", "z": "1"}
    assert list(msg.Actor.Attributes) == sorted(msg.Actor.Attributes)  # Go's map order
    assert before <= msg.timeNano <= after and msg.time == msg.timeNano // 10**9
    line = gojson.encode_stream(msg)
    assert line == (
        b'{"status":"create","id":"' + CID.encode() + b'","from":"busybox","Type":"container",'
        b'"Action":"create","Actor":{"ID":"' + CID.encode() + b'","Attributes":{"a\\u003c":"\\u0026",'
        b'"image":"busybox","name":"web","z":"1"}},"scope":"local","time":' + str(msg.time).encode()
        + b',"timeNano":' + str(msg.timeNano).encode() + b"}\n"
    )


def test_container_event_extra_attrs_and_no_image() -> None:
    ev = Events()
    msg = ev.log_container_event(CID, "//x", "", None, "die", {"exitCode": "0", "name": "overridden"})
    assert msg.Actor.Attributes == {"exitCode": "0", "name": "x"}
    assert msg.From == ""  # no image attribute: `from` is omitted
    assert b'"from"' not in gojson.encode_stream(msg)


def test_legacy_fields_only_for_container_and_image() -> None:
    ev = Events()
    img = ev.log_image_event("sha256:abc", "busybox:latest", "tag", {"l": "v"})
    assert (img.status, img.id, img.From) == ("tag", "sha256:abc", "")
    assert img.Actor.Attributes == {"l": "v", "name": "busybox:latest"}
    vol = ev.log_volume_event("vol1", "create", {"driver": "local"})
    net = ev.log_network_event("n" * 64, "bridge", "bridge", "connect", {"container": CID})
    dmn = ev.log_daemon_event("DID", "host", "reload", {"a": "b"})
    for msg in (vol, net, dmn):
        assert (msg.status, msg.id, msg.From) == ("", "", "")
        assert gojson.encode_stream(msg).startswith(b'{"Type":"')
    assert net.Actor.Attributes == {"container": CID, "name": "bridge", "type": "bridge"}
    assert dmn.Type == "daemon" and dmn.Actor.Attributes == {"a": "b", "name": "host"}
    assert gojson.encode_stream(vol).startswith(
        b'{"Type":"volume","Action":"create","Actor":{"ID":"vol1","Attributes":{"driver":"local"}},"scope":"local",'
    )


def test_ring_buffer_keeps_last_256() -> None:
    ev = Events()
    for i in range(EVENTS_LIMIT + 10):
        ev.log_volume_event(f"v{i}", "create", {})
    kept = ev.buffered()
    assert len(kept) == EVENTS_LIMIT
    assert kept[0].Actor.ID == "v10" and f"v{EVENTS_LIMIT + 9}" == kept[-1].Actor.ID


def _msg(n: int, typ: str = "volume", action: str = "create", **attrs: str) -> Message:
    return Message(Type=typ, Action=action, Actor=Actor(ID=f"id{n}", Attributes=attrs), scope="local",
                   time=n, timeNano=n * 10**9)


def test_buffered_events_since_until() -> None:
    async def main() -> None:
        ev = Events()
        for n in (10, 20, 30, 40):
            ev.publish_message(_msg(n))
        ids = lambda sub: [m.Actor.ID for m in sub.buffered]  # noqa: E731
        assert ids(ev.subscribe_topic(None, None)) == []  # plain GET /events: live only
        assert ids(ev.subscribe_topic(20 * 10**9, None)) == ["id20", "id30", "id40"]
        assert ids(ev.subscribe_topic(None, 30 * 10**9)) == ["id10", "id20", "id30"]
        assert ids(ev.subscribe_topic(15 * 10**9, 35 * 10**9)) == ["id20", "id30"]
        assert ids(ev.subscribe_topic(None, 0)) == ["id10", "id20", "id30", "id40"]  # until=0: no bound
        flt = Filter(Args([("event", "create")]))
        ev.publish_message(_msg(50, action="destroy"))
        assert ids(ev.subscribe_topic(0, None, flt)) == ["id10", "id20", "id30", "id40"]
        assert ids(ev.subscribe()) == ["id10", "id20", "id30", "id40", "id50"]

    _run(main())


def test_subscriber_gets_live_events_filtered_and_evict_ends_it() -> None:
    async def main() -> None:
        ev = Events()
        sub = ev.subscribe_topic(None, None, Filter(Args([("type", "container")])))
        everything = ev.subscribe_topic(None, None, Filter(Args()))
        assert ev.subscribers_count() == 2
        ev.log_volume_event("v", "create", {})
        ev.log_container_event(CID, "/a", "busybox", None, "start")
        got = await asyncio.wait_for(sub.get(), 1)
        assert got is not None and got.Action == "start"
        assert [m.Type for m in (await everything.get(), await everything.get())] == ["volume", "container"]
        waiter = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        ev.evict(sub)
        assert await asyncio.wait_for(waiter, 1) is None
        assert ev.subscribers_count() == 1
        ev.close()
        assert await everything.get() is None and ev.subscribers_count() == 0

    _run(main())


def test_log_from_worker_thread_is_delivered_on_the_loop() -> None:
    async def main() -> None:
        ev = Events()
        sub = ev.subscribe_topic(None, None)
        loop_thread = threading.get_ident()
        seen_threads: list[int] = []
        orig = ev._publish_locked

        def spy(msg: Message) -> None:
            seen_threads.append(threading.get_ident())
            orig(msg)

        ev._publish_locked = spy  # type: ignore[method-assign]
        msg = await asyncio.to_thread(ev.log_volume_event, "fromthread", "create", {"driver": "local"})
        # Delivered before the awaiting coroutine resumed: the reply can't outrun the event.
        assert [m.Actor.ID for m in ev.buffered()] == ["fromthread"]
        assert seen_threads == [loop_thread]
        assert await asyncio.wait_for(sub.get(), 1) is msg

    _run(main())


def test_slow_subscriber_drops_events_after_100ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_mod, "BUFFER_SIZE", 2)

    async def main() -> None:
        ev = Events()
        sub = ev.subscribe_topic(None, None)
        for i in range(4):
            ev.log_volume_event(f"v{i}", "create", {})
        assert sub.pending() == 4  # two in the channel, two waiting for room
        assert (await sub.get()).Actor.ID == "v0"  # type: ignore[union-attr]
        assert (await sub.get()).Actor.ID == "v1"  # type: ignore[union-attr]
        # v2 and v3 got room within 100 ms: delivered.
        assert (await sub.get()).Actor.ID == "v2"  # type: ignore[union-attr]
        for i in range(4, 8):
            ev.log_volume_event(f"v{i}", "create", {})
        await asyncio.sleep(0.15)  # the reader stalls past the publish timeout
        got = [(await sub.get()).Actor.ID for _ in range(2)]  # type: ignore[union-attr]
        assert got == ["v3", "v4"]  # v5..v7 waited more than 100 ms for room: dropped
        assert sub.dropped == 3 and sub.pending() == 0
        ev.log_volume_event("v8", "create", {})
        assert (await sub.get()).Actor.ID == "v8"  # type: ignore[union-attr]

    _run(main())


# --- Filter.Include, cases checked against the reference dockerd's own filtering -------


def _container(action: str = "create", image: str = "busybox", name: str = "web", **labels: str) -> Message:
    return Events().log_container_event(CID, "/" + name, image, labels, action)


def _inc(f: dict[str, list[str]], msg: Message) -> bool:
    return Filter(Args((k, v) for k, vs in f.items() for v in vs)).include(msg)


def test_filter_type_event_scope_label() -> None:
    c = _container(lab="1")
    assert _inc({}, c)
    assert _inc({"type": ["container"]}, c) and not _inc({"type": ["image", "volume"]}, c)
    assert _inc({"event": ["create", "start"]}, c) and not _inc({"event": ["start"]}, c)
    assert _inc({"scope": ["local"]}, c) and not _inc({"scope": ["swarm"]}, c)
    assert _inc({"label": ["lab"]}, c) and _inc({"label": ["lab=1"]}, c)
    assert not _inc({"label": ["lab=2"]}, c) and not _inc({"label": ["other"]}, c)
    assert _inc({"foo": ["bar"]}, c)  # unknown keys are ignored by the events filter


def test_filter_exec_events_match_as_prefix() -> None:
    ex = _container(action="exec_start: sh -c true")
    assert _inc({"event": ["exec_start"]}, ex)
    assert not _inc({"event": ["exec_die"]}, ex)
    assert not _inc({"event": ["create"]}, ex)


def test_filter_names_match_id_or_name_prefix_for_every_type() -> None:
    c = _container(name="berthrt-probe")
    assert _inc({"container": ["berthrt"]}, c) and _inc({"container": ["ccc"]}, c)
    assert not _inc({"container": ["probe"]}, c)
    vol = Events().log_volume_event("bvtest1", "create", {"driver": "local"})
    # As in moby, `container=` also tests other types' IDs and names.
    assert _inc({"container": ["bv"]}, vol) and not _inc({"container": ["web"]}, vol)
    assert _inc({"volume": ["bv"]}, vol) and _inc({"network": ["b"]}, vol)


def test_filter_image() -> None:
    c = _container(image="busybox:latest")
    assert _inc({"image": ["busybox:latest"]}, c) and _inc({"image": ["busybox"]}, c)
    assert not _inc({"image": ["docker.io/library/busybox"]}, c)
    img = Events().log_image_event("sha256:" + "8" * 64, "sha256:" + "8" * 64, "load")
    assert _inc({"image": ["sha256"]}, img)  # "sha256:<hex>" parses as repo sha256, tag <hex>


@pytest.mark.parametrize(
    ("ref", "familiar"),
    [
        ("busybox", "busybox"),
        ("busybox:latest", "busybox"),
        ("docker.io/library/busybox:1", "busybox"),
        ("index.docker.io/foo/bar", "foo/bar"),
        ("imgltest/two:v1", "imgltest/two"),
        ("localhost:5000/x/y:t", "localhost:5000/x/y"),
        ("busybox@sha256:" + "a" * 64, "busybox"),
        ("a" * 64, "a" * 64),  # a bare ID does not parse
        ("Busybox", "Busybox"),  # upper case does not parse
        ("busybox@sha256:abc", "busybox@sha256:abc"),  # bad digest
        ("", ""),
    ],
)
def test_strip_tag(ref: str, familiar: str) -> None:
    assert _strip_tag(ref) == familiar
