"""Sealed page links: a search or a patient named in a page address without a name or an MRN in it.

A browser's history, a reverse proxy's access log and a log aggregator keep whole URLs, so the pages
never put patient data in one. What a link must carry (the search typed, the patient a page is about)
is sealed instead: encrypted and authenticated with AES-256-GCM under a key of the link key ring,
bound to the person it was made for and to its purpose, and dated to expire. Anyone holding the
address sees random bytes; a changed byte, another person's link, another purpose's link or one past
its time opens to nothing but ``LinkExpired`` (one answer for all: which of them it was is nobody's
business), never to the value.

Why sealed references and not the patients table's row id: not every MRN a page must address has a
patient row. A search hit's MRN comes from the index and a held document's from its page (documents
``no_patient_identified`` keep their MRN with no patient linked); a release or a hold names an MRN as
typed. A row id would also be a stable pseudonym of the patient in every log that kept the address,
for good; a sealed reference is different each time it is made, opens for one person only, and dies
after ``CHARTVAULT_WEB_LINK_HOURS`` (12, a session's longest life) whatever log kept it.

The key is kept as the audit log's is (``chartvault.archive.audit_keys``): ``CHARTVAULT_LINK_KEY``
(the same on every server of a deployment) or a 0600 key ring file created on first use,
``<data_dir>/keys/links.key``, which servers sharing the data folder share. Each sealed link names its
key's id, so a retired key (``CHARTVAULT_LINK_RETIRED_KEYS``, or the file's older keys) still opens the
links it sealed until they expire. The AES key is derived from the ring's secret by HKDF-SHA256 under
this purpose's label, so it is never the secret itself.

Layout (URL-safe base64, no padding): version (1 byte) | key id (8 bytes) | nonce (12) | ciphertext
and tag. The version and key id are authenticated with the purpose and the holder as associated data;
the plaintext is ``{"x": expiry (Unix seconds), "v": value}`` as compact JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chartvault.archive.audit_keys import LINK_KEYS, KeyRing
from chartvault.config import Settings
from chartvault.errors import InvalidInput, NotFound
from chartvault.schemas.access import LinkKeyRotation
from chartvault.services.caller import AuditTrail, Caller

VERSION = b"\x01"
NONCE_BYTES = 12
KEY_ID_BYTES = 8  # a ring key id is "k" + 16 hex digits
MAX_VALUE_BYTES = 2048  # what one link may carry: a search's fields, an MRN (a URL stays under ~3 KB)
MAX_LINK_CHARS = 4096  # longer than any link sealed here: refused before decoding
_HKDF_INFO = b"chartvault page link v1"
PURPOSES = frozenset({"search", "patient"})


class LinkExpired(NotFound):
    """A sealed link that does not open: expired, changed, another person's or another purpose's."""

    code = "link_expired"

    def __init__(self) -> None:
        super().__init__("this link has expired or was made for someone else: search again")


class LinkSealer:
    """Seals and opens values with the ring's keys (one per process, shared by every request)."""

    def __init__(self, keys: KeyRing, lifetime_s: int, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._ciphers: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSealer:
        """The sealer the settings describe: the link key ring (variable or file) and the links' life."""
        retired = settings.link_retired_keys.get_secret_value() if settings.link_retired_keys else ""
        ring = KeyRing(
            settings.link_key_path,
            settings.link_key.get_secret_value() if settings.link_key else None,
            [s.strip() for s in retired.split(",") if s.strip()],
            spec=LINK_KEYS,
        )
        return cls(ring, settings.web_link_hours * 3600)

    def seal(self, purpose: str, holder: str, value: Mapping[str, Any]) -> str:
        """``value`` sealed for ``holder`` (an actor, ``user:<id>``) and ``purpose``, expiring."""
        if purpose not in PURPOSES:
            raise ValueError(f"no such link purpose: {purpose}")
        body = json.dumps(
            {"x": int(self.clock()) + self.lifetime_s, "v": dict(value)}, separators=(",", ":")
        ).encode()
        if len(body) > MAX_VALUE_BYTES:
            raise InvalidInput(f"too long to carry in a link (at most {MAX_VALUE_BYTES:,} bytes): shorten it")
        key_id, key = self.keys.current()
        head = VERSION + bytes.fromhex(key_id[1:])
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key_id, key).encrypt(nonce, body, _associated(head, purpose, holder))
        return base64.urlsafe_b64encode(head + nonce + sealed).rstrip(b"=").decode()

    def open(self, purpose: str, holder: str, link: str) -> dict[str, Any]:
        """The value sealed in ``link`` for this holder and purpose; ``LinkExpired`` for anything else."""
        raw = _decode(link)
        head, nonce, sealed = _split(raw)
        key_id = "k" + head[1:].hex()
        key = self.keys.get(key_id)
        if key is None or purpose not in PURPOSES:
            raise LinkExpired()
        try:
            body = self._cipher(key_id, key).decrypt(nonce, sealed, _associated(head, purpose, holder))
        except InvalidTag:
            raise LinkExpired() from None
        found = json.loads(body)  # ours: it authenticated
        if not isinstance(found, dict) or found.get("x", 0) < self.clock():
            raise LinkExpired()
        value: dict[str, Any] = found.get("v", {})
        return value

    def _cipher(self, key_id: str, key: bytes) -> AESGCM:
        """The AES-256-GCM cipher of a ring key (derived once per key and process)."""
        with self._lock:
            if key_id not in self._ciphers:
                derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(key)
                self._ciphers[key_id] = AESGCM(derived)
            return self._ciphers[key_id]


