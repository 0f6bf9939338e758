"""Tokens, CSRF and user routes, through HTTP."""

from __future__ import annotations

import time

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.mapi import REALM_TOKEN, Mapi
from tests.support.stack import ADMIN_PASSWORD

CREATE = {"jobType": "METRIC_RECONCILIATION", "bucketName": "whatever-bucket"}


async def _token(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await http.post(REALM_TOKEN, data={"client_id": "admin-cli", **form})


async def test_password_and_refresh_grants(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        ok = await _token(http, grant_type="password", username="admin", password=ADMIN_PASSWORD)
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "Bearer"
        assert {
            "access_token",
            "expires_in",
            "refresh_token",
            "refresh_expires_in",
            "scope",
        } <= set(body)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert {"iss", "sub", "exp", "iat", "preferred_username", "mapi_user_id"} <= set(claims)

        refreshed = await _token(
            http, grant_type="refresh_token", refresh_token=body["refresh_token"]
        )
        assert refreshed.status_code == 200
        assert refreshed.json()["access_token"]

        # A refresh token is not an access token, nor the other way round.
        wrong = await _token(http, grant_type="refresh_token", refresh_token=body["access_token"])
        assert wrong.status_code == 401

        certs = (await http.get("/ui/auth/realms/vsp-object/protocol/openid-connect/certs")).json()
        jwk = certs["keys"][0]
        key = jwt.PyJWK(jwk).key
        jwt.decode(body["access_token"], key, algorithms=["RS256"], options={"verify_aud": False})
        disco = (
            await http.get("/ui/auth/realms/vsp-object/.well-known/openid-configuration")
        ).json()
        assert disco["token_endpoint"].endswith("/protocol/openid-connect/token")


async def test_wrong_password_is_invalid_grant_and_not_revealing(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        bad = await _token(http, grant_type="password", username="admin", password="nope")
        ghost = await _token(http, grant_type="password", username="ghost-user", password="nope")
    assert bad.status_code == ghost.status_code == 401
    assert bad.json()["error"] == ghost.json()["error"] == "invalid_grant"
    assert bad.json()["error_description"] == ghost.json()["error_description"]


async def test_repeated_failures_are_throttled_success_is_not(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        statuses = [
            (
                await _token(http, grant_type="password", username="brute", password=f"p{i}")
            ).status_code
            for i in range(12)
        ]
        assert 429 in statuses
        for _ in range(10):  # clients in the field log in before every call
            ok = await _token(
                http, grant_type="password", username="admin", password=ADMIN_PASSWORD
            )
            assert ok.status_code == 200


async def test_missing_expired_and_foreign_tokens_are_401(stack, admin):
    csrf = await admin.csrf_headers()
    key = serialization.load_pem_private_key(
        (stack.data_dir / "jwt-signing-key.pem").read_bytes(), password=None
    )
    real = jwt.decode(admin.token, options={"verify_signature": False})
    now = int(time.time())
    expired = jwt.encode({**real, "iat": now - 600, "exp": now - 300}, key, algorithm="RS256")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = jwt.encode({**real, "exp": now + 300}, other_key, algorithm="RS256")
    cases = {
        "none": {},
        "malformed": {"Authorization": "Bearer not-a-jwt"},
        "not bearer": {"Authorization": f"Basic {admin.token}"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "foreign key": {"Authorization": f"Bearer {foreign}"},
    }
    for name, headers in cases.items():
        response = await admin.http.post("/mapi/v1/jobs/list", json={}, headers={**csrf, **headers})
        assert response.status_code == 401, name
        assert response.json()["code"] == "UNAUTHORIZED", name
        assert set(response.json()) == {"code", "message", "details"}


async def test_csrf_rules(stack, admin):
    auth = {"Authorization": f"Bearer {admin.token}"}
    fresh = httpx.AsyncClient(base_url=stack.base_url)
    try:
        # No CSRF at all.
        response = await fresh.post("/mapi/v1/jobs/list", json={}, headers=auth)
        assert response.status_code == 401
        assert "CSRF" in response.json()["details"]

        pair = await fresh.get("/mapi/v1/csrf")
        assert pair.status_code == 200 and pair.json() == {}
        cookies = pair.headers.get_list("set-cookie")
        assert len(cookies) == 2
        xsrf = pair.cookies["XSRF-TOKEN"]
        session = pair.cookies["vertx-web.session"]
        for value in (xsrf, session):
            assert not set("=;, ") & set(value)
        session_cookie = next(c for c in cookies if c.startswith("vertx-web.session="))
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie.replace(
            "Strict", "strict"
        )

        # Header missing, or not matching the cookie.
        assert (await fresh.post("/mapi/v1/jobs/list", json={}, headers=auth)).status_code == 401
        mismatch = {**auth, "X-XSRF-TOKEN": xsrf[:-1] + ("0" if xsrf[-1] != "0" else "1")}
        assert (
            await fresh.post("/mapi/v1/jobs/list", json={}, headers=mismatch)
        ).status_code == 401

        # A token issued for another session.
        other = httpx.AsyncClient(base_url=stack.base_url)
        other_xsrf = (await other.get("/mapi/v1/csrf")).cookies["XSRF-TOKEN"]
        await other.aclose()
        fresh.cookies.set("XSRF-TOKEN", other_xsrf)
        swapped = await fresh.post(
            "/mapi/v1/jobs/list", json={}, headers={**auth, "X-XSRF-TOKEN": other_xsrf}
        )
        assert swapped.status_code == 401
        assert "session" in swapped.json()["details"]

        # The right pair works, and GET routes need none.
        fresh.cookies.set("XSRF-TOKEN", xsrf)
        good = await fresh.post(
            "/mapi/v1/jobs/list", json={}, headers={**auth, "X-XSRF-TOKEN": xsrf}
        )
        assert good.status_code == 200, good.text
    finally:
        await fresh.aclose()


async def test_csrf_pair_valid_on_another_api_process(stack, admin):
    """Tokens are derived, not stored: a second API process accepts the first one's pair."""
    from tests.support.services import Process, free_port, wait_http

    port = free_port()
    second = Process(
        ["serve", "--no-worker", "--port", str(port), "--data-dir", str(stack.data_dir),
         "--database-url", stack.database_url, "--s3-endpoint", stack.store.endpoint,
         "--s3-access-key", stack.store.access_key, "--s3-secret-key", stack.store.secret_key],
        {}, stack.data_dir / "api-2.log",
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=second)
        pair = await admin.http.get("/mapi/v1/csrf")
        xsrf = pair.cookies["XSRF-TOKEN"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            http.cookies.update(pair.cookies)
            response = await http.post(
                "/v1/jobs/list",
                json={},
                headers={"Authorization": f"Bearer {admin.token}", "X-XSRF-TOKEN": xsrf},
            )
        assert response.status_code == 200, response.text
    finally:
        second.stop()


async def test_user_info_serial_and_v1_alias(stack, admin):
    info = await admin.ok("/user/info", None)
    assert info["displayName"] == "admin"
    assert isinstance(info["id"]["id"], int)
    assert "mapi:jobs:admin_list" in info["roles"]
    serial = (await admin.ok("/serial_number/get"))["value"]
    assert serial == (await admin.ok("/serial_number/get"))["value"]
    csrf = await admin.csrf_headers()
    via_v1 = await admin.http.post(
        "/v1/serial_number/get", headers={"Authorization": f"Bearer {admin.token}", **csrf}
    )
    assert via_v1.status_code == 200 and via_v1.json()["value"] == serial


async def test_unknown_route_and_wrong_method(stack, admin):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        missing = await http.get("/mapi/v1/nothing-here")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        wrong = await http.get("/mapi/v1/jobs/list")
        assert wrong.status_code == 405 and wrong.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_user_role_cannot_see_others(stack, admin, s3, bucket):
    """A `user` sees only its own jobs and cannot read or cancel others'."""
    alice = stack.add_user("alice", "user")
    try:
        admins_job = await admin.create("METRIC_RECONCILIATION", bucket)
        job_id = admins_job["jobId"]["id"]
        assert (await alice.post("/jobs/status", {"jobId": {"id": job_id}})).status_code == 404
        assert (await alice.post("/jobs/cancel", {"jobId": {"id": job_id}})).status_code == 404
        info = await alice.ok("/user/info")
        assert "mapi:jobs:admin_list" not in info["roles"]
        forbidden = await alice.post("/jobs/list", {"userId": {"id": info["id"]["id"] + 1000}})
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "FORBIDDEN"
        mine = await alice.ok("/jobs/list", {})
        assert all(j["userId"]["id"] == info["id"]["id"] for j in mine["jobs"])
    finally:
        await alice.close()


async def test_users_commands_add_list_remove(stack):
    import os
    import subprocess
    import sys

    base = ["--database-url", stack.database_url, "--data-dir", str(stack.data_dir)]

    def cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if password:
            env["BUCKETJOBS_NEW_PASSWORD"] = password
        return subprocess.run(
            [sys.executable, "-m", "bucketjobs.cli.main", "users", *args, *base],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    assert cli("add", "bob", "--role", "operator", password="bob-pw").returncode == 0
    duplicate = cli("add", "bob", "--role", "operator", password="x")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    wizard = cli("add", "eve", "--role", "wizard", password="x")
    assert wizard.returncode == 2 and "administrator" in wizard.stderr  # the choices, named
    listed = cli("list")
    assert listed.returncode == 0 and "bob" in listed.stdout and "operator" in listed.stdout
    assert "argon2" not in listed.stdout and "bob-pw" not in listed.stdout

    bob = Mapi(stack.base_url, "bob", "bob-pw")
    try:
        info = await bob.ok("/user/info")
        assert "mapi:jobs:admin_list" in info["roles"] and "mapi:users:admin" not in info["roles"]
        assert cli("remove", "bob").returncode == 0
        assert (await bob.post("/user/info")).status_code == 401  # token of a removed user
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            gone = await _token(http, grant_type="password", username="bob", password="bob-pw")
        assert gone.status_code == 401
        assert cli("remove", "bob").returncode == 1
    finally:
        await bob.close()


async def _login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await _token(http, grant_type="password", username=username, password=password)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def _info(http: httpx.AsyncClient, access: str) -> int:
    csrf = await http.get("/mapi/v1/csrf")
    response = await http.post(
        "/mapi/v1/user/info",
        headers={"Authorization": f"Bearer {access}", "X-XSRF-TOKEN": csrf.cookies["XSRF-TOKEN"]},
    )
    return response.status_code


async def test_refresh_tokens_rotate_and_reuse_revokes_the_session(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        first = await _login(http, "admin", ADMIN_PASSWORD)
        second = await _token(
            http, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert second.status_code == 200
        rotated = second.json()
        assert rotated["refresh_token"] != first["refresh_token"]
        assert await _info(http, rotated["access_token"]) == 200
        # The used token again: a leaked copy. Refused, and the whole session ends with it.
        replay = await _token(
            http, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_grant"
        again = await _token(
            http, grant_type="refresh_token", refresh_token=rotated["refresh_token"]
        )
        assert again.status_code == 401
        assert await _info(http, rotated["access_token"]) == 401
        assert await _info(http, first["access_token"]) == 401
        # Other logins of the same user are not affected.
        other = await _login(http, "admin", ADMIN_PASSWORD)
        assert await _info(http, other["access_token"]) == 200


async def test_logout_ends_one_session(stack):
    logout = "/ui/auth/realms/vsp-object/protocol/openid-connect/logout"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        ended = await _login(http, "admin", ADMIN_PASSWORD)
        kept = await _login(http, "admin", ADMIN_PASSWORD)
        response = await http.post(
            logout, data={"client_id": "admin-cli", "refresh_token": ended["refresh_token"]}
        )
        assert response.status_code == 204 and response.content == b""
        assert await _info(http, ended["access_token"]) == 401
        refused = await _token(
            http, grant_type="refresh_token", refresh_token=ended["refresh_token"]
        )
        assert refused.status_code == 401
        assert await _info(http, kept["access_token"]) == 200
        bad = await http.post(logout, data={"client_id": "admin-cli", "refresh_token": "x.y.z"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


async def test_password_change_revokes_every_token_of_the_user(stack):
    carol = stack.add_user("carol", "user")
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        before = await _login(http, "carol", "carol-pw")
        await carol.login()
        wrong = await carol.post(
            "/user/password", {"currentPassword": "nope", "newPassword": "carol-new"}
        )
        assert wrong.status_code == 400 and "currentPassword" in wrong.json()["message"]
        assert await _info(http, before["access_token"]) == 200
        changed = await carol.post(
            "/user/password", {"currentPassword": "carol-pw", "newPassword": "carol-new"}
        )
        assert changed.status_code == 200, changed.text
        assert await _info(http, before["access_token"]) == 401
        refused = await _token(
            http, grant_type="refresh_token", refresh_token=before["refresh_token"]
        )
        assert refused.status_code == 401
        old = await _token(http, grant_type="password", username="carol", password="carol-pw")
        assert old.status_code == 401
        after = await _login(http, "carol", "carol-new")
        assert await _info(http, after["access_token"]) == 200

        # The administrator's command does the same, password read from stdin (not argv).
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "bucketjobs.cli.main", "users", "passwd", "carol",
             "--password-stdin", "--database-url", stack.database_url,
             "--data-dir", str(stack.data_dir)],
            input="carol-third\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert await _info(http, after["access_token"]) == 401
        await _login(http, "carol", "carol-third")
    await carol.close()


async def test_a_change_made_outside_the_api_ends_a_remembered_session_at_once(stack, db):
    """API processes remember live sessions; a change by anyone else (here plain SQL, as an
    operator or the CLI would make it) reaches them through the database's notification."""
    from sqlalchemy import text

    stack.add_user("dave", "user")
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        tokens = await _login(http, "dave", "dave-pw")
        for _ in range(3):
            assert await _info(http, tokens["access_token"]) == 200  # now remembered
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE users SET token_generation = token_generation + 1 WHERE name = 'dave'")
            )
        started = time.monotonic()
        while await _info(http, tokens["access_token"]) == 200:
            assert time.monotonic() - started < 1.0, "a revoked session still worked after 1 s"
