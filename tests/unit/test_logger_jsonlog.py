"""berth.logger.jsonlog and copier: dockerd's json-file bytes (recorded from dockerd
20.10.24 for the same output), its 16 KiB partial messages, and a resume after a restart
that neither loses nor repeats a line."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from berth.logger import jsonlog
from berth.logger.copier import BUF_SIZE, PrivateReader, Splitter

# dockerd 20.10.24's first line for `printf 'a\tb<&>"\\ \u2028 \xff\x01\r\n'` with
# --log-opt labels=lab,env=E,tag={{.Name}} (label lab=1, env E=v<1>)
DOCKERD_LINE = (b'{"log":"a\\u0009b\\u003c\\u0026\\u003e\\"\\\\ \\u2028 \\ufffd\\u0001\\r\\n","stream":"stdout",'
                b'"attrs":{"E":"v\\u003c1\\u003e","lab":"1","tag":"h13-j1"},"time":"2026-12-02T07:44:35.766283533Z"}\n')


def test_line_as_dockerd_writes_it() -> None:
    attrs = jsonlog.go_map({"lab": "1", "tag": "h13-j1", "E": "v<1>"}).encode()
    line = b'a\tb<&>"\\ \xe2\x80\xa8 \xff\x01\r\n'
    got = jsonlog.marshal(line, b"stdout", attrs, jsonlog.rfc3339nano(b"2026-12-02T07:44:35.766283533+00:00"))
    assert got == DOCKERD_LINE


@pytest.mark.parametrize("conmon,go", [
    (b"2026-12-02T07:44:35.766348820+00:00", b"2026-12-02T07:44:35.76634882Z"),
    (b"2026-12-02T07:44:35.000000000+00:00", b"2026-12-02T07:44:35Z"),
    (b"2026-12-02T08:44:35.100000000+01:00", b"2026-12-02T07:44:35.1Z"),
])
def test_rfc3339nano(conmon: bytes, go: bytes) -> None:
    assert jsonlog.rfc3339nano(conmon) == go


def test_go_escaping() -> None:
    assert jsonlog.ff_string(b"plain text") == b'"plain text"'
    assert jsonlog.ff_string(b"\xe2\x82") == b'"\\ufffd\\ufffd"'  # Go: one U+FFFD per bad byte
    assert jsonlog.ff_string("€\ufffd".encode()) == '"€\ufffd"'.encode()  # a real U+FFFD stays
    assert jsonlog.go_string("a\tb\x08<") == '"a\\tb\\u0008\\u003c"'


def rec(ts: int, flag: str, data: bytes, stream: str = "stdout") -> bytes:
    return f"2026-12-02T07:44:35.{ts:09d}+00:00 {stream} {flag} ".encode() + data + b"\n"


def feed(s: Splitter, recs: list[bytes]) -> list:
    out: list = []
    off, rr = 0, []
    for r in recs:
        rr.append((off, r))
        off += len(r)
    s.feed(rr, out)
    return out


def test_partial_messages_as_dockerd_cuts_them() -> None:
    # conmon's 8 KiB records of one 40004-byte line: dockerd's 16384, 16384, 7236 + newline
    line = b"x" * 40004
    recs = [rec(1, "P", line[:8192]), rec(2, "F", b"err", "stderr"), rec(3, "P", line[8192:30000]),
            rec(4, "F", line[30000:])]
    out = feed(Splitter(), recs)
    assert [(m.stream, len(m.line), m.complete) for m in out] == [
        (b"stderr", 3, True), (b"stdout", BUF_SIZE, False), (b"stdout", BUF_SIZE, False), (b"stdout", 7236, True)]
    assert {m.ts for m in out[1:]} == {recs[0][:35]}  # all pieces carry the first one's time
    assert [m.partial.ordinal for m in out[1:]] == [1, 2, 3] and len({m.partial.id for m in out[1:]}) == 1
    exact = feed(Splitter(), [rec(1, "F", b"y" * BUF_SIZE)])  # exactly 16 KiB: a piece, then "\n"
    assert [(len(m.line), m.complete) for m in exact] == [(BUF_SIZE, False), (0, True)]


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="bt-jsonlog-unit-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_resume_delivers_each_line_once(tmp: str) -> None:
    path = os.path.join(tmp, ".conmon-k8s.log")
    with open(path, "wb") as f:
        f.write(rec(1, "F", b"one") + rec(2, "P", b"tw") + rec(3, "F", b"err", "stderr"))
    r = PrivateReader(path)
    msgs, _ = r.read()
    r.commit()
    r.close()
    assert [m.line for m in msgs] == [b"one", b"err"]  # "tw" waits for its newline
    with open(path, "ab") as f:  # written while "berthd was down"
        f.write(rec(4, "F", b"o") + rec(5, "F", b"four"))
    r2 = PrivateReader(path)
    msgs, _ = r2.read(final=True)
    assert [m.line for m in msgs] == [b"two", b"four"]
    assert msgs[0].ts == rec(2, "F", b"")[:35]


def test_fast_path_matches_the_message_path(tmp: str) -> None:
    """PrivateReader with json-file's fast path gives the bytes the message path gives:
    plain stretches, P records cut by conmon's reads, escapes, zero fractions, stderr."""
    from berth.logger.config import LogFileConfig
    from berth.logger.pump import FileSink

    recs = [rec(1, "F", b"plain one"), rec(2, "P", b"cut by a re"), rec(3, "F", b"ad"), rec(0, "F", b""),
            rec(5, "F", b"err", "stderr"), rec(6, "F", b'esc "<&>"\t\xff'), rec(7, "P", b"y" * 9000),
            rec(8, "F", b"z" * 9000), rec(100000000, "F", b"tenth")] + [rec(10 + i, "F", b"n %d" % i) for i in range(50)]
    path = os.path.join(tmp, ".conmon-k8s.log")
    attrs = b'{"a":"1"}'
    outs = []
    for fast in (True, False):
        with open(path, "wb") as f:
            f.writelines(recs)
        for p in (path + ".pos",):
            if os.path.exists(p):
                os.unlink(p)
        sink = FileSink(LogFileConfig(os.path.join(tmp, f"out{fast}"), -1, 1, False, True), attrs)
        r = PrivateReader(path)
        got, _ = r.read(True, sink.fast() if fast else None)
        if isinstance(got, list):
            sink.write(got)
        else:
            sink.writer.write_raw(got)
        sink.close()
        r.close()
        with open(os.path.join(tmp, f"out{fast}"), "rb") as f:
            outs.append(f.read())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 58  # 18000 bytes: two messages


