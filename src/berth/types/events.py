"""Event message types (moby/api/types/events/events.go, v20.10).

`Message` is what `GET /events` streams, one per line. Field order is Go's
declaration order, which is the key order clients see; `omit_defaults` gives
Go's `omitempty` on the legacy fields (`status`, `id`, `from`), `scope`,
`time` and `timeNano`. `Type`, `Action` and `Actor` are always written.
"""
from __future__ import annotations

import msgspec

# Event types (the `Type` field), as moby's *EventType constants.
CONTAINER_EVENT_TYPE = "container"
DAEMON_EVENT_TYPE = "daemon"
IMAGE_EVENT_TYPE = "image"
NETWORK_EVENT_TYPE = "network"
PLUGIN_EVENT_TYPE = "plugin"
VOLUME_EVENT_TYPE = "volume"
SERVICE_EVENT_TYPE = "service"
NODE_EVENT_TYPE = "node"
SECRET_EVENT_TYPE = "secret"
CONFIG_EVENT_TYPE = "config"


class Actor(msgspec.Struct, frozen=True):
    """What generated the event: its ID and a set of attributes (labels, name, ...).

    Go's `map[string]string` encodes with sorted keys; `berth.events` builds
    `Attributes` already sorted so that any encoder writes Go's order.
    """

    ID: str = ""
    Attributes: dict[str, str] | None = None


class Message(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, rename={"From": "from"}):
    """One event. `status`/`id`/`from` are the deprecated JSONMessage fields.

    Only container events carry all three (`from` = the `image` attribute) and image
    events carry `status` and `id`; every other type leaves them empty, so omitted.
    Frozen: one Message is shared by the ring buffer and every subscriber.
    """

    status: str = ""
    id: str = ""
    From: str = ""  # wire name "from" (a Python keyword)
    # No defaults: never omitted, as Go writes them without omitempty.
    Type: str
    Action: str
    Actor: Actor  # Go field name
    scope: str = ""
    time: int = 0
    timeNano: int = 0
