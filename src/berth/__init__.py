"""Berth: a Docker-compatible container engine daemon."""
__version__ = "0.1.0"
# The engine version Berth reports to clients; it answers as dockerd 20.10.24 does.
ENGINE_VERSION = "20.10.24"