def test_final_read_flushes_only_at_the_end(tmp: str) -> None:
    """A container gone with a backlog: a line cut by conmon at the edge of a read is
    still merged (the flush of what has no newline waits for the end of the file)."""
    from berth.logger import copier
    from berth.logger.config import LogFileConfig
    from berth.logger.pump import FileSink

    path = os.path.join(tmp, ".conmon-k8s.log")
    first = rec(1, "F", b"a" * 200)
    n = copier._READ // len(first)
    with open(path, "wb") as f:
        f.writelines([first] * (n - 1))
        filler = copier._READ - (n - 1) * len(first) - len(rec(2, "P", b""))
        f.write(rec(2, "P", b"b" * filler))  # ends exactly at the first read's end
        f.write(rec(3, "F", b"c"))
    sink = FileSink(LogFileConfig(os.path.join(tmp, "out"), -1, 1, False, True), b"")
    r = PrivateReader(path)
    more = True
    while more:
        got, more = r.read(True, sink.fast())
        sink.writer.write_raw(got) if isinstance(got, bytes) else sink.write(got)
    sink.close()
    with open(os.path.join(tmp, "out"), "rb") as f:
        last = f.read().splitlines()[-1]
    assert last.startswith(b'{"log":"' + b"b" * filler + b'c\\n"')


def test_trim_switches_files_past_a_torn_record(tmp: str) -> None:
    """conmon reopened its file (a trim) after a write it could not finish (a full disk):
    the old file ends without a newline; the reader still moves on to the new file, and a
    restart in between resumes in the old one through `.old`."""
    path = os.path.join(tmp, ".conmon-k8s.log")
    with open(path, "wb") as f:
        f.write(rec(1, "F", b"one") + b"2026-12-02T07:4")  # torn
    r = PrivateReader(path)
    msgs, _ = r.read()
    r.commit()
    assert [m.line for m in msgs] == [b"one"]
    os.link(path, path + ".old")  # want_trim, then conmon's reopen: a new file at the name
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(rec(2, "F", b"two"))
    r.close()
    r2 = PrivateReader(path)  # a restart: resumes in .old at the saved offset
    got: list = []
    more = True
    while more:
        msgs, more = r2.read(final=True)
        got += msgs
    assert [m.line for m in got] == [b"two"]


def test_resume_inside_a_long_line(tmp: str) -> None:
    """berthd stops after a 16 KiB piece of a long line went out: the restarted one sends
    the rest as the next piece of the same partial message, nothing twice."""
    path = os.path.join(tmp, ".conmon-k8s.log")
    with open(path, "wb") as f:
        f.write(rec(1, "P", b"a" * 10000) + rec(2, "P", b"b" * 10000))
    r = PrivateReader(path)
    first, _ = r.read()
    r.commit()
    r.close()
    assert [(len(m.line), m.partial.ordinal, m.partial.last) for m in first] == [(BUF_SIZE, 1, False)]
    with open(path, "ab") as f:
        f.write(rec(3, "F", b"c" * 100) + rec(4, "F", b"next"))
    r2 = PrivateReader(path)
    rest, _ = r2.read(final=True)
    assert [m.line for m in rest] == [b"b" * (20000 - BUF_SIZE) + b"c" * 100, b"next"]
    p = rest[0].partial
    assert p is not None and (p.id, p.ordinal, p.last) == (first[0].partial.id, 2, True)
    assert rest[0].ts == first[0].ts


def test_a_batch_written_but_not_committed_is_written_once(tmp: str) -> None:
    """berthd killed between a batch's write to json-file and its commit: the next pump reads
    the batch again from the committed position, and first cuts json-file back to the size
    the commit noted, so each line is there once (dockerd's copier never reads a line twice)."""
    from berth.logger.config import LogFileConfig
    from berth.logger.pump import Pump

    path = os.path.join(tmp, ".conmon-k8s.log")
    out = os.path.join(tmp, "ctr-json.log")
    spec = (LogFileConfig(out, -1, 1, False, True), b"")
    with open(path, "wb") as f:
        f.write(rec(1, "F", b"a"))
    first = Pump("c" * 64, path, spec, None, None, None)  # type: ignore[arg-type]  # no thread hop here
    first._step(False)  # "a": written and committed
    with open(path, "ab") as f:
        f.write(rec(2, "F", b"b"))
    reader = first._open()
    got, _ = reader.read(False, first._fast)
    assert isinstance(got, bytes) and first.sink is not None
    first.sink.writer.write_raw(got)  # "b" written ... and the daemon killed before the commit
    with open(out, "rb") as f:
        assert f.read().count(b'"log":"') == 2
    again = Pump("c" * 64, path, spec, None, None, None)  # type: ignore[arg-type]
    again._step(True)
    again._close(False)
    first._close(False)
    with open(out, "rb") as f:
        assert [line.split(b'"log":"')[1][:1] for line in f.read().splitlines()] == [b"a", b"b"]
