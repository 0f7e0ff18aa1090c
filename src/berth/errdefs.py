"""Error classes, as moby's errdefs package (moby/errdefs/defs.go).

The daemon and subsystems raise these with dockerd's exact message; the API layer
maps the class to an HTTP status in one place (berth.api.httpstatus). An exception
that is none of these is a 500, which is also what dockerd answers for an untyped
error. Standard library only.
"""
from __future__ import annotations

import os


class DockerError(Exception):
    """Base of every classified error; `str(err)` is the message clients see."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(DockerError):
    """404: the object asked for does not exist."""


class InvalidParameter(DockerError):
    """400: the request is malformed or its settings are invalid."""


class Conflict(DockerError):
    """409: the request conflicts with the current state (name in use, container running)."""


class Unauthorized(DockerError):
    """401."""


class Unavailable(DockerError):
    """503: the feature is not available (e.g. not a swarm node)."""


class Forbidden(DockerError):
    """403."""


class NotModified(DockerError):
    """304: nothing to do (start of a running container); no body is sent."""


class NotImplemented(DockerError):  # dockerd's class name
    """501."""


class System(DockerError):
    """500: an internal failure (disk, runtime)."""


class Unknown(DockerError):
    """500: an error of unknown class."""


class DataLoss(DockerError):
    """500."""


class Cancelled(DockerError):
    """500: the operation was cancelled."""


class Deadline(DockerError):
    """500: the operation timed out."""


class Untyped(DockerError):
    """An error dockerd raises without a class (fmt.Errorf): the API answers 500.

    Kept as its own class so that code can say "dockerd gives this one no class"
    rather than raising a bare Exception.
    """


class PathError(OSError):
    """Go's *os.PathError: the operation and the file with the errno, which dockerd's
    messages quote as they are (`write /var/lib/docker/overlay2/<id>/link: no space left
    on device`). Raised where Berth writes a file, since Python's own OSError from a write
    names no file and no operation."""

    def __init__(self, op: str, path: str, err: OSError) -> None:
        super().__init__(err.errno, err.strerror, path)
        self.op = op


def os_error_text(err: OSError) -> str:
    """An OSError as Go prints one: `write <path>: no space left on device` for a
    PathError, `<path>: ...` for an error naming only its file (Go's errno strings are
    lower case), not Python's `[Errno 28] No space left on device`."""
    text = os.strerror(err.errno) if err.errno else (err.strerror or str(err))
    text = text[:1].lower() + text[1:]
    if isinstance(err, PathError):
        return f"{err.op} {err.filename}: {text}"
    return f"{err.filename}: {text}" if err.filename else text
