import pytest

from marketplace.jobs.services import job_create

pytestmark = pytest.mark.django_db


def test_the_owner_reads_a_job(alice, client_for):
    job = job_create(kind="test", owner=alice)
    response = client_for(alice).get(f"/api/v1/jobs/{job.id}/")
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["kind"] == "test"


def test_another_user_gets_404_and_anonymous_gets_401(alice, bob, client_for, api):
    job = job_create(kind="test", owner=alice)
    assert client_for(bob).get(f"/api/v1/jobs/{job.id}/").status_code == 404
    response = api.get(f"/api/v1/jobs/{job.id}/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_cancel_through_the_api(alice, client_for):
    job = job_create(kind="test", owner=alice)
    response = client_for(alice).post(f"/api/v1/jobs/{job.id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client_for(alice).post(f"/api/v1/jobs/{job.id}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job:user:already-finished"
