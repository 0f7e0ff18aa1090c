"""Schema1 manifests for the tests, and what the reference dockerd (20.10.24) made of them
when it pulled them from a registry: image ID (its config bytes), diff IDs, history.

The layers are deterministic (fixed files, gzip with mtime 0), so the manifests' payloads
and digests are the same on every run; only the signatures differ."""
from __future__ import annotations

import json

from registry_helpers import file_layer, gz

EMPTY_LAYER_GZ = bytes([  # distribution's gzippedEmptyTar (1024 zero bytes)
    31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88,
    0, 8, 0, 0, 255, 255, 46, 175, 181, 239, 0, 4, 0, 0])

EMPTY_LAYER_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


# What the reference dockerd made of manifest("h18-s1/cases", "rich" | "old", ...) with
# these layers: image IDs, and the manifest digests (of the payloads).
RICH_ID = "sha256:6c13d7c84950f593c57ca00dcc88e1f15801a788735d7100a29c7a079c19edcc"
RICH_DIGEST = "sha256:19cbdd9c9902fa688ea5d86c30a7178f91a8f2a9e048c35a25e4e1160cbc871a"
OLD_ID = "sha256:e29de2c9a6cd8610624289f99c4c637b61055835458ad51eeb6259c7ceba3bd8"
OLD_DIGEST = "sha256:708ceb8ab60aae44b85c9cd3d1aaecb72f14ce646c8b1717447ee2acbbbb74f3"


def layers() -> list[bytes]:
    """Uncompressed layer tars: a base, a second layer."""
    return [file_layer({"etc/base.txt": b"base\n"}), file_layer({"etc/app.conf": b"app\n"})]


A = "a" * 63 + "1"
B = "b" * 63 + "2"
B2 = "b" * 63 + "3"
C = "c" * 63 + "4"

# The top entry's v1Compatibility as raw text: whitespace, number forms, escapes, HTML
# characters, unknown keys, a Size, layer_id and parent_id (dropped), a time with an offset
# and nanoseconds; docker_version 18.09.7 keeps it as is (no trip through Go's struct).
RICH_TOP = ('{ "id": "' + C + '", "parent": "' + B2 + '",\n  "created": "2025-03-04T05:06:07.123456780+02:00",'
            ' "container": "f00d", "docker_version": "18.09.7", "author": "Me <me@example.com>",'
            ' "comment": "a & b", "Size": 42, "layer_id": "x", "parent_id": "y",'
            ' "custom": { "n": [1, 2.50, 1e3, -0], "s": "caf\\u00e9 caf\u00e9 \\/ \\u2028 <x>" },'
            ' "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Labels": {"l": "<v>"},'
            ' "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},'
            ' "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\\"sh\\"]"]},'
            ' "architecture": "amd64", "os": "linux" }')


def rich_history() -> list[str]:
    """Top first: C (the config), B2 (throwaway ENV), B twice (dockerd drops the upper of
    two consecutive entries with one ID), A (the base)."""
    return [
        RICH_TOP,
        json.dumps({"id": B2, "parent": B, "created": "2025-03-04T05:06:06Z", "docker_version": "18.09.7",
                    "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop)  ENV A=1"]}, "throwaway": True}),
        json.dumps({"id": B, "parent": A, "created": "2025-03-04T05:06:05.5Z", "author": "upper",
                    "container_config": {"Cmd": ["/bin/sh", "-c", "echo upper"]}}),
        json.dumps({"id": B, "parent": A, "created": "2025-03-04T05:06:05Z", "author": "lower",
                    "container_config": {"Cmd": ["/bin/sh", "-c", "echo lower"]}}),
        json.dumps({"id": A, "created": "2025-03-04T05:06:04Z", "comment": "base",
                    "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file:base in /"]}}),
    ]


def rich_fslayers(blobsums: list[str]) -> list[str]:
    """blobsums: [base, app] (compressed digests)."""
    empty = EMPTY_LAYER_DIGEST
    return [empty, empty, blobsums[1], blobsums[1], blobsums[0]]


# An old top entry (docker_version before 1.8.3): dockerd goes through image.V1Image, so
# unknown keys go and container_config is written whole.
OLD_TOP = ('{"id":"' + C + '","parent":"' + A + '","created":"2015-01-02T03:04:05.000000001-07:00",'
           '"docker_version":"1.6.2","custom":"gone","Size":7,"config":{"Cmd":"sh -c date","Env":null,'
           '"Hostname":"h","Labels":{"a":"b"},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}},'
           '"container_config":{"Cmd":["/bin/sh","-c","echo old"],"Tty":true},"architecture":"amd64","os":"linux",'
           '"author":"A <a@b>"}')


def old_history() -> list[str]:
    return [OLD_TOP,
            json.dumps({"id": A, "created": "2015-01-02T03:04:04Z", "docker_version": "1.6.2",
                        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD base"]}})]


def old_fslayers(blobsums: list[str]) -> list[str]:
    return [blobsums[1], blobsums[0]]


def manifest(name: str, tag: str, fslayers: list[str], history: list[str]) -> dict:
    return {"schemaVersion": 1, "name": name, "tag": tag, "architecture": "amd64",
            "fsLayers": [{"blobSum": b} for b in fslayers],
            "history": [{"v1Compatibility": h} for h in history]}


def compressed() -> list[bytes]:
    return [gz(layer) for layer in layers()]


def compressed_digests() -> list[str]:
    import hashlib

    return ["sha256:" + hashlib.sha256(b).hexdigest() for b in compressed()]
