"""Search by data in Chromium: "Use these renames" fills the "Rename columns" field with the suggested
matches and never submits the form (static/js/renames.js); the user's own renames are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.marketplace.portal.factories import make_learnware
from tests.marketplace.portal.test_column_renames import renamed_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _could_submit(request: Any) -> bool:
    return bool(
        request.is_navigation_request()
        or request.method != "GET"
        or request.resource_type in ("xhr", "fetch")
    )


def test_use_these_renames_fills_the_field_and_does_not_submit(
    page: Any, shots: Any, live_server: Any, alice: Any, tmp_path: Path
) -> None:
    make_learnware(alice, name="near")
    data = tmp_path / "mine.csv"
    data.write_bytes(renamed_csv())
    page.goto(f"{live_server.url}/search/data/")
    page.get_by_label("File").set_input_files(str(data))
    page.get_by_role("button", name="Search").click()
    page.locator("[data-column-suggestions]").wait_for()
    field = page.get_by_label("Rename columns")
    assert field.input_value() == ""
    field.fill("row_id=id_that_stays")  # the user's own rename survives the click
    # Only what a submission could be: a navigation, a POST or a script's fetch. A late GET of the
    # previous page's favicon or stylesheet is not the form being sent.
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if _could_submit(r) else None)
    url = page.url
    button = page.get_by_role("button", name="Use these renames")
    assert button.is_visible() and page.locator("[data-renames-link]").is_hidden()
    button.click()
    assert field.input_value() == "row_id=id_that_stays, a_value=a"
    assert page.locator("[data-use-renames-status]").is_visible()
    assert "Choose your file again" in page.locator("[data-use-renames-status]").inner_text()
    page.wait_for_timeout(500)
    assert page.url == url and sent == []  # nothing was sent: the form was not submitted
    assert page.evaluate("() => document.activeElement.name") == "column_map"
    shots("renames-filled")