def _associated(head: bytes, purpose: str, holder: str) -> bytes:
    """What a link is bound to besides its key: its header, its purpose and its holder."""
    return head + purpose.encode() + b"\x00" + holder.encode()


def _decode(link: str) -> bytes:
    if not link or len(link) > MAX_LINK_CHARS or not link.isascii():
        raise LinkExpired()
    try:
        return base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
    except (binascii.Error, ValueError):
        raise LinkExpired() from None


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header, nonce, ciphertext with tag), or ``LinkExpired`` when too short or of another version."""
    head_len = 1 + KEY_ID_BYTES
    if len(raw) < head_len + NONCE_BYTES + 16 or raw[:1] != VERSION:
        raise LinkExpired()
    return raw[:head_len], raw[head_len : head_len + NONCE_BYTES], raw[head_len + NONCE_BYTES :]


class LinkService:
    """Links sealed for, and opened by, the caller: a person's links open for that person only."""

    def __init__(self, sealer: Callable[[], LinkSealer], caller: Caller, audit: AuditTrail) -> None:
        self._sealer = sealer
        self.caller = caller
        self.audit = audit

    def rotate_key(self, *, revoke_old: bool = False) -> LinkKeyRotation:
        """Make a new link key current. Old keys stay to open the links they sealed until those expire,
        unless ``revoke_old``: then they are dropped and every link made before stops opening at once, on
        every server sharing the key file (it is re-read when it changes); people search again."""
        ring = self._sealer().keys
        old_id, _ = ring.current()
        before = set(ring.key_ids())
        new_id = ring.rotate(keep_old=not revoke_old)
        revoked = sorted(before - set(ring.key_ids()))
        self.audit("links.rotate_key", detail={"from_key": old_id, "to_key": new_id, "revoked": revoked})
        return LinkKeyRotation(from_key=old_id, to_key=new_id, revoked=revoked)

    def seal(self, purpose: str, value: Mapping[str, Any]) -> str:
        """``value`` sealed for the caller."""
        return self._sealer().seal(purpose, self.caller.actor, value)

    def open(self, purpose: str, link: str) -> dict[str, Any]:
        """What the caller's link holds; ``LinkExpired`` if it is not the caller's, or not any more."""
        return self._sealer().open(purpose, self.caller.actor, link)

    def patient(self, mrn: str) -> str:
        """A reference to the patient with this MRN, for the caller's page addresses."""
        return self.seal("patient", {"mrn": mrn})

    def mrn_of(self, reference: str) -> str:
        """The MRN a patient reference of the caller's stands for."""
        mrn = self.open("patient", reference).get("mrn")
        if not isinstance(mrn, str) or not mrn:
            raise LinkExpired()
        return mrn
