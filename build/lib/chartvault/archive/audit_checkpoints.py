"""Audit checkpoints: the log's entry count and head MAC, kept as locked objects in the store.

A MAC chain stops anyone without the key from editing or removing an entry in the
middle, but deleting the newest entries leaves a shorter chain that is still valid.
A checkpoint records how long the chain was and how it ended, somewhere the catalog's
writers cannot change: a write-once object under the store's retention lock.

Checkpoints are found without the catalog, by listing a fixed prefix. The object's
name carries everything a verifier compares against the chain (position, time, key id,
head MAC), so every checkpoint can be checked from one listing without reading its
body; the body repeats the fields under a MAC of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chartvault.archive.objectstore import ListedObject, ObjectStore

PREFIX = "audit-checkpoints/"
BODY_FORMAT = "chartvault-audit-checkpoint/1"
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_NAME_RE = re.compile(
    re.escape(PREFIX) + r"(?P<entries>\d{12})-(?P<at>\d{8}T\d{12}Z)-(?P<key_id>k[0-9a-f]{16})"
    r"-(?P<head>[0-9a-f]{64})\.json"
)


class CheckpointError(Exception):
    """A checkpoint object is unreadable or its body does not match its name or its MAC."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain had ``entries`` entries ending in ``head_mac`` at ``at``.

    ``legacy_entries`` is how many of the first entries are unkeyed SHA-256 entries written
    before the MAC chain existed; ``key_id`` names the key that MACs this checkpoint.
    """

    entries: int
    head_mac: str
    key_id: str
    at: datetime
    legacy_entries: int = 0
    object_key: str = ""
    version_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "head_mac": self.head_mac,
            "key_id": self.key_id,
            "at": self.at.isoformat(),
            "legacy_entries": self.legacy_entries,
            "object_key": self.object_key,
            "version_id": self.version_id,
        }


def object_key(entries: int, head_mac: str, key_id: str, at: datetime) -> str:
    """The checkpoint's name: zero-padded position first, so key order is chain order."""
    return f"{PREFIX}{entries:012d}-{at.astimezone(UTC).strftime(_TIME_FORMAT)}-{key_id}-{head_mac}.json"


def from_name(listed: ListedObject) -> Checkpoint | None:
    """The checkpoint a listed name describes, or None for anything else under the prefix."""
    m = _NAME_RE.fullmatch(listed.key)
    if m is None:
        return None
    at = datetime.strptime(m["at"], _TIME_FORMAT).replace(tzinfo=UTC)
    return Checkpoint(
        int(m["entries"]), m["head"], m["key_id"], at, object_key=listed.key, version_id=listed.version_id
    )


def _signed_fields(cp: Checkpoint) -> bytes:
    return json.dumps(
        [BODY_FORMAT, cp.entries, cp.head_mac, cp.legacy_entries, cp.at.isoformat(), cp.key_id],
        separators=(",", ":"),
    ).encode()


def encode(cp: Checkpoint, key: bytes) -> bytes:
    """The object body: the fields plus their MAC under ``key`` (whose id is ``cp.key_id``)."""
    body = {
        "format": BODY_FORMAT,
        "entries": cp.entries,
        "head_mac": cp.head_mac,
        "legacy_entries": cp.legacy_entries,
        "at": cp.at.isoformat(),
        "key_id": cp.key_id,
        "mac": hmac.new(key, _signed_fields(cp), hashlib.sha256).hexdigest(),
    }
    return json.dumps(body, sort_keys=True, indent=1).encode()


def decode(data: bytes, named: Checkpoint, key: bytes | None) -> Checkpoint:
    """The checkpoint in ``data``, checked against its object name and its MAC.

    CheckpointError when the body is malformed, disagrees with the name, or its key is
    not in the ring (None) or does not verify it.
    """
    try:
        body = json.loads(data)
        cp = Checkpoint(
            int(body["entries"]),
            str(body["head_mac"]),
            str(body["key_id"]),
            datetime.fromisoformat(body["at"]),
            int(body["legacy_entries"]),
            named.object_key,
            named.version_id,
        )
        mac = str(body["mac"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {named.object_key} is malformed ({type(exc).__name__})") from None
    if body.get("format") != BODY_FORMAT or (cp.entries, cp.head_mac, cp.key_id, cp.at) != (
        named.entries,
        named.head_mac,
        named.key_id,
        named.at,
    ):
        raise CheckpointError(f"checkpoint {named.object_key}: its body does not match its name")
    if key is None:
        raise CheckpointError(f"checkpoint {named.object_key}: key {cp.key_id} is not in the key ring")
    if not hmac.compare_digest(mac, hmac.new(key, _signed_fields(cp), hashlib.sha256).hexdigest()):
        raise CheckpointError(f"checkpoint {named.object_key}: its MAC does not verify")
    return cp


def list_checkpoints(store: ObjectStore) -> list[Checkpoint]:
    """Every checkpoint version in the store, oldest position first (one listing, no reads)."""
    found = [cp for cp in map(from_name, store.list_prefix(PREFIX)) if cp is not None]
    return sorted(found, key=lambda cp: (cp.entries, cp.at))


def read(store: ObjectStore, named: Checkpoint, key: bytes | None) -> Checkpoint:
    """Read and check the body of a listed checkpoint (CheckpointError when it does not hold)."""
    return decode(store.read_named(named.object_key, named.version_id), named, key)
