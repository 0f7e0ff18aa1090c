"""types.AuthConfig (moby api/types/auth.go): registry credentials in request bodies and the
X-Registry-Auth header. Berth has no registry client; it decodes them to check them only."""
from __future__ import annotations

import msgspec


class AuthConfig(msgspec.Struct):
    username: str = ""
    password: str = ""
    auth: str = ""
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""
