"""The shipping log drivers against real receivers on loopback: Debian's rsyslog (udp, tcp,
tcp+tls, a unix socket; run in the foreground with its own config, stopped by pid), and
small gelf and fluentd receivers run by the tests (gelf: chunks reassembled, decompressed,
JSON parsed; fluentd: the msgpack forward protocol, with acks). Every line must arrive, in
order, with the fields dockerd 20.10.24 sends. Ports 15520-15549."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator

import msgspec
import pytest
from berthd_harness import Berthd

N = 200
# N numbered lines on stdout, every 10th also on stderr
NUMBERED = f"i=0; while [ $i -lt {N} ]; do echo line $i; [ $((i % 10)) = 0 ] && echo err $i >&2; i=$((i+1)); done"


def _run(b: Berthd, *args: str) -> str:
    return b.docker("run", "-d", "--network", "none", *args).stdout.decode().strip()


def _wait_for(fn, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


@pytest.fixture
def made(berthd: Berthd) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    if ids:
        berthd.docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def tmpdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="bt-logdrv-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- rsyslog -------------------------------------------------------------------------------

RSYSLOG_CONF = """
global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/srv.pem"
       defaultNetstreamDriverKeyFile="{d}/srv.key")
module(load="imudp")
module(load="imtcp" MaxSessions="50")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" port="15520" address="127.0.0.1" ruleset="out" rcvBufSize="8m")
input(type="imtcp" port="15521" address="127.0.0.1" ruleset="out")
input(type="imtcp" port="15522" address="127.0.0.1" ruleset="out" StreamDriver.Name="ossl"
      StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imuxsock" Socket="{d}/log.sock" RateLimit.Interval="0" UseSpecialParser="off"
      ParseHostname="on" ruleset="out")
template(name="t" type="string" string="%inputname%|%pri%|%programname%|%hostname%|%msg:::drop-last-lf%\\n")
ruleset(name="out") {{ action(type="omfile" file="{d}/out.log" template="t") }}
"""


def _certs(d: str) -> None:
    """A CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bt-ca",
         "-keyout", "ca.key", "-out", "ca.pem")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "ext.cnf", "-out", "srv.pem")


