"""Login, logout, expiry, rate limit, CSRF and roles, through the ASGI app on both databases."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tidings.clock import FakeClock
from tidings.web.logins import MAX_FAILURES_PER_EMAIL

from .conftest import ADMIN, MEMBER, csrf_of, sign_in


def test_pages_redirect_to_login_until_signed_in(browser_client: TestClient) -> None:
    response = browser_client.get("/admin/account?tab=password")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/account%3Ftab%3Dpassword"
    htmx = browser_client.get("/admin", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/admin/login")
    assert browser_client.get("/").headers["location"] == "/admin"


def test_login_sets_a_safe_cookie_and_logout_ends_the_session(browser_client: TestClient) -> None:
    response = sign_in(browser_client, *ADMIN, next="/admin/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/account"
    cookie = response.headers["set-cookie"]
    assert "tidings_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = browser_client.get("/admin")
    assert page.status_code == 200 and "Dashboard" in page.text
    stolen = browser_client.cookies.get("tidings_session")
    token = csrf_of(browser_client)
    out = browser_client.post("/admin/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert browser_client.get("/admin").status_code == 303
    # The old cookie no longer works: the session is gone from the database.
    browser_client.cookies.set("tidings_session", stolen)
    assert browser_client.get("/admin").status_code == 303


def test_open_redirects_are_refused(browser_client: TestClient) -> None:
    response = sign_in(browser_client, *ADMIN, next="//evil.example/admin")
    assert response.headers["location"] == "/admin"


def test_wrong_password_and_unknown_address_look_alike(browser_client: TestClient) -> None:
    wrong = sign_in(browser_client, ADMIN[0], "not the password")
    unknown = sign_in(browser_client, "nobody@example.com", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong email or password." in response.text
        assert 'aria-describedby="password-error"' in response.text
    assert browser_client.get("/admin").status_code == 303


def test_failed_attempts_are_rate_limited_per_address(
    browser_client: TestClient, clock: FakeClock
) -> None:
    for _ in range(MAX_FAILURES_PER_EMAIL):
        assert sign_in(browser_client, ADMIN[0], "guess guess guess").status_code == 401
    refused = sign_in(browser_client, *ADMIN)  # even the right password, for now
    assert refused.status_code == 429
    assert "Too many failed attempts" in refused.text
    assert sign_in(browser_client, *MEMBER).status_code == 303  # another address is not held up
    clock.advance(timedelta(minutes=16))
    assert sign_in(browser_client, *ADMIN).status_code == 303


def test_sessions_expire_when_idle(admin_client: TestClient, clock: FakeClock) -> None:
    clock.advance(timedelta(hours=11))
    assert admin_client.get("/admin").status_code == 200  # used: pushed forward
    clock.advance(timedelta(hours=11))
    assert admin_client.get("/admin").status_code == 200
    clock.advance(timedelta(hours=12, minutes=1))
    assert admin_client.get("/admin").status_code == 303


def test_a_tampered_cookie_is_not_a_session(admin_client: TestClient) -> None:
    value = admin_client.cookies.get("tidings_session")
    assert value
    # Change a character whose every bit counts (the signature's last one carries padding bits,
    # so replacing the tail could leave the signature as it was).
    body, _, signature = value.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    admin_client.cookies.set("tidings_session", f"{body}.{flipped}")
    assert admin_client.get("/admin").status_code == 303


def test_state_changes_need_the_csrf_token(admin_client: TestClient) -> None:
    token = csrf_of(admin_client)
    assert admin_client.post("/admin/logout").status_code == 403
    assert admin_client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 403
    foreign = admin_client.post(
        "/admin/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    ours = admin_client.post(
        "/admin/logout", headers={"X-CSRF-Token": token, "Origin": "http://testserver"}
    )
    assert ours.status_code == 303


def test_the_login_form_needs_its_own_csrf_cookie(browser_client: TestClient) -> None:
    data = {"email": ADMIN[0], "password": ADMIN[1], "csrf_token": "made-up"}
    assert browser_client.post("/admin/login", data=data).status_code == 403


def test_members_cannot_open_the_settings(member_client: TestClient) -> None:
    assert member_client.get("/admin").status_code == 200
    response = member_client.get("/admin/settings")
    assert response.status_code == 403
    assert "administrators" in response.text
    assert "/admin/settings" not in member_client.get("/admin").text  # not in the menu


def test_the_cookie_is_secure_behind_https(app: FastAPI, users: dict[str, int]) -> None:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        response = sign_in(client, *ADMIN)
        assert "Secure" in response.headers["set-cookie"]


def test_changing_the_password_logs_other_sessions_out(
    app: FastAPI, admin_client: TestClient
) -> None:
    with TestClient(app, follow_redirects=False) as other:
        assert sign_in(other, *ADMIN).status_code == 303
        token = csrf_of(admin_client)
        short = admin_client.post(
            "/admin/account/password",
            data={"csrf_token": token, "current": ADMIN[1], "new": "short"},
        )
        assert short.status_code == 422 and 'id="new-error"' in short.text
        changed = admin_client.post(
            "/admin/account/password",
            data={"csrf_token": token, "current": ADMIN[1], "new": "a brand new password"},
        )
        assert changed.status_code == 200
        assert admin_client.get("/admin").status_code == 200
        assert other.get("/admin").status_code == 303
        assert sign_in(other, ADMIN[0], "a brand new password").status_code == 303


def test_api_docs_use_local_assets(browser_client: TestClient) -> None:
    page = browser_client.get("/docs")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()


def test_admins_manage_users_and_api_keys(admin_client: TestClient) -> None:
    token = csrf_of(admin_client, "/admin/settings")
    created = admin_client.post(
        "/admin/settings/users",
        data={"csrf_token": token, "email": "new@example.com", "name": "New", "role": "member"},
    )
    assert created.status_code == 200
    assert "one-time password of new@example.com" in created.text
    clash = admin_client.post(
        "/admin/settings/users",
        data={"csrf_token": token, "email": "new@example.com", "name": "Again", "role": "member"},
    )
    assert clash.status_code == 422 and "already exists" in clash.text
    key = admin_client.post(
        "/admin/settings/api-keys", data={"csrf_token": token, "key_name": "zapier"}
    )
    assert key.status_code == 200
    secret = key.text.split('data-testid="shown-secret">')[1].split("<")[0]
    assert secret.startswith("tid_")
    assert (
        admin_client.get(
            "/api/v1/contacts", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 200
    )
    page = admin_client.get("/admin/settings")
    assert secret not in page.text  # shown once
    key_id = page.text.split("/admin/settings/api-keys/")[1].split("/")[0]
    revoked = admin_client.post(
        f"/admin/settings/api-keys/{key_id}/revoke", data={"csrf_token": token}
    )
    assert revoked.status_code == 200
    assert (
        admin_client.get(
            "/api/v1/contacts", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 401
    )


def test_secrets_of_the_sending_configuration_are_masked(
    app: FastAPI, admin_client: TestClient
) -> None:
    app.state.settings.smtp_url = "smtp://mailer:hunter2@smtp.example.com:587"
    page = admin_client.get("/admin/settings")
    assert "hunter2" not in page.text and "test-secret-key" not in page.text
    assert "smtp://mailer:••••••@smtp.example.com:587" in page.text


def test_the_dashboard_shows_every_section(admin_client: TestClient) -> None:
    page = admin_client.get("/admin")
    for heading in (
        "Contacts by status",
        "Engagement per day",
        "Automations running",
        "Last broadcasts",
        "Open deals by stage",
        "Recent job runs",
    ):
        assert heading in page.text
    assert "data-chart=" in page.text
