"""Named users: created by the operator, passwords kept as argon2 hashes, disabled users refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from chartvault.archive.models import User
from chartvault.errors import Conflict, InvalidInput, NotFound

PASSWORD = "correct horse battery"


def test_create_sign_in_reset_disable(vault) -> None:
    access = vault.access
    made = access.create_user("Clerk.One", "Clerk One", "staff", password=PASSWORD)
    assert made.username == "clerk.one" and made.has_password and made.role == "staff"
    with vault.parts.sessions() as s:
        stored = s.scalars(select(User.password_hash).where(User.id == made.id)).one()
    assert stored and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert access.sign_in("clerk.one", PASSWORD).id == made.id
    assert access.sign_in("CLERK.ONE", PASSWORD) is not None  # usernames are case-blind
    assert access.sign_in("clerk.one", PASSWORD + "x") is None
    assert access.sign_in("nobody", PASSWORD) is None
    access.reset_password("clerk.one", "a brand new passphrase")
    assert access.sign_in("clerk.one", PASSWORD) is None
    assert access.sign_in("clerk.one", "a brand new passphrase") is not None
    access.disable_user("clerk.one")
    assert access.sign_in("clerk.one", "a brand new passphrase") is None


def test_the_shipped_hasher_stores_rfc_9106_argon2id_and_upgrades_weak_hashes(vault, shipped_hasher) -> None:
    """The suite hashes cheaply (conftest); what ships uses RFC 9106's low-memory profile, and a hash made
    with weaker parameters (an older release, a test) is replaced at the next good sign-in."""
    from argon2 import PasswordHasher, extract_parameters
    from argon2.profiles import RFC_9106_LOW_MEMORY
    from conftest import FAST_HASHER_PARAMS

    def stored(username: str) -> str:
        with vault.parts.sessions() as s:
            return s.scalars(select(User.password_hash).where(User.username == username)).one()

    vault.access.create_user("strong", "Strong One", "staff", password=PASSWORD)
    assert extract_parameters(stored("strong")) == RFC_9106_LOW_MEMORY
    vault.access.create_user("weak", "Weak One", "staff")
    weak_hash = PasswordHasher(**FAST_HASHER_PARAMS).hash(PASSWORD)
    with vault.parts.sessions() as s, s.begin():
        s.scalars(select(User).where(User.username == "weak")).one().password_hash = weak_hash
    assert vault.access.sign_in("weak", PASSWORD) is not None
    assert extract_parameters(stored("weak")) == RFC_9106_LOW_MEMORY
    assert vault.access.sign_in("weak", PASSWORD) is not None


def test_bad_users_are_refused(vault) -> None:
    access = vault.access
    with pytest.raises(InvalidInput):
        access.create_user("ok-name", "Short", "staff", password="short")
    with pytest.raises(InvalidInput):
        access.create_user("bad name!", "Bad", "staff")
    with pytest.raises(InvalidInput):
        access.create_user("copy-co", "Copy Co", "vendor")  # a vendor needs its organisation
    with pytest.raises(InvalidInput):
        access.create_user("clerk", "Clerk", "staff", vendor="Acme")
    with pytest.raises(InvalidInput):
        access.create_user("boss", "Boss", "emperor")
    access.create_user("taken", "First", "staff")
    with pytest.raises(Conflict):
        access.create_user("Taken", "Second", "staff")
    with pytest.raises(NotFound):
        access.reset_password("ghost", PASSWORD)


def test_sign_ins_are_audited_without_the_password(vault) -> None:
    from chartvault.archive.models import AuditEvent

    vault.access.create_user("auditor", "Aud Itor", "him_admin", password=PASSWORD)
    vault.access.sign_in("auditor", "wrong password here")
    vault.access.sign_in("auditor", PASSWORD)
    with vault.parts.sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.sign_in")).all()
        assert [r.outcome for r in rows] == ["refused", "ok"]
        assert all(
            PASSWORD not in json.dumps(r.detail) and "auditor" not in (r.target_id or "") for r in rows
        )


@pytest.mark.slow
def test_cli_creates_users_reading_the_password_from_stdin(tmp_path: Path) -> None:
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "chartvault.cli", "user"]
    made = subprocess.run(
        [*cli, "create", "admin1", "--role", "admin", "--name", "First Admin", "--password-stdin", "--json"],
        input=PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["has_password"] is True and PASSWORD not in made.stdout
    again = subprocess.run(
        [*cli, "create", "admin1", "--role", "admin", "--name", "Again", "--no-password"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "taken" in again.stderr
    listed = json.loads(
        subprocess.run([*cli, "list", "--json"], env=env, capture_output=True, text=True).stdout
    )
    assert [u["username"] for u in listed["users"]] == ["admin1"]


def test_a_password_reset_anywhere_ends_the_users_web_sessions(tmp_path: Path) -> None:
    """`chartvault user reset-password` (the console, where an admin goes when an account is stolen)
    left every web session of the user open: whoever held the stolen session kept it."""
    from chartvault.config import Settings
    from chartvault.services import Services

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    with Services(settings) as vault:
        vault.access.create_user("clerk", "Clerk", "staff", password=PASSWORD)
        stolen = vault.sessions.sign_in("clerk", PASSWORD, "10.0.0.9").secret
        assert vault.sessions.resolve(stolen) is not None
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(tmp_path / "data")}
    reset = subprocess.run(
        [sys.executable, "-m", "chartvault.cli", "user", "reset-password", "clerk", "--password-stdin"],
        input="a brand new passphrase\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert reset.returncode == 0, reset.stderr
    with Services(settings) as vault:
        assert vault.sessions.resolve(stolen) is None
        # And the service the console calls does it too, for any caller.
        again = vault.sessions.sign_in("clerk", "a brand new passphrase", "10.0.0.9").secret
        vault.access.reset_password("clerk", "yet another passphrase")
        assert vault.sessions.resolve(again) is None


def test_a_stranger_locks_a_username_out_of_their_own_address_only(vault) -> None:
    """Five wrong passwords for a username locked it from every address for 15 minutes: anyone who could
    reach the sign-in page kept a named person (an admin) out. Now only from the address that failed,
    under a ceiling over all addresses (100 at the default) that still bounds spread-out guessing."""
    from chartvault.services.sessions import SignInRefused, TooManyAttempts

    vault.access.create_user("ana", "Ana", "him_admin", password=PASSWORD)
    sessions, failures = vault.sessions, vault.settings.web_sign_in_failures
    for _ in range(failures):
        with pytest.raises(SignInRefused):
            sessions.sign_in("ana", "wrong guess, surely", "203.0.113.9")
    with pytest.raises(TooManyAttempts):
        sessions.sign_in("ana", PASSWORD, "203.0.113.9")  # the stranger's address: locked
    assert sessions.sign_in("ana", PASSWORD, "10.1.2.3").user.username == "ana"  # her ward: not

    for n in range(failures * 20 - failures):  # guessing spread over many addresses hits the ceiling
        with pytest.raises(SignInRefused):
            sessions.sign_in("ana", "wrong guess, surely", f"198.51.100.{n % 250}")
    with pytest.raises(TooManyAttempts):
        sessions.sign_in("ana", PASSWORD, "10.1.2.3")
