"""Site-wide response policy: the CSP header, cards that never load remote images, the portal's
own 404/405/500 pages even with DEBUG on, and API docs whose assets are served by the product."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import path

from marketplace.portal.markdown import is_local_url, render_markdown
from tests.marketplace.portal.factories import make_learnware

pytestmark = pytest.mark.django_db


def directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_kind_of_response_carries_a_strict_csp(web, alice):
    version = make_learnware(alice)
    for url in (
        "/",
        f"/learnwares/{version.learnware_id}/",
        "/api/v1/learnwares/",
        "/api/v1/docs/",
        "/no-such-page/",
    ):
        policy = directives(web.get(url)["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], url
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"] and "https:" not in policy["img-src"]


def test_portal_pages_have_no_inline_script(web, alice):
    version = make_learnware(alice)
    for url in (
        "/",
        "/learnwares/",
        f"/learnwares/{version.learnware_id}/",
        "/search/data/",
        "/api/v1/docs/",
    ):
        html = web.get(url).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"\son(click|load|error|change|submit)=", html), url


@pytest.mark.parametrize(
    "url,local",
    [
        ("/media/a.png", True),
        ("img/a.png", True),
        ("https://x.org/a.png", False),
        ("//x.org/a.png", False),
        ("data:image/png;base64,AA", False),
        ("HTTP://x.org/a", False),
        ("", False),
        ("/\\x.org/a.png", False),
    ],
)
def test_which_image_addresses_count_as_local(url, local):
    assert is_local_url(url) is local


def test_a_card_never_makes_the_browser_fetch_a_remote_image():
    html = render_markdown(
        "![chart](https://tracker.example/p.png?u=1) ![here](/static/img/favicon.svg)\n\n"
        '<img src="https://tracker.example/raw.png" alt="raw"> <img src="//tracker.example/x">'
    )
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert sources == ["/static/img/favicon.svg"]
    # The remote Markdown image is still reachable, as a link the reader chooses to follow.
    assert '<a href="https://tracker.example/p.png?u=1"' in html and "image: chart" in html


@pytest.mark.parametrize("url", ["/no-such-page/", "/learnwares/999999/", "/accounts/../nowhere"])
def test_not_found_is_the_portal_page_even_in_debug(settings, url):
    settings.DEBUG = True
    response = Client().get(url)
    body = response.content.decode()
    assert response.status_code == 404
    assert "DEBUG = True" not in body and "URLconf" not in body
    assert "<h1>404</h1>" in body and 'class="top"' in body


def test_get_on_a_post_only_address_is_a_designed_405(web_for, alice, settings):
    settings.DEBUG = True
    version = make_learnware(alice)
    response = web_for(alice).get(f"/learnwares/{version.learnware_id}/delete/")
    body = response.content.decode()
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert "<h1>405</h1>" in body and "Method not allowed" in body


def test_an_api_404_in_debug_is_json_not_the_url_list(settings):
    settings.DEBUG = True
    response = Client().get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def crashing_view(request):
    raise RuntimeError("kaput")


urlpatterns = [path("boom/", crashing_view)]


@pytest.mark.urls(__name__)
def test_a_crash_in_debug_renders_the_500_page_and_is_still_reported(settings):
    from django.core import signals

    settings.DEBUG = True
    reported = []
    signals.got_request_exception.connect(
        lambda **kw: reported.append(kw["request"].path), weak=False, dispatch_uid="t500"
    )
    try:
        response = Client(raise_request_exception=False).get("/boom/")
    finally:
        signals.got_request_exception.disconnect(dispatch_uid="t500")
    body = response.content.decode()
    assert (
        response.status_code == 500
        and "<h1>500</h1>" in body
        and "kaput" not in body
        and "Traceback" not in body
    )
    assert reported == ["/boom/"]


def test_api_docs_load_only_assets_served_by_the_product(web, settings):
    from django.contrib.staticfiles import finders

    html = web.get("/api/v1/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    for asset in sources:
        if asset.startswith(settings.STATIC_URL):  # served by WhiteNoise/runserver, not by a view
            assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
        else:
            assert web.get(asset).status_code == 200, asset
    assert any("swagger-ui-bundle" in s for s in sources)
