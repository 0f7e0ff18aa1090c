"""The error of manifest parsing and checks (manifest.py and schema1.py both raise it)."""
from __future__ import annotations


class ManifestError(Exception):
    """A manifest refused by its parser or by the pull; str() is dockerd's text."""
