"""Suggested column renames on the search-by-data page: one button per suggestion set that fills the
"Rename columns" field (static/js/renames.js; the browser side is tests/browser/test_column_renames.py),
and a link that opens the search page with the field filled."""

from __future__ import annotations

import html
import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketplace.portal.forms import format_column_map, parse_column_map
from tests.marketplace.portal.factories import csv_rows, make_learnware

pytestmark = pytest.mark.django_db


def renamed_csv() -> bytes:
    """The factory's columns a, b, c as ``c, row_id, a_value, b``: ``a`` is missing, two are extra."""
    rows = np.loadtxt(io.BytesIO(csv_rows(40)), delimiter=",", skiprows=1)
    body = "c,row_id,a_value,b\n" + "\n".join(f"{r[2]},{i},{r[0]},{r[1]}" for i, r in enumerate(rows))
    return body.encode()


def test_format_column_map_is_read_back_by_parse_column_map():
    renames = [{"yours": "departure_delay", "theirs": "dep_delay"}, {"yours": "dist", "theirs": "distance"}]
    text = format_column_map(renames)
    assert parse_column_map(text) == {"departure_delay": "dep_delay", "dist": "distance"}


def test_the_results_carry_a_use_these_renames_button_with_the_suggested_map(web, alice):
    make_learnware(alice, name="near")
    response = web.post("/search/data/", {"k": 5, "file": SimpleUploadedFile("mine.csv", renamed_csv())})
    page = response.content.decode()
    assert response.status_code == 200, page
    assert "data-columns-missing>a<" in page
    button = re.search(r'<button type="button"[^>]*data-use-renames="([^"]*)"[^>]*>([^<]*)</button>', page)
    assert button is not None, page
    suggested = parse_column_map(html.unescape(button.group(1)))
    assert suggested == {"a_value": "a"}  # the extra id column is not proposed
    assert button.group(2) == "Use these renames" and "hidden" in button.group(0)  # shown by the script
    assert 'src="/static/js/renames.js"' in page
    # Without the script: a link to a new search with the field filled (the form never submits itself).
    link = re.search(r'href="([^"]*)" data-renames-link', page)
    assert link is not None
    follow = web.get(html.unescape(link.group(1)))
    assert follow.status_code == 200
    field = re.search(r'<input[^>]*name="column_map"[^>]*>', follow.content.decode())
    assert field is not None and 'value="a_value=a"' in field.group(0)


def test_no_button_and_no_script_without_suggestions(web, alice):
    make_learnware(alice, name="near")
    response = web.post("/search/data/", {"k": 5, "file": SimpleUploadedFile("mine.csv", csv_rows(40))})
    page = response.content.decode()
    assert response.status_code == 200, page
    assert "data-use-renames" not in page and "js/renames.js" not in page


def test_a_task_refused_for_missing_columns_links_a_new_task_with_the_suggested_renames(web_for, alice):
    from marketplace.jobs.choices import JobStatus
    from marketplace.jobs.models import Job
    from marketplace.submissions.models import Submission

    # The error the worker stores (workers/pipelines/reuse_spec.py): the missing columns and the hints.
    error = {
        "code": "submission:user:missing-columns",
        "message": "data lacks a",
        "details": {
            "missing": ["a"],
            "suggestions": [{"yours": "a_value", "theirs": "a", "confidence": 0.5}],
        },
    }
    job = Job.objects.create(kind="submission", owner=alice, status=JobStatus.REJECTED, error=error)
    submission = Submission.objects.create(owner=alice, job=job, data_format="csv", results={}, name="t")
    client = web_for(alice)
    page = client.get(f"/tasks/{submission.id}/").content.decode()
    assert "data-column-suggestions" in page and "a_value=a" in page
    link = re.search(r'href="([^"]*)" data-renames-link>New task with these renames<', page)
    assert link is not None
    form = client.get(html.unescape(link.group(1)))
    assert form.status_code == 200
    field = re.search(r'<input[^>]*name="column_map"[^>]*>', form.content.decode())
    assert field is not None and 'value="a_value=a"' in field.group(0)
    # Nothing is shown for a task without suggestions.
    plain = Submission.objects.create(owner=alice, job=None, data_format="csv", results={}, name="u")
    assert "data-renames-link" not in client.get(f"/tasks/{plain.id}/").content.decode()
