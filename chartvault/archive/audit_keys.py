"""The keys of the audit log's MAC chain (and of sealed page links), kept outside the catalog.

A plain hash chain can be recomputed by anyone who can write the catalog; an HMAC
cannot without its key, so the key lives where the catalog's writers cannot read it:
a 0600 file in a 0700 folder (by default ``<data_dir>/keys/audit.key``; in production
put it on a path the database's administrators cannot read) or a secret from the
environment (``CHARTVAULT_AUDIT_KEY``). Every entry names its key's id, so the key can
rotate: old keys stay in the ring, for verification only.

A key is a secret string and its UTF-8 bytes are the HMAC key, wherever it comes from: a
generated key is 64 hex characters (256 random bits), so moving a file key to the
environment is copying the string. A key id is a fingerprint of the key (``k`` + 16 hex
digits of a domain-separated SHA-256), so no key needs a name of its own and the id
reveals nothing about the key.

The same ring, under another file and other variables (``KeyRingSpec``), keeps the key that seals the
web pages' links (``chartvault.services.links``): one way to keep, share between machines and rotate a
secret, whichever secret it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chartvault.errors import InvalidInput

if TYPE_CHECKING:
    from chartvault.config import Settings

KEY_BYTES = 32
MIN_SECRET_CHARS = 32
FILE_FORMAT = "chartvault-audit-keys/1"
_ID_DOMAIN = b"chartvault audit key id\x00"


@dataclass(frozen=True, slots=True)
class KeyRingSpec:
    """What a ring is called: its file's format, the variables that give its keys (named in messages)."""

    what: str  # "audit", "link": in messages ("audit key file ...")
    file_format: str
    env_key: str
    env_retired: str
    env_file: str
    # Whether a rotation may drop the old keys: link keys only open links (a leaked one is revoked by
    # dropping it, and its links die); audit keys verify entries for as long as the log is kept.
    revocable: bool = False


AUDIT_KEYS = KeyRingSpec(
    "audit", FILE_FORMAT, "CHARTVAULT_AUDIT_KEY", "CHARTVAULT_AUDIT_RETIRED_KEYS", "CHARTVAULT_AUDIT_KEY_FILE"
)
LINK_KEYS = KeyRingSpec(
    "link",
    "chartvault-link-keys/1",
    "CHARTVAULT_LINK_KEY",
    "CHARTVAULT_LINK_RETIRED_KEYS",
    "CHARTVAULT_LINK_KEY_FILE",
    revocable=True,
)


class AuditKeyError(InvalidInput):
    """A key is missing, unreadable, too weak or too widely readable (messages name paths and ids only).

    Raised for either ring (the audit log's, the links'): the message names which.
    """


def key_id_of(key: bytes) -> str:
    """The id an entry records for ``key``: a fingerprint, so the same key always has the same id."""
    return "k" + hashlib.sha256(_ID_DOMAIN + key).hexdigest()[:16]


def _secret_key(secret: str, what: str) -> bytes:
    if len(secret) < MIN_SECRET_CHARS:
        raise AuditKeyError(
            f"{what} must be at least {MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32)"
        )
    return secret.encode()


