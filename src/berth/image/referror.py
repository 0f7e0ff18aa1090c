"""The error of distribution's reference package, below both reference.py and the
path.Match it uses for filters, so neither imports the other for it."""
from __future__ import annotations


class ReferenceError(ValueError):  # distribution's error texts live here
    """A parse failure; `str()` is distribution's message."""
