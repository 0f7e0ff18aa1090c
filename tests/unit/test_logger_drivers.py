"""The shipping drivers' wire formats (without a network): syslog's srslog formats, gelf's
go-gelf document and chunks, fluentd's forward messages, journald's native protocol (to
a socket of the test's own)."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import tempfile

import msgspec
import pytest

from berth.logger.copier import Message, Partial
from berth.logger.drivers import DriverError
from berth.logger.drivers import fluentd as fl
from berth.logger.drivers import gelf as gl
from berth.logger.drivers import journald as jd
from berth.logger.drivers import syslog as sl
from berth.logger.info import Info

CID = "c" * 64
TS = b"2026-12-02T07:44:13.869629000+00:00"


def info(**cfg: str) -> Info:
    return Info(Config=dict(cfg), ContainerID=CID, ContainerName="/web", ContainerEntrypoint="sh",
                ContainerArgs=["-c", "x"], ContainerImageID="sha256:" + "a" * 64, ContainerImageName="busybox",
                ContainerEnv=["E=1"], ContainerLabels={"team": "a"}, ContainerCreated="2026-12-02T07:44:14.1Z")


def test_syslog_formats_as_srslog() -> None:
    now = dt.datetime(2026, 12, 2, 7, 4, 13, 869629, tzinfo=dt.UTC)
    m = Message(b"stdout", TS, b"hello")
    d = sl.Syslog(info(), {"syslog-address": "udp://127.0.0.1:15599"})
    assert d.format_message(m, now) == f"<30>Dec  2 07:04:13 {CID[:12]}[{os.getpid()}]: hello\n".encode()
    d = sl.Syslog(info(tag="{{.Name}}"), {"syslog-address": "tcp+tls://127.0.0.1:15599", "syslog-format": "rfc5424micro",
                                           "syslog-facility": "local3"})
    body = f"<155>1 2026-12-02T07:04:13.869629Z {socket.gethostname()} web {os.getpid()} web - oops\n"
    assert d.format_message(Message(b"stderr", TS, b"oops"), now) == f"{len(body)} {body}".encode()  # RFC 5425
    assert d.format_message(Message(b"stdout", TS, b""), now) is None  # empty lines are not sent
    assert sl.parse_address("tcp://host") == ("tcp", "host:514")
    for bad, msg in (("x://y", "syslog-address should be in form proto://address, got x://y"),):
        with pytest.raises(DriverError, match=msg):
            sl.parse_address(bad)
    with pytest.raises(DriverError, match="invalid syslog facility"):
        sl.parse_facility("24")


def test_gelf_document_and_chunks() -> None:
    d = gl.Gelf(info(labels="team"), {"gelf-address": "udp://127.0.0.1:15599", "gelf-compression-type": "none"})
    doc = d.document(Message(b"stderr", TS, b"a\t<b>\xff"))
    assert doc is not None
    assert doc.startswith(b'{"version":"1.1","host":' + f'"{socket.gethostname()}"'.encode() +
                          b',"short_message":"a\\t\\u003cb\\u003e\\ufffd","timestamp":1796197453.869,"level":3,'
                          b'"_command":"sh -c x","_container_id":"' + CID.encode())
    assert doc.endswith(b',"_tag":"' + CID[:12].encode() + b'","_team":"a"}')
    chunks = d.chunks(os.urandom(5000))
    assert len(chunks) == 5000 // 1408 + 1 and all(c[:2] == b"\x1e\x0f" and c[11] == len(chunks) for c in chunks)
    assert [c[10] for c in chunks] == list(range(len(chunks))) and len({c[2:10] for c in chunks}) == 1


def test_fluentd_message_and_addresses() -> None:
    d = fl.Fluentd(info(env="E"), {"fluentd-address": "127.0.0.1:15599"})
    ev = msgspec.msgpack.decode(d.encode(Message(b"stdout", TS, b"xy", Partial("pid", 2, True))))
    assert ev[0] == CID[:12] and ev[1] == 1796197453 and ev[3] == {}
    rec = ev[2]
    assert rec == {"container_id": CID, "container_name": "/web", "source": "stdout", "log": "xy", "E": "1",
                   "partial_message": "true", "partial_id": "pid", "partial_ordinal": "2", "partial_last": "true"}
    raw = d.encode(Message(b"stdout", TS, b"x\xff"))
    assert b"\xa2x\xff" in raw  # the bytes as they are, as Go's string
    assert fl.parse_address("") == fl.Location("tcp", "127.0.0.1", 24224, "")
    assert fl.parse_address("unix:///run/f.sock") == fl.Location("unix", "", 0, "/run/f.sock")
    assert fl.parse_address("tcp://h:25") == fl.Location("tcp", "h", 25, "")
    assert fl.parse_address("h") == fl.Location("tcp", "", 24224, "")  # dockerd: host dropped
    with pytest.raises(DriverError, match="conflicting options"):
        fl.parse_config({"fluentd-async": "true", "fluentd-async-connect": "true"})


def test_journald_native_protocol() -> None:
    d = tempfile.mkdtemp(prefix="bt-journal-")
    path = os.path.join(d, "socket")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        drv = jd.Journald(info(labels="team"), {})
        drv.socket_path = path

        async def go() -> None:
            await drv.connect()
            await drv.log([Message(b"stdout", TS, b"hi"), Message(b"stderr", TS, b"a\nb", Partial("p", 1, False))])
            await drv.close()

        asyncio.run(go())
        first, second = srv.recv(65536), srv.recv(65536)
    finally:
        srv.close()
        os.unlink(path)
        os.rmdir(d)
    assert first.startswith(b"MESSAGE=hi\nPRIORITY=6\nCONTAINER_ID=" + CID[:12].encode() + b"\n")
    assert b"CONTAINER_NAME=web\n" in first and b"SYSLOG_IDENTIFIER=" + CID[:12].encode() in first
    assert b"TEAM=a\n" in first
    assert second.startswith(b"MESSAGE\n" + (3).to_bytes(8, "little") + b"a\nb\nPRIORITY=3\n")
    assert second.endswith(b"CONTAINER_PARTIAL_LAST=false\nCONTAINER_PARTIAL_MESSAGE=true\n")
    with pytest.raises(DriverError, match="journald is not enabled on this host"):
        bad = jd.Journald(info(), {})
        bad.socket_path = path
        bad._connect()
