"""Detach keys and stdcopy frames (STREAMS helper)."""
import pytest

from berth.pkg import stdcopy, term


def test_to_bytes() -> None:
    assert term.to_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert term.to_bytes("a,ctrl-@,DEL,ctrl-_") == b"a\x00\x7f\x1f"
    with pytest.raises(ValueError, match="Unknown character: 'ctrl-'"):
        term.to_bytes("ctrl-,")


def test_escape_proxy() -> None:
    p = term.EscapeProxy(b"\x10\x11")
    assert p.feed(b"ab") == b"ab"
    assert p.feed(b"\x10") == b""
    assert p.feed(b"x") == b"\x10x"  # a broken sequence is passed on
    assert p.feed(b"\x10\x11") == b"\x10\x11"  # only key presses (1-byte reads) count
    assert p.feed(b"\x10") == b""
    with pytest.raises(term.EscapeError):
        p.feed(b"\x11")


def test_stdcopy_frame() -> None:
    data = stdcopy.frame(1, b"out\n") + stdcopy.frame(2, b"err\n")
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x04"
    assert stdcopy.demux(data) == [(1, b"out\n"), (2, b"err\n")]
