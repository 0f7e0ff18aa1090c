"""Go's ioutil.WriteFile, with its errors as Go words them (*os.PathError: `open <path>:
...`, `write <path>: ...`): what dockerd's messages quote when a file cannot be written,
a full data root first of all."""
from __future__ import annotations

import os

from berth.errdefs import PathError


def write_file(path: str, data: bytes, mode: int = 0o644) -> None:
    """Create or truncate `path` and write `data` (blocking). Not atomic: for files that
    are rebuilt whenever they are needed (atomicfile for state)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    except OSError as e:
        raise PathError("open", path, e) from None
    try:
        write_all(fd, path, data)
    finally:
        os.close(fd)


def write_all(fd: int, path: str, data: bytes) -> None:
    """All of `data` to `fd`, errors as Go's (*os.File).Write returns them: `write <path>: ...`."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise PathError("write", path, e) from None
