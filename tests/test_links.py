"""Sealed page links (``chartvault.services.links``): what a page address carries instead of an MRN, a
name or a search's words. Sealed for one person and one purpose, expiring, and opening to nothing else."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from chartvault.config import Settings
from chartvault.errors import InvalidInput, NotFound
from chartvault.services.links import LinkExpired, LinkSealer

MRN = "4874449078"
ALICE, BOB = "user:alice", "user:bob"


def _settings(data: Path, **more: object) -> Settings:
    return Settings(data_dir=data, _env_file=None, **more)  # type: ignore[arg-type]


@pytest.fixture
def sealer(tmp_path: Path) -> LinkSealer:
    return LinkSealer.from_settings(_settings(tmp_path / "data"))


def test_a_sealed_link_opens_for_its_holder_and_purpose_only(sealer: LinkSealer) -> None:
    link = sealer.seal("patient", ALICE, {"mrn": MRN})
    assert sealer.open("patient", ALICE, link) == {"mrn": MRN}
    assert MRN not in link and MRN.encode() not in base64.urlsafe_b64decode(link + "==")
    assert link != sealer.seal("patient", ALICE, {"mrn": MRN})  # a fresh nonce: no stable pseudonym
    assert set(link) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    with pytest.raises(LinkExpired):
        sealer.open("patient", BOB, link)  # another person's
    with pytest.raises(LinkExpired):
        sealer.open("search", ALICE, link)  # another purpose's


def test_a_changed_byte_anywhere_opens_to_nothing(sealer: LinkSealer) -> None:
    link = sealer.seal("search", ALICE, {"q": "chest pain", "name": "DOE JANE"})
    raw = bytearray(base64.urlsafe_b64decode(link + "=" * (-len(link) % 4)))
    for at in range(len(raw)):  # version, key id, nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[at] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        with pytest.raises(LinkExpired):
            sealer.open("search", ALICE, forged)
    for junk in ("", "!!!", "a", "é" * 10, "A" * 5000, base64.urlsafe_b64encode(b"\x01" * 30).decode()):
        with pytest.raises(LinkExpired):
            sealer.open("search", ALICE, junk)


def test_a_link_expires(tmp_path: Path) -> None:
    now = [1_000_000.0]
    base = LinkSealer.from_settings(_settings(tmp_path / "data", web_link_hours=12))
    sealer = LinkSealer(base.keys, base.lifetime_s, clock=lambda: now[0])
    link = sealer.seal("patient", ALICE, {"mrn": MRN})
    now[0] += 12 * 3600 - 1
    assert sealer.open("patient", ALICE, link) == {"mrn": MRN}
    now[0] += 2
    with pytest.raises(LinkExpired) as refused:
        sealer.open("patient", ALICE, link)
    assert refused.value.code == "link_expired" and isinstance(refused.value, NotFound)
    assert "expired" in str(refused.value) and MRN not in str(refused.value)


def test_the_key_file_is_private_and_shared_by_servers_of_one_data_folder(tmp_path: Path) -> None:
    """Kept as the audit key is: a 0600 ring file in a 0700 folder, made on first use; two servers on one
    (shared) data folder open each other's links, a server of another data folder opens none."""
    data = tmp_path / "shared"
    one = LinkSealer.from_settings(_settings(data))
    link = one.seal("patient", ALICE, {"mrn": MRN})
    key_file = data / "keys" / "links.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert '"chartvault-link-keys/1"' in key_file.read_text()
    assert not (data / "keys" / "audit.key").exists()  # a ring of its own
    assert LinkSealer.from_settings(_settings(data)).open("patient", ALICE, link) == {"mrn": MRN}
    with pytest.raises(LinkExpired):
        LinkSealer.from_settings(_settings(tmp_path / "elsewhere")).open("patient", ALICE, link)
    key_file.chmod(0o644)
    with pytest.raises(InvalidInput, match=r"link key file .* chmod 600"):
        LinkSealer.from_settings(_settings(data)).open("patient", ALICE, link)


