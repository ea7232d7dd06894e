"""Home, browse and learnware pages: what each of anonymous, owner, other user and admin may see."""

from __future__ import annotations

import re

import pytest

from marketplace.learnwares.choices import VersionStatus, Visibility
from marketplace.learnwares.models import Learnware
from tests.marketplace.portal.factories import make_learnware
from tests.support.base_model_packages import drop_registered_minilm

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def test_home_counts_only_what_the_visitor_may_see(web, web_for, alice, bob):
    drop_registered_minilm()  # the counts below are of alice's learnwares only
    make_learnware(alice, name="public-one")
    make_learnware(alice, name="secret-one", visibility=Visibility.PRIVATE)
    anonymous = text(web.get("/"))
    assert re.search(r'data-count="learnwares">1<', anonymous)
    assert "public-one" in anonymous and "secret-one" not in anonymous
    assert "secret-one" not in text(web_for(bob).get("/"))
    mine = text(web_for(alice).get("/"))
    assert re.search(r'data-count="learnwares">2<', mine) and "secret-one" in mine


def test_home_lists_the_most_reused_first(web, alice):
    make_learnware(alice, name="rarely", reuse_count=1)
    make_learnware(alice, name="often", reuse_count=9)
    page = text(web.get("/"))
    reused = page[page.index('id="reused-h"') :]
    assert reused.index("often") < reused.index("rarely")


@pytest.mark.parametrize("who,status", [("anonymous", 404), ("owner", 200), ("other", 404), ("admin", 200)])
def test_a_private_learnware_page_is_shown_to_its_owner_and_admins_only(
    who, status, web, web_for, alice, bob, admin_user
):
    version = make_learnware(alice, name="private-model", visibility=Visibility.PRIVATE)
    client = {"anonymous": web, "owner": web_for(alice), "other": web_for(bob), "admin": web_for(admin_user)}[
        who
    ]
    response = client.get(f"/learnwares/{version.learnware_id}/")
    assert response.status_code == status
    if status == 404:
        assert "private-model" not in text(response)
        assert "404" in text(response)  # the portal's own error page


def test_an_unpublished_version_is_hidden_from_others_but_followed_by_its_owner(web, web_for, alice, bob):
    version = make_learnware(alice, name="checking", status=VersionStatus.VALIDATING)
    url = f"/learnwares/{version.learnware_id}/v1/"
    assert web.get(url).status_code == 404
    assert web_for(bob).get(url).status_code == 404
    page = web_for(alice).get(url)
    assert page.status_code == 200 and "validating" in text(page)


def test_the_learnware_page_shows_card_versions_spec_and_usage(web, alice):
    version = make_learnware(alice, name="digits", description="# Title\n\nUses *RKME*.", tags=["vision"])
    page = text(web.get(f"/learnwares/{version.learnware_id}/"))
    assert "<h1>Title</h1>" in page and "<em>RKME</em>" in page
    assert version.artifact_sha256[:16] in page
    assert f"/api/v1/learnwares/{version.learnware_id}/versions/1/download" in page
    assert page.count('fill-opacity="0.55"') == 8  # one marker per reduced point of the K = 8 RKME
    assert f"market.download({version.learnware_id}, 1" in page and "sha256sum -c" in page


def test_the_card_markdown_is_sanitised(web, alice):
    evil = (
        '<script>alert(1)</script>\n\n[click](javascript:alert(2)) <img src=x onerror="alert(3)">\n\n'
        '<a href="https://example.org" onclick="steal()">ok</a> <iframe src="https://evil"></iframe>'
    )
    version = make_learnware(alice, description=evil)
    page = text(web.get(f"/learnwares/{version.learnware_id}/"))
    card = page[page.index('aria-label="Card"') : page.index('id="versions-h"')]
    assert "<script" not in card and "javascript:" not in card and "onerror" not in card
    assert "onclick" not in card and "<iframe" not in card
    assert 'href="https://example.org"' in card and "noopener" in card


def test_similar_learnwares_are_ranked_by_the_mmd_of_their_specifications(web, alice, bob):
    import numpy as np

    from marketplace.learnwares.models import Specification
    from marketplace.search.store import rkme_arrays

    me = make_learnware(alice, name="me")
    near = make_learnware(alice, name="near-data", shift=0.2)
    far = make_learnware(alice, name="far-data", shift=3.0)
    make_learnware(bob, name="hidden-twin", visibility=Visibility.PRIVATE)
    page = text(web.get(f"/learnwares/{me.learnware_id}/"))
    similar = page[page.index('id="similar-h"') :]
    assert "hidden-twin" not in similar
    assert similar.index("near-data") < similar.index("far-data")
    # The shown score is the MMD² of the two stored RKMEs, computed here directly with numpy.
    specs = {v.id: Specification.objects.get(version=v) for v in (me, near, far)}

    def mmd2(a, b):
        (Za, ba), (Zb, bb) = rkme_arrays(specs[a.id].rkme), rkme_arrays(specs[b.id].rkme)
        g = specs[a.id].feature_space.gamma
        k = lambda X, Y: np.exp(-g * ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))  # noqa: E731
        return ba @ k(Za, Za) @ ba + bb @ k(Zb, Zb) @ bb - 2 * ba @ k(Za, Zb) @ bb

    shown = [float(x) for x in re.findall(r"MMD² ([0-9.e+-]+)</span>", similar)]
    assert shown == pytest.approx([mmd2(me, near), mmd2(me, far)], rel=2e-3, abs=1e-6)
    assert shown[1] > 10 * shown[0]


