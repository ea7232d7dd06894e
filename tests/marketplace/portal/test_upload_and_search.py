"""The upload wizard and search by data: size limits before reading, bad files, results."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.learnwares.models import LearnwareVersion
from tests.marketplace.portal.factories import COLUMNS, csv_rows, make_learnware, make_space
from tests.support import packages

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def zip_upload(data: bytes, name: str = "package.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def test_upload_needs_a_login(web):
    response = web.get("/learnwares/new/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_valid_package_goes_to_its_publish_page(web_for, alice):
    client = web_for(alice)
    response = client.post(
        "/learnwares/new/", {"package": zip_upload(packages.build_table_model_package(name="wizard"))}
    )
    version = LearnwareVersion.objects.get(learnware__name="wizard")
    assert response.status_code == 302 and response["Location"] == f"/learnwares/{version.learnware_id}/v1/"
    page = text(client.get(response["Location"]))
    assert f'data-job-url="/api/v1/jobs/{version.job_id}/"' in page  # JS follows the job
    assert 'http-equiv="refresh"' in page  # and without JS the page reloads itself


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("model.pt", b"PK\x03\x04", "a learnware package is a .zip"),
        ("empty.zip", b"", "empty"),
        ("junk.zip", b"this is not a zip", "upload:user:"),
    ],
)
def test_upload_refuses_bad_files_with_a_message(web_for, alice, name, data, message):
    response = web_for(alice).post("/learnwares/new/", {"package": zip_upload(data, name)})
    assert response.status_code == 400 and message in text(response)
    assert not LearnwareVersion.objects.filter(learnware__owner=alice).exists()


def test_upload_refuses_a_package_failing_its_checks_and_names_the_file(web_for, alice):
    bad = packages.build_table_model_package(model=packages.pickle_model_bytes(3, 2))
    response = web_for(alice).post("/learnwares/new/", {"package": zip_upload(bad)})
    assert response.status_code == 400
    assert "upload:user:pickle-artifact" in text(response) and "model.pt" in text(response)


def test_upload_over_the_limit_is_refused_before_the_body_is_read(web_for, alice, settings):
    settings.LWM_MAX_UPLOAD_BYTES = 1000
    client = web_for(alice)
    # Content-Length alone decides: a body the view never parses.
    response = client.generic(
        "POST",
        "/learnwares/new/",
        b"x" * 10,
        CONTENT_TYPE="multipart/form-data; boundary=B",
        CONTENT_LENGTH=str(10 * 2**20),
    )
    assert response.status_code == 413
    # A body larger than the limit but announced within the overhead is stopped while streaming.
    big = client.post("/learnwares/new/", {"package": zip_upload(b"PK" + b"\0" * 5000)})
    assert big.status_code == 413 and "File too large" in text(big)


def test_upload_without_a_csrf_token_is_forbidden(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post("/learnwares/new/", {"package": zip_upload(packages.build_table_model_package())})
    assert (
        response.status_code == 403 and not LearnwareVersion.objects.filter(learnware__owner=alice).exists()
    )


def test_a_new_version_is_uploaded_to_ones_own_learnware_only(web_for, alice, bob):
    version = make_learnware(alice, name="versioned")
    assert web_for(bob).get(f"/learnwares/new/?learnware={version.learnware_id}").status_code == 404
    assert web_for(alice).get(f"/learnwares/new/?learnware={version.learnware_id}").status_code == 200


def test_search_by_data_ranks_the_closest_learnware_first_and_remembers_the_data(web, alice):
    near = make_learnware(alice, name="near", shift=0.0)
    make_learnware(alice, name="far", shift=4.0)
    space = make_space()
    response = web.post(
        "/search/data/",
        {"feature_space": space.key, "k": 5, "file": SimpleUploadedFile("mine.csv", csv_rows(40, shift=0.0))},
    )
    page = text(response)
    assert response.status_code == 200
    assert page.index(">near<") < page.index(">far<")
    assert web.session["portal:search-rkme"]["feature_space"] == space.key
    compared = text(web.get(f"/learnwares/{near.learnware_id}/?compare=1"))
    assert "your data (from your last search)" in compared
    assert compared.count("#d1242f") > 1  # the user's points are drawn


def test_search_by_data_accepts_an_rkme_json(web, alice):
    from specs import RKMESpecification, rkme_to_json

    make_learnware(alice, name="only")
    space = make_space()
    import numpy as np

    rkme = rkme_to_json(
        RKMESpecification(5, space.gamma, random_state=0).fit(np.random.default_rng(1).normal(size=(30, 3)))
    )
    response = web.post(
        "/search/data/",
        {"feature_space": space.key, "k": 5, "file": SimpleUploadedFile("rkme.json", rkme.encode())},
    )
    assert response.status_code == 200 and ">only<" in text(response)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("wide.csv", b"p,q,r,s\n1,2,3,4\n", "names 4 columns (p, q, r, s) that no space has"),
        ("unnamed.csv", b"1,2,3,4\n5,6,7,8\n", "has 4 unnamed columns"),
        ("words.csv", b"a,b,c\n1,two,3\n", "not a numeric CSV"),
        ("bad.json", b'{"Z": 1}', "rkme:"),
        ("data.xlsx", b"1,2,3\n", "use a .csv, .npz, .txt, .jsonl or rkme .json"),
        ("texts.txt", b"some words\n", "holds raw texts, which does not fit the space you chose"),
    ],
)
def test_search_by_data_explains_bad_files(web, alice, name, content, message):
    """Each bad file is answered 400 with a sentence naming what the file holds and what fits."""
    make_learnware(alice)
    response = web.post(
        "/search/data/",
        {"feature_space": make_space().key, "k": 5, "file": SimpleUploadedFile(name, content)},
    )
    assert response.status_code == 400 and message in text(response)


def test_search_by_data_refuses_an_unknown_space(web, alice):
    make_learnware(alice)
    response = web.post(
        "/search/data/", {"feature_space": "nope", "k": 5, "file": SimpleUploadedFile("a.csv", csv_rows())}
    )
    assert response.status_code == 400 and "not one of the available choices" in text(response)


def test_search_by_data_never_returns_private_learnwares_of_others(web_for, alice, bob):
    make_learnware(alice, name="alices-private", visibility="private")
    make_learnware(alice, name="alices-public", shift=3.0)
    page = text(
        web_for(bob).post(
            "/search/data/",
            {"feature_space": make_space().key, "k": 5, "file": SimpleUploadedFile("a.csv", csv_rows())},
        )
    )
    assert "alices-public" in page and "alices-private" not in page
    assert json.dumps(COLUMNS)  # the factory's columns are the space's


def test_search_by_data_detects_the_space_from_the_csv_header_without_a_choice(web, alice):
    make_learnware(alice, name="only")
    from marketplace.learnwares.models import FeatureSpace

    # Same width, other columns: the header decides, not the width.
    FeatureSpace.objects.create(
        key="table-other", kind="table", dim=3, gamma=0.1, schema={"columns": ["x", "y", "z"]}
    )
    response = web.post("/search/data/", {"k": 5, "file": SimpleUploadedFile("mine.csv", csv_rows(30))})
    page = text(response)
    assert response.status_code == 200, page
    assert 'data-detected-space="table-portal"' in page and ">only<" in page
    assert "table: a, b, c (3 columns)" in page


def test_search_by_data_matches_columns_by_name_and_shows_the_match(web, alice):
    make_learnware(alice, name="near", shift=0.0)
    make_learnware(alice, name="far", shift=4.0)
    rows = np.loadtxt(io.BytesIO(csv_rows(40, shift=0.0)), delimiter=",", skiprows=1)
    # Columns c, a, b as "c, row_id, alpha, b" with a renamed: same rows, another layout.
    body = "c,row_id,alpha,b\n" + "\n".join(f"{r[2]},{i},{r[0]},{r[1]}" for i, r in enumerate(rows))
    response = web.post(
        "/search/data/",
        {"k": 5, "column_map": "alpha=a", "file": SimpleUploadedFile("mine.csv", body.encode())},
    )
    page = text(response)
    assert response.status_code == 200, page
    assert page.index(">near<") < page.index(">far<")
    assert "data-column-match" in page and "data-columns-extra>row_id<" in page
    bad = web.post(
        "/search/data/",
        {"k": 5, "column_map": "alpha", "file": SimpleUploadedFile("mine.csv", body.encode())},
    )
    assert bad.status_code == 400 and "your_name=learnware_name" in text(bad)
