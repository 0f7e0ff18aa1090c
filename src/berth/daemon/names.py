"""Container names (moby/daemon/names.go).

`reserve_name` is synchronous so that a check-and-set can never interleave with
another create on the event loop: fifty parallel creates of one name give one
201 and forty-nine 409s.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg import namesgenerator, stringid
from ..pkg.registrar import NameReserved

if TYPE_CHECKING:
    from .core import Daemon

VALID_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def generate_id_and_name(daemon: Daemon, name: str) -> tuple[str, str]:
    """A fresh 64-hex ID and the reserved name (`/`-prefixed)."""
    id_ = stringid.generate_random_id()
    if name == "":
        return id_, generate_new_name(daemon, id_)
    return id_, reserve_name(daemon, id_, name)


def reserve_name(daemon: Daemon, id_: str, name: str) -> str:
    if not VALID_CONTAINER_NAME.match(name):
        raise errdefs.InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if not name.startswith("/"):
        name = "/" + name
    try:
        daemon.names.reserve(name, id_)
    except NameReserved as e:
        raise errdefs.Conflict(
            f'Conflict. The container name "{name}" is already in use by container "{e.holder}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        ) from None
    return name


def generate_new_name(daemon: Daemon, id_: str) -> str:
    """Six random tries (the last five with a digit), then the short ID."""
    for i in range(6):
        name = "/" + namesgenerator.get_random_name(i)
        try:
            daemon.names.reserve(name, id_)
        except NameReserved:
            continue
        return name
    name = "/" + stringid.truncate_id(id_)
    daemon.names.reserve(name, id_)
    return name


def release_name(daemon: Daemon, name: str) -> None:
    daemon.names.release(name)