def test_browse_filters_by_facet_and_never_lists_private_learnwares(web, alice, bob):
    make_learnware(alice, name="mit-one", license="MIT", tags=["a"])
    make_learnware(alice, name="apache-one", license="Apache-2.0", tags=["a", "b"])
    make_learnware(bob, name="bobs-secret", visibility=Visibility.PRIVATE)
    everything = text(web.get("/learnwares/"))
    assert "mit-one" in everything and "apache-one" in everything and "bobs-secret" not in everything
    assert "MIT" in everything and "Apache-2.0" in everything  # facet values
    only = text(web.get("/learnwares/?license=Apache-2.0"))
    assert "apache-one" in only and "mit-one" not in only
    tagged = text(web.get("/learnwares/?tags=a&tags=b"))
    assert "apache-one" in tagged and "mit-one" not in tagged


def test_browse_sorts_and_paginates(web, alice):
    for i in range(14):
        make_learnware(alice, name=f"item-{i:02d}", reuse_count=i)
    first = text(web.get("/learnwares/?sort=reused"))
    assert "item-13" in first and "item-00" not in first and "page 1 of 2" in first
    second = text(web.get("/learnwares/?sort=reused&page=2"))
    assert "item-00" in second and "item-13" not in second
    assert web.get("/learnwares/?page=banana").status_code == 200  # a bad page number shows the first


def test_browse_shows_an_empty_state(web):
    assert "No learnware matches" in text(web.get("/learnwares/?license=MIT"))


def test_only_the_owner_edits_the_card_and_bad_input_is_refused(web, web_for, alice, bob):
    version = make_learnware(alice, name="editable")
    url = f"/learnwares/{version.learnware_id}/edit/"
    assert web.get(url).status_code == 302  # to the log-in page
    assert (
        web_for(bob).post(url, {"description": "x", "license": "MIT", "visibility": "public"}).status_code
        == 404
    )
    owner = web_for(alice)
    bad = owner.post(url, {"description": "x", "license": "WTFPL-9", "visibility": "public", "tags": ""})
    assert bad.status_code == 400 and "WTFPL-9" in text(bad)
    too_many = owner.post(
        url,
        {
            "description": "x",
            "license": "MIT",
            "visibility": "public",
            "tags": ",".join(str(i) for i in range(31)),
        },
    )
    assert too_many.status_code == 400 and "At most 30 tags" in text(too_many)
    ok = owner.post(
        url, {"description": "new card", "license": "Apache-2.0", "visibility": "private", "tags": "x, y"}
    )
    assert ok.status_code == 302
    lw = Learnware.objects.get(id=version.learnware_id)
    assert (lw.description, lw.license, lw.visibility, lw.tags) == (
        "new card",
        "Apache-2.0",
        "private",
        ["x", "y"],
    )


def test_delete_needs_post_by_the_owner(web_for, alice, bob, admin_user):
    version = make_learnware(alice, name="doomed")
    url = f"/learnwares/{version.learnware_id}/delete/"
    assert web_for(alice).get(url).status_code == 405
    assert web_for(bob).post(url).status_code == 404
    assert web_for(alice).post(url).status_code == 302
    assert Learnware.objects.get(id=version.learnware_id).deleted_at is not None
    assert web_for(admin_user).get(f"/learnwares/{version.learnware_id}/").status_code == 404


def test_unknown_pages_use_the_portal_error_page(web):
    response = web.get("/no/such/page/")
    assert response.status_code == 404 and "Back to the market" in text(response)


def test_an_onnx_version_shows_its_format_and_the_onnx_usage_line(web, alice):
    from marketplace.learnwares.choices import ArtifactFormat
    from marketplace.learnwares.models import LearnwareVersion

    version = make_learnware(alice, name="wine-hgb")
    LearnwareVersion.objects.filter(id=version.id).update(artifact_format=ArtifactFormat.ONNX)
    page = text(web.get(f"/learnwares/{version.learnware_id}/"))
    assert "<dt>Format</dt><dd>ONNX (.onnx, ONNX Runtime)</dd>" in page
    assert "pip install &#x27;./client[onnx]&#x27;" in page or "pip install './client[onnx]'" in page
    other = make_learnware(alice, name="torch-one")
    LearnwareVersion.objects.filter(id=other.id).update(artifact_format=ArtifactFormat.TORCHSCRIPT)
    assert "client[onnx]" not in text(web.get(f"/learnwares/{other.learnware_id}/"))
