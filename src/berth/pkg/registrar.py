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
        # "/parent/alias" names (legacy links) by their parent name, so that a
        # container's links are found without scanning every name.
        self._children: dict[str, set[str]] = {}

    def reserve(self, name: str, key: str) -> None:
        holder = self._names.get(name)
        if holder is not None:
            if holder != key:
                raise NameReserved(holder)
            return
        self._names[name] = key
        self._keys.setdefault(key, []).append(name)
        parent = name.rpartition("/")[0]
        if parent:
            self._children.setdefault(parent, set()).add(name)

    def _forget_child(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent and parent in self._children:
            self._children[parent].discard(name)
            if not self._children[parent]:
                del self._children[parent]

    def release(self, name: str) -> None:
        self._forget_child(name)
        key = self._names.pop(name, None)
        if key is not None:
            names = self._keys.get(key, [])
            if name in names:
                names.remove(name)
            if not names:
                self._keys.pop(key, None)

    def delete(self, key: str) -> None:
        for name in self._keys.pop(key, []):
            self._forget_child(name)
            self._names.pop(name, None)

    def get(self, name: str) -> str | None:
        return self._names.get(name)

    def get_names(self, key: str) -> list[str]:
        return list(self._keys.get(key, []))

    def children(self, parent: str) -> dict[str, str]:
        """The `parent/alias` names held under `parent`, with their keys."""
        return {n: self._names[n] for n in self._children.get(parent, ())}

    def all_names(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._keys.items()}
