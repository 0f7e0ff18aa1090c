"""The docker reference grammar (github.com/docker/distribution/reference: regexp.go,
reference.go, normalize.go, helpers.go; github.com/opencontainers/go-digest).

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain '/'] path-component ['/' path-component]*
    domain     := domain-component ['.' domain-component]* [':' port-number]

`busybox` normalises to `docker.io/library/busybox`; the *familiar* form drops
`docker.io/` and `library/` again. Errors carry distribution's exact texts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import pathmatch
from .referror import ReferenceError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_NAME = "library"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALPHA_NUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_NAME_COMPONENT = f"{_ALPHA_NUMERIC}(?:{_SEPARATOR}{_ALPHA_NUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = f"{_DOMAIN_COMPONENT}(?:\\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = f"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"

_REFERENCE_RE = re.compile(f"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
_ANCHORED_TAG_RE = re.compile(f"^{_TAG}$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(f"^(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)$", re.ASCII)
_ANCHORED_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")

ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "invalid reference format: repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"

# go-digest's registered algorithms and their hex lengths
_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def parse_digest(s: str) -> str:
    """go-digest Parse/Validate: `alg:hex` with a known algorithm and the right length."""
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise ReferenceError("invalid checksum digest format")
    alg, hexpart = s[:i], s[i + 1 :]
    if alg not in _ALGORITHMS:
        raise ReferenceError("unsupported digest algorithm")
    if len(hexpart) != _ALGORITHMS[alg]:
        raise ReferenceError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise ReferenceError("invalid checksum digest format")
    return s


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `name` is empty for a bare digest reference (ParseAnyReference)."""

    name: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def domain(self) -> str:
        m = _ANCHORED_NAME_RE.match(self.name)
        return (m.group(1) or "") if m else ""

    @property
    def path(self) -> str:
        m = _ANCHORED_NAME_RE.match(self.name)
        return m.group(2) if m else self.name

    def is_named(self) -> bool:
        return bool(self.name)

    def is_name_only(self) -> bool:
        return bool(self.name) and not self.tag and not self.digest

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def parse(s: str) -> Reference:
    """reference.Parse: the grammar, no normalisation."""
    m = _REFERENCE_RE.match(s)
    if m is None:
        if s == "":
            raise ReferenceError(ERR_NAME_EMPTY)
        if _REFERENCE_RE.match(s.lower()) is not None:
            raise ReferenceError(ERR_NAME_CONTAINS_UPPERCASE)
        raise ReferenceError(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, dgst = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(ERR_NAME_TOO_LONG)
    if dgst:
        parse_digest(dgst)
    return Reference(name, tag, dgst)


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_NAME + "/" + remainder
    return domain, remainder


def parse_normalized_named(s: str) -> Reference:
    """reference.ParseNormalizedNamed: `busybox` -> `docker.io/library/busybox`."""
    if _ANCHORED_IDENTIFIER_RE.match(s):
        raise ReferenceError(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    tag_sep = remainder.find(":")
    remote_name = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote_name.lower() != remote_name:
        raise ReferenceError(ERR_NAME_CONTAINS_UPPERCASE)
    return parse(domain + "/" + remainder)


def parse_any_reference(s: str) -> Reference:
    """reference.ParseAnyReference: a 64-hex ID or `alg:hex` is a digest reference, else a name."""
    if _ANCHORED_IDENTIFIER_RE.match(s):
        return Reference(digest="sha256:" + s)
    try:
        return Reference(digest=parse_digest(s))
    except ReferenceError:
        pass
    return parse_normalized_named(s)


def parse_named(s: str) -> Reference:
    """reference.ParseNamed: `s` must already be in canonical (normalised) form."""
    ref = parse_normalized_named(s)
    if str(ref) != s:
        raise ReferenceError("repository name must be canonical")
    return ref


def with_tag(ref: Reference, tag: str) -> Reference:
    """reference.WithTag (on a name; a digest is kept, as distribution does)."""
    if not _ANCHORED_TAG_RE.match(tag):
        raise ReferenceError(ERR_TAG_INVALID_FORMAT)
    return Reference(ref.name, tag, ref.digest)


def with_digest(ref: Reference, dgst: str) -> Reference:
    if not re.fullmatch(_DIGEST, dgst):
        raise ReferenceError(ERR_DIGEST_INVALID_FORMAT)
    return Reference(ref.name, ref.tag, dgst)


def trim_named(ref: Reference) -> Reference:
    return Reference(ref.name)


def tag_name_only(ref: Reference) -> Reference:
    """reference.TagNameOnly: add `:latest` to a bare name."""
    if ref.is_name_only():
        return Reference(ref.name, DEFAULT_TAG)
    return ref


def familiar_name(ref: Reference) -> str:
    domain, path = ref.domain, ref.path
    if domain == DEFAULT_DOMAIN:
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == OFFICIAL_REPO_NAME:
            return parts[1]
        return path
    return f"{domain}/{path}" if domain else path


def familiar_string(ref: Reference) -> str:
    """reference.FamiliarString: `docker.io/library/busybox:latest` -> `busybox:latest`."""
    if not ref.name:
        return ref.digest
    out = familiar_name(ref)
    if ref.tag:
        out += ":" + ref.tag
    if ref.digest:
        out += "@" + ref.digest
    return out


def familiar_match(pattern: str, ref: Reference) -> bool:
    """reference.FamiliarMatch: path.Match of the pattern against the familiar string, or,
    failing that, against the familiar name. Raises ReferenceError for a bad pattern."""
    if pathmatch.match(pattern, familiar_string(ref)):
        return True
    return pathmatch.match(pattern, familiar_name(ref))
