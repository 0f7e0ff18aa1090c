"""The one table from error class to HTTP status (moby/api/server/httpstatus/status.go FromError).

Nothing else in Berth chooses a status for an error. The search walks the
exception's MRO, so a subclass of a class keeps its parent's status.
"""
from __future__ import annotations

from .. import errdefs

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (errdefs.NotFound, 404),
    (errdefs.InvalidParameter, 400),
    (errdefs.Conflict, 409),
    (errdefs.Unauthorized, 401),
    (errdefs.Unavailable, 503),
    (errdefs.Forbidden, 403),
    (errdefs.NotModified, 304),
    (errdefs.NotImplemented, 501),
    (errdefs.System, 500),
    (errdefs.Unknown, 500),
    (errdefs.DataLoss, 500),
    (errdefs.Deadline, 500),
    (errdefs.Cancelled, 500),
)


def from_error(err: BaseException) -> int:
    """HTTP status for `err`; anything unclassified is a 500, as in dockerd."""
    for cls, status in _STATUS:
        if isinstance(err, cls):
            return status
    return 500