@pytest.fixture(scope="module")
def rsyslog(tmpdir: str) -> Iterator[str]:
    if shutil.which("rsyslogd") is None:
        pytest.skip("rsyslog is not installed (scripts/install-deps installs it)")
    d = os.path.join(tmpdir, "rsyslog")
    os.makedirs(d)
    _certs(d)
    conf = os.path.join(d, "rsyslog.conf")
    with open(conf, "w") as f:
        f.write(RSYSLOG_CONF.format(d=d))
    with open(os.path.join(d, "rsyslogd.out"), "wb") as out:
        proc = subprocess.Popen(["rsyslogd", "-n", "-iNONE", "-f", conf], stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            for port in (15521, 15522):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    return False
            return os.path.exists(os.path.join(d, "log.sock"))

        if not _wait_for(up):
            with open(os.path.join(d, "rsyslogd.out")) as f:
                raise AssertionError(f"rsyslogd did not come up: {f.read()}")
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _syslog_lines(d: str, tag: str, count: int) -> list[list[str]]:
    def got() -> list[list[str]]:
        try:
            with open(os.path.join(d, "out.log"), errors="replace") as f:
                rows = [ln.rstrip("\n").split("|", 4) for ln in f]
        except FileNotFoundError:
            return []
        rows = [r for r in rows if len(r) == 5 and r[2] == tag]
        return rows if len(rows) >= count else []

    return _wait_for(got) or []


@pytest.mark.parametrize("address,fmt,facility,pri_base", [
    ("udp://127.0.0.1:15520", "", "", 24),
    ("tcp://127.0.0.1:15521", "rfc3164", "local3", 19 * 8),
    ("tcp+tls://127.0.0.1:15522", "rfc5424", "user", 8),
    ("unixgram://{d}/log.sock", "rfc5424micro", "", 24),
])
def test_syslog_delivers_every_line_to_rsyslog(berthd: Berthd, made: list[str], rsyslog: str, address: str,
                                               fmt: str, facility: str, pri_base: int) -> None:
    tag = f"bt{abs(hash((address, fmt))) % 10**8}"
    opts = ["--log-driver", "syslog", "--log-opt", f"syslog-address={address.format(d=rsyslog)}",
            "--log-opt", f"tag={tag}"]
    if fmt:
        opts += ["--log-opt", f"syslog-format={fmt}"]
    if facility:
        opts += ["--log-opt", f"syslog-facility={facility}"]
    if address.startswith("tcp+tls"):
        opts += ["--log-opt", f"syslog-tls-ca-cert={rsyslog}/ca.pem"]
    cid = _run(berthd, *opts, "busybox", "sh", "-c", NUMBERED)
    made.append(cid)
    berthd.docker("wait", cid)
    rows = _syslog_lines(rsyslog, tag, N + N // 10)
    out = [r for r in rows if r[1] == str(pri_base + 6)]  # info: stdout
    err = [r for r in rows if r[1] == str(pri_base + 3)]  # err: stderr
    assert [r[4].strip() for r in out] == [f"line {i}" for i in range(N)]
    assert [r[4].strip() for r in err] == [f"err {i}" for i in range(0, N, 10)]
    if fmt in ("rfc3164", "rfc5424"):
        assert {r[3] for r in rows} == {socket.gethostname()}
    # the dual-logging cache: docker logs still reads everything
    logs = berthd.docker("logs", cid)
    assert logs.stdout.decode().splitlines() == [f"line {i}" for i in range(N)]


# -- gelf ----------------------------------------------------------------------------------

class GelfReceiver:
    """GELF over udp (chunked, gzip/zlib/none) or tcp (NUL-separated)."""

    def __init__(self, proto: str, port: int) -> None:
        self.proto, self.port = proto, port
        self.docs: list[dict[str, object]] = []
        self.chunked = 0
        self._stop = threading.Event()
        if proto == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        if proto == "tcp":
            self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._udp if proto == "udp" else self._tcp, daemon=True)
        self.thread.start()

    @staticmethod
    def _decode(data: bytes) -> dict[str, object]:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:1] == b"\x78":
            data = zlib.decompress(data)
        return json.loads(data)

    def _udp(self) -> None:
        parts: dict[bytes, dict[int, bytes]] = {}
        while not self._stop.is_set():
            try:
                d = self.sock.recv(65536)
            except TimeoutError:
                continue
            if d[:2] == b"\x1e\x0f":
                mid, seq, count = d[2:10], d[10], d[11]
                parts.setdefault(mid, {})[seq] = d[12:]
                if len(parts[mid]) == count:
                    self.chunked += 1
                    got = parts.pop(mid)
                    d = b"".join(got[i] for i in range(count))
                else:
                    continue
            self.docs.append(self._decode(d))

    def _tcp(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            buf = b""
            with c:
                c.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        d = c.recv(65536)
                    except TimeoutError:
                        continue
                    if not d:
                        break
                    buf += d
                    *docs, buf = buf.split(b"\0")
                    self.docs += [json.loads(x) for x in docs]

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


LONG = "head -c 12000 /dev/urandom | base64 | tr -d '\\n'; echo"  # 16000 chars: one 16 KiB piece


@pytest.mark.parametrize("proto,compression,port", [
    ("udp", "gzip", 15530), ("udp", "zlib", 15531), ("udp", "none", 15532), ("tcp", "", 15533)])
def test_gelf_delivers_every_line(berthd: Berthd, made: list[str], proto: str, compression: str, port: int) -> None:
    rx = GelfReceiver(proto, port)
    try:
        opts = ["--log-driver", "gelf", "--log-opt", f"gelf-address={proto}://127.0.0.1:{port}",
                "--label", "team=a", "--log-opt", "labels=team"]
        if compression:
            opts += ["--log-opt", f"gelf-compression-type={compression}"]
        cid = _run(berthd, "--name", f"gelf{port}", *opts, "busybox", "sh", "-c", f"{NUMBERED}; {LONG}")
        made.append(cid)
        berthd.docker("wait", cid)
        total = N + N // 10 + 1
        assert _wait_for(lambda: len(rx.docs) >= total), len(rx.docs)
    finally:
        rx.close()
    docs = rx.docs
    out = [d["short_message"] for d in docs if d["level"] == 6]
    assert out[:N] == [f"line {i}" for i in range(N)] and len(out[N]) == 16000
    assert [d["short_message"] for d in docs if d["level"] == 3] == [f"err {i}" for i in range(0, N, 10)]
    info = json.loads(berthd.docker("inspect", cid).stdout)[0]
    d = docs[0]
    assert d["version"] == "1.1" and d["host"] == socket.gethostname()
    assert d["_container_id"] == cid and d["_container_name"] == f"gelf{port}" and d["_tag"] == cid[:12]
    assert d["_image_name"] == "busybox" and d["_image_id"] == info["Image"] and d["_team"] == "a"
    assert d["_created"] == info["Created"] and str(d["_command"]).startswith("sh -c i=0;")
    assert isinstance(d["timestamp"], float)
    if proto == "udp" and compression == "none":
        assert rx.chunked >= 1  # the long line went in 1420-byte chunks


# -- fluentd -------------------------------------------------------------------------------

def _msgpack_split(buf: bytes) -> tuple[list[object], bytes]:
    """Whole msgpack objects at the start of `buf` and the rest (a stream decoder)."""
    out: list[object] = []
    pos = 0
    while pos < len(buf):
        end = _skip(buf, pos)
        if end is None:
            break
        out.append(msgspec.msgpack.decode(buf[pos:end]))
        pos = end
    return out, buf[pos:]


def _skip(b: bytes, i: int) -> int | None:
    if i >= len(b):
        return None
    t = b[i]

    def need(n: int) -> int | None:
        return i + n if i + n <= len(b) else None

    def be(off: int, n: int) -> int | None:
        return int.from_bytes(b[i + off:i + off + n], "big") if i + off + n <= len(b) else None

    def items(start: int | None, n: int) -> int | None:
        pos = start
        for _ in range(n):
            if pos is None:
                return None
            pos = _skip(b, pos)
        return pos

    if t <= 0x7F or t >= 0xE0 or t in (0xC0, 0xC2, 0xC3):
        return need(1)
    if 0xA0 <= t <= 0xBF:
        return need(1 + (t & 0x1F))
    if 0x90 <= t <= 0x9F:
        return items(i + 1, t & 0x0F)
    if 0x80 <= t <= 0x8F:
        return items(i + 1, 2 * (t & 0x0F))
    fixed = {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, 0xCA: 5, 0xCB: 9,
             0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18}
    if t in fixed:
        return need(fixed[t])
    for code, width in ((0xD9, 1), (0xDA, 2), (0xDB, 4), (0xC4, 1), (0xC5, 2), (0xC6, 4)):
        if t == code:
            n = be(1, width)
            return None if n is None else need(1 + width + n)
    for code, width in ((0xC7, 1), (0xC8, 2), (0xC9, 4)):
        if t == code:
            n = be(1, width)
            return None if n is None else need(2 + width + n)
    for code, width, mult in ((0xDC, 2, 1), (0xDD, 4, 1), (0xDE, 2, 2), (0xDF, 4, 2)):
        if t == code:
            n = be(1, width)
            return None if n is None else items(i + 1 + width, mult * n)
    raise ValueError(f"msgpack type {t:#x}")


class FluentdReceiver:
    """The forward protocol's input side; answers acks when the message asks for one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events: list[list[object]] = []
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            buf = b""
            with c:
                c.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        d = c.recv(65536)
                    except TimeoutError:
                        continue
                    if not d:
                        break
                    objs, buf = _msgpack_split(buf + d)
                    for ev in objs:
                        self.events.append(ev)  # type: ignore[arg-type]
                        opt = ev[3] if isinstance(ev, list) and len(ev) > 3 else None
                        if isinstance(opt, dict) and "chunk" in opt:
                            c.sendall(msgspec.msgpack.encode({"ack": opt["chunk"]}))

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


def test_fluentd_forward_protocol(berthd: Berthd, made: list[str]) -> None:
    rx = FluentdReceiver(15540)
    try:
        cid = _run(berthd, "--name", "fluent1", "-e", "STAGE=test", "--log-driver", "fluentd",
                   "--log-opt", "fluentd-address=tcp://127.0.0.1:15540", "--log-opt", "env=STAGE",
                   "--log-opt", "fluentd-sub-second-precision=true", "busybox", "sh", "-c",
                   f"{NUMBERED}; head -c 20000 /dev/zero | tr '\\0' z; echo")
        made.append(cid)
        berthd.docker("wait", cid)
        total = N + N // 10 + 2
        assert _wait_for(lambda: len(rx.events) >= total), len(rx.events)
    finally:
        rx.close()
    tags = {ev[0] for ev in rx.events}
    assert tags == {cid[:12]}
    recs = [ev[2] for ev in rx.events]
    out = [r for r in recs if r["source"] == "stdout"]
    assert [r["log"] for r in out[:N]] == [f"line {i}" for i in range(N)]
    assert [r["log"] for r in recs if r["source"] == "stderr"] == [f"err {i}" for i in range(0, N, 10)]
    r0 = out[0]
    assert r0["container_id"] == cid and r0["container_name"] == "/fluent1" and r0["STAGE"] == "test"
    assert "partial_message" not in r0
    # the 20000-byte line: dockerd's 16384-byte piece, then the rest, with partial metadata
    p1, p2 = out[N], out[N + 1]
    assert len(p1["log"]) == 16384 and len(p2["log"]) == 20000 - 16384
    assert (p1["partial_message"], p1["partial_ordinal"], p1["partial_last"]) == ("true", "1", "false")
    assert (p2["partial_ordinal"], p2["partial_last"], p2["partial_id"]) == ("2", "true", p1["partial_id"])
    t = rx.events[0][1]
    assert isinstance(t, msgspec.msgpack.Ext) and t.code == 0 and len(t.data) == 8  # EventTime


def test_fluentd_receiver_away_and_back_loses_nothing(berthd: Berthd, made: list[str]) -> None:
    """Blocking mode (the default) with acks: the receiver goes away for two seconds while
    the container writes; every line still arrives, in order, and the daemon answers."""
    rx = FluentdReceiver(15541)
    cid = _run(berthd, "--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:15541",
               "--log-opt", "fluentd-request-ack=true", "--log-opt", "fluentd-retry-wait=200ms", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 150 ]; do echo n $i; i=$((i+1)); usleep 20000; done")
    made.append(cid)
    time.sleep(0.8)
    rx.close()  # its thread joined: what it acknowledged is all in rx.events
    got = list(rx.events)
    t0 = time.monotonic()
    berthd.docker("ps")  # the daemon answers while the driver retries
    assert time.monotonic() - t0 < 5
    time.sleep(2)
    rx2 = FluentdReceiver(15541)
    try:
        berthd.docker("wait", cid)
        assert _wait_for(lambda: bool(rx2.events) and rx2.events[-1][2]["log"] == "n 149", 30), (  # type: ignore[index]
            len(got), len(rx2.events))
    finally:
        rx2.close()
    first = [ev[2]["log"] for ev in got]  # type: ignore[index]
    again = [ev[2]["log"] for ev in rx2.events]  # type: ignore[index]
    # Delivery with acks is at least once (as fluent-logger-golang's): a line the first
    # receiver recorded whose ack was lost when it closed is sent again. Only such a re-sent
    # tail may repeat; nothing may be lost or reordered.
    resent = next(k for k in range(len(first) + 1) if again[:len(first) - k] == first[k:])  # the longest overlap
    assert len(first) - resent <= 8, (first[resent:], again[:10])
    assert first[:resent] + again == [f"n {i}" for i in range(150)]


def test_non_blocking_drops_only_remotely(berthd: Berthd, made: list[str]) -> None:
    """mode=non-blocking with a receiver that never reads: dockerd's ring buffer drops,
    the container is not held back, and the local cache still has every line."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 15542))
    srv.listen(1)
    try:
        cid = _run(berthd, "--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:15542",
                   "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=64k", "busybox", "sh", "-c",
                   "seq 1 150000 | sed 's/$/ ........................................................../'")
        made.append(cid)
        t0 = time.monotonic()
        berthd.docker("wait", cid, timeout=60)
        assert time.monotonic() - t0 < 30
        lines = berthd.docker("logs", "--tail", "2", cid).stdout.decode().split()
        assert lines[0] == "149999" and lines[2] == "150000"
    finally:
        srv.close()


def test_start_failures_and_refusals(berthd: Berthd, made: list[str]) -> None:
    cases = [
        (["--log-driver", "syslog", "--log-opt", "syslog-address=tcp://127.0.0.1:15549"],
         "failed to initialize logging driver: dial tcp 127.0.0.1:15549: connect: connection refused"),
        (["--log-driver", "gelf", "--log-opt", "gelf-address=tcp://127.0.0.1:15549"],
         ("failed to initialize logging driver: gelf: cannot connect to GELF endpoint: 127.0.0.1:15549 "
          "dial tcp 127.0.0.1:15549: connect: connection refused")),
        (["--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:15549"],
         "failed to initialize logging driver: dial tcp 127.0.0.1:15549: connect: connection refused"),
    ]
    if not os.path.exists("/run/systemd/journal/socket"):
        cases.append((["--log-driver", "journald"], "failed to initialize logging driver: journald is not enabled on this host"))
    for opts, msg in cases:
        cid = berthd.docker("create", "--network", "none", *opts, "busybox", "true").stdout.decode().strip()
        made.append(cid)
        r = berthd.docker("start", cid, check=False)
        assert r.returncode == 1 and f"Error response from daemon: {msg}" in r.stderr.decode()
    # fluentd-async connects later: the start succeeds
    cid = _run(berthd, "--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:15549",
               "--log-opt", "fluentd-async=true", "busybox", "echo", "ok")
    made.append(cid)
    assert berthd.docker("wait", cid).stdout.strip() == b"0"
    for opts, msg in [
        (["--log-driver", "awslogs", "--log-opt", "awslogs-group=g"], 'logging driver "awslogs" is not supported by Berth'),
        (["--log-driver", "splunk"], 'logging driver "splunk" is not supported by Berth'),
        (["--log-driver", "syslog", "--log-opt", "syslog-facility=bad"], "invalid syslog facility"),
        (["--log-driver", "syslog", "--log-opt", "syslog-format=bad"], "Invalid syslog format"),
        (["--log-driver", "syslog", "--log-opt", "syslog-address=unix:///nonexistent/x"],
         "stat /nonexistent/x: no such file or directory"),
        (["--log-driver", "fluentd", "--log-opt", "fluentd-address=tcp://a:b"],
         'invalid fluentd-address tcp://a:b: parse "tcp://a:b": invalid port ":b" after host'),
    ]:
        r = berthd.docker("create", *opts, "busybox", "true", check=False)
        assert r.returncode != 0 and f"Error response from daemon: {msg}" in r.stderr.decode()


def test_fluentd_lines_written_while_berthd_is_down(busybox_tar: str) -> None:
    """berthd stops (live restore) while the container writes; the restarted berthd
    ships what conmon kept meanwhile: every line once, in order."""
    from berthd_harness import start_berthd, stop_berthd, unmount_under

    tmp = tempfile.mkdtemp(prefix="bt-logdrv-restart-")
    rx = FluentdReceiver(15543)
    b = start_berthd(tmp=tmp)
    cid = ""
    try:
        b.docker("load", "-i", busybox_tar)
        cid = _run(b, "--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:15543",
                   "busybox", "sh", "-c", "i=0; while [ $i -lt 150 ]; do echo r $i; i=$((i+1)); usleep 20000; done")
        time.sleep(0.8)
        stop_berthd(b, signal.SIGTERM, cleanup=False)
        time.sleep(1.5)  # about 75 lines written with nobody reading conmon's file
        b = start_berthd(tmp=tmp)
        b.docker("wait", cid, timeout=30)
        assert _wait_for(lambda: len(rx.events) >= 150, 20)
        time.sleep(0.5)
        assert [ev[2]["log"] for ev in rx.events] == [f"r {i}" for i in range(150)]  # type: ignore[index]
        assert b.docker("logs", "--tail", "1", cid).stdout == b"r 149\n"  # the cache caught up too
    finally:
        rx.close()
        if cid:
            b.docker("rm", "-f", cid, check=False)
        stop_berthd(b, cleanup=False)
        unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
