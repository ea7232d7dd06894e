"""Account pages: sign up, rate-limited log in, password reset, profile, API tokens, my pages."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from marketplace.accounts.models import ApiToken, User
from marketplace.accounts.services import api_token_create

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def test_signup_logs_the_new_user_in(web):
    response = web.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "c@example.com",
            "password1": "a-Long-pass-42",
            "password2": "a-Long-pass-42",
        },
    )
    assert response.status_code == 302
    assert "carol" in text(web.get("/"))  # the header names the logged-in user


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {
                "username": "carol",
                "email": "c@example.com",
                "password1": "a-Long-pass-42",
                "password2": "other-pass-42",
            },
            "didn’t match",
        ),
        (
            {
                "username": "ALICE",
                "email": "c@example.com",
                "password1": "a-Long-pass-42",
                "password2": "a-Long-pass-42",
            },
            "already exists",
        ),
        (
            {
                "username": "carol",
                "email": "not-an-email",
                "password1": "a-Long-pass-42",
                "password2": "a-Long-pass-42",
            },
            "valid email",
        ),
        (
            {"username": "carol", "email": "c@example.com", "password1": "123", "password2": "123"},
            "too short",
        ),
        (
            {
                "username": "bad name!",
                "email": "c@example.com",
                "password1": "a-Long-pass-42",
                "password2": "a-Long-pass-42",
            },
            "valid username",
        ),
    ],
)
def test_signup_refuses_bad_input(web, alice, data, message):
    response = web.post("/accounts/signup/", data)
    assert response.status_code == 400
    assert message in text(response)
    assert not User.objects.filter(username="carol").exists()


def test_forms_need_a_csrf_token(alice):
    strict = Client(enforce_csrf_checks=True)
    assert (
        strict.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"}).status_code
        == 403
    )
    strict.force_login(alice)
    assert strict.post("/accounts/tokens/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.filter(user=alice).exists()


def test_login_is_rate_limited_per_username_even_with_the_right_password(web, alice, settings):
    settings.LWM_LOGIN_MAX_ATTEMPTS = 3
    for _ in range(3):
        assert web.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    blocked = web.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"})
    assert blocked.status_code == 429 and "Too many failed attempts" in text(blocked)
    assert "_auth_user_id" not in web.session
    # Another username from the same address still works (the per-address limit is higher).
    assert web.post("/accounts/login/", {"username": "bob", "password": "x"}).status_code == 200


def test_a_successful_login_clears_the_failures(web, alice, settings):
    settings.LWM_LOGIN_MAX_ATTEMPTS = 3
    for _ in range(2):
        web.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert (
        web.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"}).status_code == 302
    )
    web.post("/accounts/logout/")
    for _ in range(2):
        web.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert (
        web.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"}).status_code == 302
    )


def test_password_reset_mails_a_working_link(web, alice):
    assert web.post("/accounts/password/reset/", {"email": "alice@example.com"}).status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form = web.get(link, follow=True)
    assert "Choose a new password" in text(form)
    done = web.post(
        form.redirect_chain[-1][0], {"new_password1": "brand-New-pass-7", "new_password2": "brand-New-pass-7"}
    )
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("brand-New-pass-7")


def test_password_reset_for_an_unknown_address_says_nothing_more(web):
    response = web.post("/accounts/password/reset/", {"email": "nobody@example.com"}, follow=True)
    assert "Check your e-mail" in text(response) and len(mail.outbox) == 0


def test_account_pages_need_a_login(web):
    for url in ("/accounts/", "/accounts/tokens/", "/accounts/learnwares/", "/accounts/tasks/"):
        response = web.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_profile_saves_and_refuses_a_bad_email(web_for, alice):
    client = web_for(alice)
    assert (
        client.post("/accounts/", {"first_name": "Al", "last_name": "Ice", "email": "nope"}).status_code
        == 400
    )
    assert (
        client.post(
            "/accounts/", {"first_name": "Al", "last_name": "Ice", "email": "al@example.com"}
        ).status_code
        == 302
    )
    alice.refresh_from_db()
    assert (alice.first_name, alice.email) == ("Al", "al@example.com")


def test_a_new_token_is_shown_once_and_works(web_for, alice):
    client = web_for(alice)
    response = client.post("/accounts/tokens/", {"name": "laptop"}, follow=True)
    key = re.search(r'data-testid="token-key">(lwm_[^<]+)<', text(response)).group(1)
    assert ApiToken.objects.get(user=alice).key_hash == ApiToken.hash_key(key)
    again = text(client.get("/accounts/tokens/"))
    assert key not in again and "laptop" in again
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/me/").json()["username"] == "alice"


def test_a_token_needs_a_name(web_for, alice):
    response = web_for(alice).post("/accounts/tokens/", {"name": "   "})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_only_the_owner_revokes_a_token(web_for, alice, bob):
    token, key = api_token_create(user=alice, name="ci")
    url = f"/accounts/tokens/{token.id}/revoke/"
    assert web_for(bob).post(url).status_code == 404
    assert web_for(alice).get(url).status_code == 405
    assert web_for(alice).post(url).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/me/").status_code == 401


def test_my_learnwares_lists_mine_in_every_state_and_nobody_elses(web_for, alice, bob):
    from marketplace.learnwares.choices import VersionStatus
    from tests.marketplace.portal.factories import make_learnware

    make_learnware(alice, name="mine-published")
    make_learnware(alice, name="mine-rejected", status=VersionStatus.REJECTED)
    make_learnware(bob, name="bobs")
    page = text(web_for(alice).get("/accounts/learnwares/"))
    assert "mine-published" in page and "mine-rejected" in page and "bobs" not in page
