"""The reference grammar against distribution/reference's behaviour and dockerd's messages."""
from __future__ import annotations

import pytest

from berth.image import reference as r


@pytest.mark.parametrize("given,full,familiar", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox", "busybox"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", "busybox"),
    ("me/app:v1", "docker.io/me/app:v1", "me/app:v1"),
    ("localhost/app", "localhost/app", "localhost/app"),
    ("localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000/x:1"),
    ("quay.io/a/b/c", "quay.io/a/b/c", "quay.io/a/b/c"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64, "busybox@sha256:" + "a" * 64),
])
def test_parse_normalized_named(given: str, full: str, familiar: str) -> None:
    ref = r.parse_normalized_named(given)
    assert str(ref) == full
    assert r.familiar_string(ref) == familiar


@pytest.mark.parametrize("given,message", [
    ("BAD", "invalid reference format: repository name must be lowercase"),
    ("Bad/x:TAG", "invalid reference format: repository name must be lowercase"),
    ("", "invalid reference format"),
    ("a:b:c", "invalid reference format"),
    ("-x", "invalid reference format"),
    ("a" * 64, "invalid repository name (" + "a" * 64 + "), cannot specify 64-byte hexadecimal strings"),
    ("x" * 256, "repository name must not be more than 255 characters"),
])
def test_parse_errors(given: str, message: str) -> None:
    with pytest.raises(r.ReferenceError) as exc:
        r.parse_normalized_named(given)
    assert str(exc.value) == message


def test_parse_empty_is_no_component() -> None:
    with pytest.raises(r.ReferenceError, match="^repository name must have at least one component$"):
        r.parse("")


def test_parse_any_reference() -> None:
    assert r.parse_any_reference("a" * 64) == r.Reference(digest="sha256:" + "a" * 64)
    assert r.parse_any_reference("sha256:" + "b" * 64) == r.Reference(digest="sha256:" + "b" * 64)
    assert r.parse_any_reference("busybox").name == "docker.io/library/busybox"


def test_tags_and_helpers() -> None:
    ref = r.tag_name_only(r.parse_normalized_named("busybox"))
    assert r.familiar_string(ref) == "busybox:latest"
    with pytest.raises(r.ReferenceError, match="^invalid tag format$"):
        r.with_tag(ref, "b@d")
    assert r.familiar_match("busy*", ref)
    assert r.familiar_match("busybox", ref)  # falls back to the familiar name
    assert not r.familiar_match("busybox:lat", ref)
    with pytest.raises(r.ReferenceError, match="^syntax error in pattern$"):
        r.familiar_match("[[", ref)
