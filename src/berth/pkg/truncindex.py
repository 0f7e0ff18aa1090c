"""Lookup of IDs by unique prefix (moby/pkg/truncindex), kept sorted for bisect."""
from __future__ import annotations

import bisect


class AmbiguousPrefix(Exception):
    pass


class TruncIndex:
    def __init__(self) -> None:
        self._ids: list[str] = []

    def add(self, id_: str) -> None:
        i = bisect.bisect_left(self._ids, id_)
        if i == len(self._ids) or self._ids[i] != id_:
            self._ids.insert(i, id_)

    def delete(self, id_: str) -> None:
        i = bisect.bisect_left(self._ids, id_)
        if i < len(self._ids) and self._ids[i] == id_:
            del self._ids[i]

    def get(self, prefix: str) -> str | None:
        """The one ID starting with `prefix`; None if none; AmbiguousPrefix if several."""
        if not prefix:
            return None
        i = bisect.bisect_left(self._ids, prefix)
        if i == len(self._ids) or not self._ids[i].startswith(prefix):
            return None
        if i + 1 < len(self._ids) and self._ids[i + 1].startswith(prefix):
            raise AmbiguousPrefix(prefix)
        return self._ids[i]