def _new_key() -> bytes:
    return secrets.token_hex(KEY_BYTES).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyRing:
    """The current MAC key and every earlier one, from the key file and/or the environment.

    With an environment key, that key signs new entries and the file (if present) only
    verifies. Otherwise the file's current key signs; the file is created on first use and
    re-read when it changes on disk, so a rotation by ``chartvault audit rotate-key`` reaches
    a running server without a restart.
    """

    def __init__(
        self,
        path: Path | None,
        env_key: str | None = None,
        env_retired: Sequence[str] = (),
        spec: KeyRingSpec = AUDIT_KEYS,
    ) -> None:
        self.path = path
        self.spec = spec
        self._env_current = _secret_key(env_key, spec.env_key) if env_key else None
        self._env_keys = {
            key_id_of(k): k
            for k in [
                *(_secret_key(s, f"{spec.env_retired} entries") for s in env_retired),
                *([self._env_current] if self._env_current else []),
            ]
        }
        self._lock = threading.Lock()
        self._file_stamp: tuple[int, ...] | None = None
        self._file_current: str | None = None
        self._file_keys: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring the settings describe (key file path, environment key and retired keys)."""
        retired = settings.audit_retired_keys.get_secret_value() if settings.audit_retired_keys else ""
        return cls(
            settings.audit_key_path,
            settings.audit_key.get_secret_value() if settings.audit_key else None,
            [s.strip() for s in retired.split(",") if s.strip()],
        )

    @property
    def from_environment(self) -> bool:
        return self._env_current is not None

    def current(self) -> tuple[str, bytes]:
        """(key id, key) that signs new entries; creates the key file on first use."""
        if self._env_current is not None:
            return key_id_of(self._env_current), self._env_current
        with self._lock:
            self._refresh_file(create=True)
            assert self._file_current is not None
            return self._file_current, self._file_keys[self._file_current]

    def get(self, key_id: str) -> bytes | None:
        """The key with this id, or None when the ring does not hold it (never creates a file)."""
        if key_id in self._env_keys:
            return self._env_keys[key_id]
        with self._lock:
            self._refresh_file(create=False)
            return self._file_keys.get(key_id)

    def key_ids(self) -> list[str]:
        """Every key id the ring can verify (for reports; the keys themselves never leave the ring)."""
        with self._lock:
            self._refresh_file(create=False)
            return sorted({*self._env_keys, *self._file_keys})

    def rotate(self, *, keep_old: bool = True) -> str:
        """Make a new file key current, keeping every old one (or, for a revocable ring and
        ``keep_old=False``, dropping them); returns the new key's id.

        Serialised across processes by a lock file beside the key file, and written by an
        atomic rename, so a crash leaves either the old ring or the new one, never half.
        """
        if not keep_old and not self.spec.revocable:
            raise AuditKeyError(f"{self.spec.what} keys are never dropped: the entries they signed need them")
        if self._env_current is not None:
            spec = self.spec
            raise AuditKeyError(
                f"the {spec.what} key comes from {spec.env_key}: rotate it there and move the old "
                f"key to {spec.env_retired}"
            )
        path = self._need_path()
        with self._lock, self._file_lock(path):
            self._refresh_file(create=True)
            key = _new_key()
            new_id = key_id_of(key)
            keys = {**(self._file_keys if keep_old else {}), new_id: key}
            tmp = self._write_temp(path, new_id, keys)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            self._file_stamp = None
            self._refresh_file(create=False)
        return new_id

    # -- the key file ---------------------------------------------------------------------------

    def _need_path(self) -> Path:
        if self.path is None:
            spec = self.spec
            raise AuditKeyError(f"no {spec.what} key: set {spec.env_key} or {spec.env_file}")
        return self.path

    def _refresh_file(self, create: bool) -> None:
        """Load the key file when it changed since the last look (one stat per call)."""
        if self.path is None:
            if create:
                self._need_path()
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if not create:
                self._file_stamp, self._file_current, self._file_keys = None, None, {}
                return
            self._create(self.path)
            st = self.path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
        if stamp != self._file_stamp:
            self._file_current, self._file_keys = _read_key_file(self.path, st, self.spec)
            self._file_stamp = stamp

    def _create(self, path: Path) -> None:
        """Create the key file (0600, in a 0700 folder); another process creating it first wins."""
        folder = path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask, never widened: set it
        key = _new_key()
        tmp = self._write_temp(path, key_id_of(key), {key_id_of(key): key})
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        _fsync_dir(folder)

    def _write_temp(self, path: Path, current: str, keys: dict[str, bytes]) -> Path:
        stored = {k: v.decode() for k, v in keys.items()}
        body = {"format": self.spec.file_format, "current": current, "keys": stored}
        tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", closefd=True) as out:
            json.dump(body, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        return tmp

    @staticmethod
    @contextlib.contextmanager
    def _file_lock(path: Path) -> Iterator[None]:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _read_key_file(path: Path, st: os.stat_result, spec: KeyRingSpec) -> tuple[str, dict[str, bytes]]:
    """(current id, keys) from the key file; refused when others may read it or it is malformed."""
    what = spec.what
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise AuditKeyError(
            f"{what} key file {path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            "chmod 600 it"
        )
    try:
        body = json.loads(path.read_text())
        keys = {str(k): _secret_key(v, f"key {k}") for k, v in body["keys"].items()}
        current = str(body["current"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, AuditKeyError) as exc:
        raise AuditKeyError(f"{what} key file {path} is unreadable ({type(exc).__name__})") from None
    if body.get("format") != spec.file_format or current not in keys:
        raise AuditKeyError(f"{what} key file {path} is not a {spec.file_format} key ring")
    for key_id, key in keys.items():
        if key_id_of(key) != key_id:
            raise AuditKeyError(f"{what} key file {path}: key {key_id} does not match its id")
    return current, keys
