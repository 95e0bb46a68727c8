"""Who may do what: tokens, the authorization matrix over every route and role, and the audit chain."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import api_client, as_json
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from chartvault.api.auth import POLICY, PUBLIC
from chartvault.archive.models import ROLES, ApiToken
from chartvault.errors import InvalidInput

NO_TOKEN = "(none)"


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every API operation, from the OpenAPI document (it sees routes of included routers too)."""
    paths = client.app.openapi()["paths"]
    found = sorted((method.upper(), path) for path, ops in paths.items() for method in ops)
    direct = {(m, r.path) for r in client.app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert direct <= set(found), "a route is left out of the OpenAPI document"
    return found


def _fill(path: str) -> str:
    return path.replace("{page_no}", "1").replace("{mrn}", "00000000").replace("{", "").replace("}", "")


@pytest.fixture
def matrix_client(settings):
    with api_client(settings) as c:
        tokens = {NO_TOKEN: None}
        for role in ROLES:
            tokens[role] = c.app.state.services.access.create_token(
                role, f"matrix {role}", vendor="Acme Copy" if role == "vendor" else None
            ).token
        c.headers.pop("Authorization")
        yield c, tokens


def test_every_route_is_in_the_policy(matrix_client) -> None:
    client, _ = matrix_client
    missing = [r for r in _routes(client) if r not in POLICY]
    assert missing == [], f"routes with no policy entry (refused to all): {missing}"


def test_authorization_matrix_every_route_every_role(matrix_client) -> None:
    client, tokens = matrix_client
    routes = _routes(client)
    checked = 0
    for method, path in routes:
        allowed = POLICY[(method, path)]
        for who, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            resp = client.request(method, _fill(path), headers=headers)
            checked += 1
            where = f"{method} {path} as {who}: {resp.status_code}"
            if allowed is PUBLIC:
                assert resp.status_code not in (401, 403), where
            elif token is None:
                assert resp.status_code == 401, where
                assert resp.headers["WWW-Authenticate"].startswith("Bearer"), where
            elif who in allowed:
                assert resp.status_code not in (401, 403), where
            else:
                assert resp.status_code == 403, where
                assert resp.json()["error"]["code"] == "forbidden", where
    assert checked == len(routes) * (len(ROLES) + 1)
    print(f"authorization matrix: {len(routes)} routes x {len(ROLES) + 1} callers = {checked} checks")


def test_bad_expired_and_revoked_tokens_are_refused(settings) -> None:
    with api_client(settings) as c:
        vault = c.app.state.services
        made = as_json(vault.access.create_token("staff", "to be revoked"))
        ok = {"Authorization": f"Bearer {made['token']}"}
        assert c.get("/batches", headers=ok).status_code == 200
        # A token shown once is stored only as a hash.
        with vault.parts.sessions() as s:
            row = s.get(ApiToken, made["id"])
            assert row is not None and made["token"].split("_")[-1] not in (row.secret_hash, row.name)
        forged = made["token"][:-4] + "AAAA"
        assert c.get("/batches", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        assert c.get("/batches", headers={"Authorization": "Bearer nonsense"}).status_code == 401
        assert c.get("/batches", headers={"Authorization": f"Basic {made['token']}"}).status_code == 401
        assert c.delete(f"/tokens/{made['id']}").status_code == 200  # the fixture's admin revokes it
        assert c.get("/batches", headers=ok).status_code == 401
        old = as_json(vault.access.create_token("staff", "expiring"))
        with vault.parts.sessions() as s:
            row = s.get(ApiToken, old["id"])
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            s.commit()
        assert c.get("/batches", headers={"Authorization": f"Bearer {old['token']}"}).status_code == 401
        listed = c.get("/tokens").json()["tokens"]
        assert all("token" not in t for t in listed) and {t["id"] for t in listed} >= {made["id"], old["id"]}


def test_vendor_and_role_token_rules(settings) -> None:
    with api_client(settings) as c:
        vault = c.app.state.services
        vault.access.create_user("acme-1", "Acme clerk", "vendor", vendor="Acme Copy")
        # The fixture's admin token belongs to no user: it must name the user a token is for.
        assert c.post("/tokens", json={"name": "v"}).status_code == 403
        assert c.post("/tokens", json={"name": "v", "user": "nobody"}).status_code == 404
        assert c.post("/tokens", json={"role": "staff", "name": "s", "user": "acme-1"}).status_code == 422
        made = c.post("/tokens", json={"name": "v", "user": "acme-1"})
        assert made.status_code == 201 and made.json()["token"].startswith("cv_")
        assert made.json()["role"] == "vendor" and made.json()["vendor"] == "Acme Copy"
        with pytest.raises(InvalidInput):  # a token of a user has the user's role
            vault.access.create_token("admin", "escalate", username="acme-1")


def test_review_queue_is_for_the_roles_of_the_review_pages(settings) -> None:
    """The queue is worked by HIM administrators on /ui/review; the API answered it to every staff
    token too, so two faces of one list disagreed on who may see it."""
    with api_client(settings) as c:
        access = c.app.state.services.access
        for role, status in (("staff", 403), ("scanner", 403), ("vendor", 403), ("him_admin", 200)):
            vendor = "Acme Copy" if role == "vendor" else None
            token = access.create_token(role, f"review {role}", vendor=vendor).token
            answer = c.get("/review", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == status, role


@pytest.mark.slow
def test_cli_tokens_belong_to_a_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "token", "create", "--role", "admin", "--name", "x").returncode == 2  # --user required
    assert (
        _cli(data, "user", "create", "ops", "--role", "admin", "--name", "Ops", "--no-password").returncode
        == 0
    )
    made = _cli(data, "token", "create", "--user", "ops", "--name", "first admin", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "admin" and json.loads(made.stdout)["user_id"]


def test_scanner_sees_only_its_own_batches(settings, corpus) -> None:
    from conftest import pick

    with api_client(settings) as c:
        vault = c.app.state.services
        one = {"Authorization": f"Bearer {vault.access.create_token('scanner', 'station 1').token}"}
        two = {"Authorization": f"Bearer {vault.access.create_token('scanner', 'station 2').token}"}
        path = pick(corpus, "pdf_text")["file"]
        with open(path, "rb") as fp:
            up = c.post("/batches", files={"files": (path.name, fp, "application/pdf")}, headers=one)
        assert up.status_code == 202, up.text
        batch = up.json()["batch_id"]
        assert c.get(f"/batches/{batch}", headers=one).status_code == 200
        assert c.get(f"/batches/{batch}", headers=two).status_code == 404
        assert [b["id"] for b in c.get("/batches", headers=two).json()["items"]] == []
        assert batch in [b["id"] for b in c.get("/batches", headers=one).json()["items"]]
        assert c.get(f"/batches/{batch}").status_code == 200  # the admin sees everything
        assert c.get("/search", params={"q": "x"}, headers=one).status_code == 403


def test_a_scanner_sees_the_batches_they_uploaded_from_any_token_or_session(settings) -> None:
    """A scanning operator is a person: the batches they sent with any of their tokens or from a signed-in
    page are theirs on every face, never another operator's; a token of no user still sees only its own."""
    from webfixtures import PASSWORD, csrf_of, sign_in, web_client

    scan = ("scan.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")
    with web_client(settings) as ana_web, web_client(settings) as bo_web:
        access = ana_web.app.state.services.access
        for who in ("ana", "bo"):
            access.create_user(who, who.title(), "scanner", password=PASSWORD)
        tokens = {
            "ana": access.create_token("scanner", "ana at station 1", username="ana").token,
            "ana2": access.create_token("scanner", "ana at station 2", username="ana").token,
            "bo": access.create_token("scanner", "bo at station 1", username="bo").token,
            "legacy": access.create_token("scanner", "a station from before users").token,
        }

        def api(who: str, method: str, url: str, **kw):
            return ana_web.request(method, url, headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)

        def upload(who: str) -> str:
            sent = api(who, "POST", "/batches", files={"files": scan})
            assert sent.status_code == 202, sent.text
            return sent.json()["batch_id"]

        by = {who: upload(who) for who in ("ana", "bo", "legacy")}
        assert sign_in(ana_web, "ana").status_code == 303 and sign_in(bo_web, "bo").status_code == 303
        form = csrf_of(ana_web.get("/ui/batches").text)
        sent = ana_web.post("/ui/batches", data={"csrf": form}, files={"files": scan}, follow_redirects=False)
        assert sent.status_code == 303
        by["ana_web"] = sent.headers["location"].rsplit("/", 1)[-1]
        anas = {by["ana"], by["ana_web"]}

        def listed(who: str) -> set[str]:
            return {b["id"] for b in api(who, "GET", "/batches").json()["items"]}

        for who in ("ana", "ana2"):  # her tokens see what she sent from the page, and from each other
            assert listed(who) == anas, who
            assert all(api(who, "GET", f"/batches/{b}").status_code == 200 for b in anas)
            assert api(who, "GET", f"/batches/{by['bo']}").status_code == 404
            assert api(who, "GET", f"/batches/{by['legacy']}").status_code == 404
        page = ana_web.get("/ui/batches").text
        assert all(b in page for b in anas) and by["bo"] not in page and by["legacy"] not in page
        assert ana_web.get(f"/ui/batches/{by['ana']}").status_code == 200  # her token's, on her page
        assert ana_web.get(f"/ui/batches/{by['bo']}").status_code == 404
        assert listed("bo") == {by["bo"]} and listed("legacy") == {by["legacy"]}
        assert api("bo", "GET", f"/batches/{by['ana_web']}").status_code == 404
        assert api("legacy", "GET", f"/batches/{by['ana']}").status_code == 404
        bo_page = bo_web.get("/ui/batches").text
        assert by["bo"] in bo_page and not any(b in bo_page for b in anas | {by["legacy"]})
        assert all(bo_web.get(f"/ui/batches/{b}").status_code == 404 for b in anas)


def test_a_token_cannot_make_itself_outlive_its_expiry(settings) -> None:
    """A stolen 90-day token minted a 10-year one for its user (POST /tokens, days up to 3,650), and that
    one another: the expiry meant nothing. A token made with a token now ends no later than it; an
    admin may still give any user a longer one."""
    with api_client(settings) as c:
        access = c.app.state.services.access
        access.create_user("vendy", "Vendy", "vendor", vendor="Acme Copy")
        parent = access.create_token(None, "acme laptop", days=7, username="vendy")
        vendor = {"Authorization": f"Bearer {parent.token}"}
        child = c.post("/tokens", json={"name": "forever", "days": 3650}, headers=vendor)
        assert child.status_code == 201, child.text
        assert child.json()["expires_at"] <= parent.expires_at
        grandchild = c.post(
            "/tokens",
            json={"name": "again", "days": 3650},
            headers={"Authorization": f"Bearer {child.json()['token']}"},
        )
        assert grandchild.json()["expires_at"] <= parent.expires_at
        shorter = c.post("/tokens", json={"name": "a day", "days": 1}, headers=vendor).json()
        assert shorter["expires_at"] < parent.expires_at  # a shorter one stays shorter
        by_admin = c.post("/tokens", json={"name": "long", "user": "vendy", "days": 365}).json()
        assert by_admin["expires_at"] > parent.expires_at


def test_actions_are_audited_under_the_calling_token(settings) -> None:
    with api_client(settings) as c:
        vault = c.app.state.services
        staff = as_json(vault.access.create_token("staff", "clerk"))
        c.get("/search", params={"q": "anything"}, headers={"Authorization": f"Bearer {staff['token']}"})
        with vault.parts.sessions() as s:
            from chartvault.archive.models import AuditEvent

            events = s.query(AuditEvent).filter(AuditEvent.actor == f"token:{staff['id']}").all()
        assert {e.action for e in events} >= {"token.use", "search"}


def test_openapi_declares_bearer_security(settings) -> None:
    with api_client(settings) as c:
        doc = c.get("/openapi.json", headers={"Authorization": ""}).json()
    schemes = doc["components"]["securitySchemes"]
    assert any(v["type"] == "http" and v["scheme"] == "bearer" for v in schemes.values())
    assert all(op.get("security") for p in doc["paths"].values() for op in p.values())


CLI = [sys.executable, "-m", "chartvault.cli"]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("tamper", ["alter", "insert", "delete"])
def test_audit_verify_detects_tampering(tmp_path: Path, tamper: str) -> None:
    from chartvault.config import Settings
    from chartvault.services import Services

    data = tmp_path / "data"
    with Services(Settings(data_dir=data, _env_file=None)) as services:  # four audited entries
        for i in range(4):
            services.access.create_user(f"user{i}", f"U{i}", "staff")
    ok = _cli(data, "audit", "verify")
    assert ok.returncode == 0 and "intact: 4 entries" in ok.stdout
    db = sqlite3.connect(data / "catalog.sqlite3")
    with db:
        if tamper == "alter":
            db.execute("UPDATE audit_events SET actor = 'cli:someone-else' WHERE id = 2")
        elif tamper == "insert":
            db.execute(  # a replayed copy of entry 2, appended at the next position
                "INSERT INTO audit_events (id, seq, at, actor, action, outcome, prev_hash, hash, key_id) "
                "SELECT 100, 6, at, actor, action, outcome, prev_hash, hash, key_id "
                "FROM audit_events WHERE id = 2"
            )
        else:
            db.execute("DELETE FROM audit_events WHERE id = 2")
    db.close()
    broken = _cli(data, "audit", "verify")
    assert broken.returncode == 1
    expected = {"alter": 2, "insert": 100, "delete": 3}[tamper]
    assert f"BROKEN at entry {expected}" in broken.stderr
