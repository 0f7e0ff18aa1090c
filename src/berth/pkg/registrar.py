"""Name reservations (moby/daemon/names/... and pkg/registrar).

Synchronous on purpose: on the event loop a reservation cannot be interleaved
with another, which is what makes concurrent creates of one name give exactly
one success.
"""
from __future__ import annotations


class NameReserved(Exception):
    """The name is held by another key."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class Registrar:
    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # name -> key
        self._keys: dict[str, list[str]] = {}  # key -> names

    def reserve(self, name: str, key: str) -> None:
        holder = self._names.get(name)
        if holder is not None:
            if holder != key:
                raise NameReserved(holder)
            return
        self._names[name] = key
        self._keys.setdefault(key, []).append(name)

    def release(self, name: str) -> None:
        key = self._names.pop(name, None)
        if key is not None:
            names = self._keys.get(key, [])
            if name in names:
                names.remove(name)
            if not names:
                self._keys.pop(key, None)

    def delete(self, key: str) -> None:
        for name in self._keys.pop(key, []):
            self._names.pop(name, None)

    def get(self, name: str) -> str | None:
        return self._names.get(name)

    def get_names(self, key: str) -> list[str]:
        return list(self._keys.get(key, []))

    def all_names(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._keys.items()}