def test_a_key_from_the_environment_and_its_retired_keys(tmp_path: Path) -> None:
    """Servers that share no folder share the variable; a rotated-out key still opens its links."""
    old, new = "o" * 40, "n" * 40
    first = LinkSealer.from_settings(_settings(tmp_path / "a", link_key=old))
    link = first.seal("search", ALICE, {"q": "pain"})
    assert not (tmp_path / "a" / "keys" / "links.key").exists()
    assert LinkSealer.from_settings(_settings(tmp_path / "b", link_key=old)).open("search", ALICE, link)
    rotated = LinkSealer.from_settings(_settings(tmp_path / "b", link_key=new, link_retired_keys=old))
    assert rotated.open("search", ALICE, link) == {"q": "pain"}
    with pytest.raises(LinkExpired):
        LinkSealer.from_settings(_settings(tmp_path / "b", link_key=new)).open("search", ALICE, link)
    with pytest.raises(InvalidInput, match="CHARTVAULT_LINK_KEY"):
        LinkSealer.from_settings(_settings(tmp_path / "c", link_key="short")).seal("search", ALICE, {})


def test_a_value_too_long_for_an_address_is_refused(sealer: LinkSealer) -> None:
    with pytest.raises(InvalidInput, match="too long"):
        sealer.seal("search", ALICE, {"q": "x" * 3000})


def test_rotating_the_link_key_keeps_old_links_until_a_revocation_ends_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chartvault links rotate-key` (a key in use for a while) and `--revoke-old` (a key that leaked): a
    running server's sealer takes the new ring from the file without a restart; both are audited."""
    from sqlalchemy import select
    from typer.testing import CliRunner

    from chartvault.archive.models import AuditEvent
    from chartvault.cli import app
    from chartvault.services import Services

    running = LinkSealer.from_settings(settings)  # as a server holds it
    before = running.seal("patient", ALICE, {"mrn": MRN})
    old_key = running.keys.current()[0]
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    rotated = runner.invoke(app, ["links", "rotate-key", "--json"])
    assert rotated.exit_code == 0, rotated.output
    result = json.loads(rotated.stdout)
    assert result["from_key"] == old_key and result["to_key"] != old_key and result["revoked"] == []
    assert running.keys.current()[0] == result["to_key"]  # new links use the new key at once
    assert running.open("patient", ALICE, before) == {"mrn": MRN}  # old ones open until they expire
    during = running.seal("patient", ALICE, {"mrn": MRN})

    revoked = runner.invoke(app, ["links", "rotate-key", "--revoke-old"])
    assert revoked.exit_code == 0 and "2 old key(s) dropped" in revoked.output, revoked.output
    for link in (before, during):
        with pytest.raises(LinkExpired):
            running.open("patient", ALICE, link)
    assert running.open("patient", ALICE, running.seal("patient", ALICE, {"mrn": MRN})) == {"mrn": MRN}
    key_file = settings.data_dir / "keys" / "links.key"
    assert (
        stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(json.loads(key_file.read_text())["keys"]) == 1
    )
    with Services(settings) as services, services.parts.sessions() as s:
        entries = s.scalars(select(AuditEvent).where(AuditEvent.action == "links.rotate_key")).all()
    assert [len(e.detail["revoked"]) for e in entries] == [0, 2]


def test_audit_keys_are_never_dropped_and_an_environment_link_key_is_rotated_there(tmp_path: Path) -> None:
    from chartvault.archive.audit_keys import AuditKeyError, KeyRing

    audit_ring = KeyRing(tmp_path / "keys" / "audit.key")
    first = audit_ring.current()[0]
    with pytest.raises(AuditKeyError, match="never dropped"):
        audit_ring.rotate(keep_old=False)
    assert audit_ring.key_ids() == [first]
    from_env = LinkSealer.from_settings(_settings(tmp_path / "env", link_key="e" * 40))
    with pytest.raises(AuditKeyError, match="CHARTVAULT_LINK_KEY"):
        from_env.keys.rotate(keep_old=False)
