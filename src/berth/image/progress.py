"""The JSON message stream of load/import (moby/pkg/streamformatter/streamformatter.go,
moby/pkg/jsonmessage/jsonmessage.go JSONProgress.String, moby/pkg/progress/progressreader.go,
github.com/docker/go-units HumanSize).

Every message is Go-encoded JSON (HTML characters escaped, as json.Marshal does)
followed by "\\r\\n".
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any, BinaryIO

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def go_json(obj: Any) -> bytes:
    """json.Marshal: compact, HTML-escaped, U+2028/2029 escaped, non-ASCII kept."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode()


def line(obj: Any) -> bytes:
    return go_json(obj) + b"\r\n"


def stream_message(text: str) -> bytes:
    """StdoutWriter: `{"stream":…}`."""
    return line({"stream": text})


def status_message(status: str, id_: str = "") -> bytes:
    """FormatStatus: `{"status":…}` with `id` only when set."""
    return line({"id": id_, "status": status} if id_ else {"status": status})


def error_message(message: str) -> bytes:
    """FormatError: `{"errorDetail":{"message":…},"error":…}`."""
    return line({"errorDetail": {"message": message}, "error": message})


def human_size(size: float) -> str:
    """units.HumanSize: decimal units, 4 significant digits."""
    i = 0
    while size >= 1000 and i < len(_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{_UNITS[i]}"


def progress_string(current: int, total: int) -> str:
    """JSONProgress.String for a 200-column (non-terminal) width."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = f"[{'=' * percentage}>{' ' * max(50 - percentage, 0)}] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    return bar + numbers


def progress_message(action: str, id_: str, current: int, total: int) -> bytes:
    return line({"status": action, "progressDetail": {"current": current, "total": total},
                 "progress": progress_string(current, total), "id": id_})


class ProgressReader(io.RawIOBase):
    """progress.Reader: reports every 1% (at most 512 KiB) read, rate-limited to one
    message per 100 ms except at completion, plus a last message at EOF."""

    def __init__(self, src: BinaryIO, total: int, id_: str, action: str, out: Callable[[bytes], None]) -> None:
        self._src = src
        self._total = total
        self._id = id_
        self._action = action
        self._out = out
        super().__init__()
        self._current = 0
        self._last_update = 0
        self._next_allowed = 0.0
        self._update_every = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), 32768)
        data = self._src.read(n)
        b[: len(data)] = data
        self._current += len(data)
        if self._current - self._last_update > self._update_every or not data:
            self._update(last=not data)
            self._last_update = self._current
        return len(data)

    def _update(self, last: bool) -> None:
        now = time.monotonic()
        if last or self._current == self._total or now >= self._next_allowed:
            if not last and self._current != self._total:
                self._next_allowed = now + 0.1
            self._out(progress_message(self._action, self._id, self._current, self._total))
