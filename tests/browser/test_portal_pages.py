"""Every portal page in Chromium at 1440×900 and 390×844, on one seeded market for the module.

The market is seeded once through the real path (packages uploaded by the upload service,
published by the session's Celery worker, a labelled task assembled by it) and served by
one live server for all tests here; the database is flushed when the module ends. Checks:
no horizontal overflow at phone width, screenshots of every page at both sizes
(test-artifacts/browser/pages-*.png), axe-core (vendored, offline) on every page, badge
contrast in both colour schemes, focus order, API docs offline, the empty state of a
gibberish query, a CSV search without choosing a space, the results page's primary action,
and each modality's Python snippet run as written against this server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from django.test.utils import override_settings

from tests.browser.conftest import ARTIFACTS
from tests.support import packages

os.environ.setdefault("LWM_RKME_K", "10")
os.environ.setdefault("LWM_SANDBOX_WALL_SECONDS", "60")

# The mark puts the test database in the session's setup; each test's own transaction stays empty
# (the browser's requests are served by the live server thread, which commits on its own).
pytestmark = [pytest.mark.browser, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("vendor") / "axe-core-4.14.1" / "axe.min.js"
SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
COLUMNS = ["f1", "f2", "f3"]
JOB_TIMEOUT = float(
    os.environ.get("LWM_BROWSER_JOB_TIMEOUT", "300")
)  # s: five publishes and one task on 2 shared cores
PASSWORD = "pages-Pass-2024"


@dataclass
class Market:
    url: str
    learnwares: dict[str, int] = field(default_factory=dict)  # role -> learnware id
    submission: str = ""
    cookies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user -> session cookie
    worker: Any = None

    def finished_submission(self) -> Any:
        from marketplace.jobs.models import Job
        from marketplace.submissions.models import Submission

        job_id = Submission.objects.get(id=self.submission).job_id
        try:
            _wait(lambda: Job.objects.get(id=job_id).is_terminal, "the task's pipeline")
        except AssertionError:
            job = Job.objects.get(id=job_id)
            raise AssertionError(
                f"task still {job.status} at {job.stage} ({job.message})\n{self.worker.log_tail()}"
            ) from None
        job = Job.objects.get(id=job_id)
        assert job.status == "succeeded", (job.status, job.error, self.worker.log_tail())
        return Submission.objects.get(id=self.submission)


def _rows(n: int, *, seed: int, shift: float = 0.0) -> np.ndarray:
    return packages.table_data(COLUMNS, n, seed=seed, shift=shift)


def _labelled_csv(X: np.ndarray) -> str:
    labels = np.where(X[:, 0] > np.median(X[:, 0]), "class1", "class0")
    return (
        ",".join(COLUMNS)
        + ",label\n"
        + "\n".join(",".join(f"{v:.5f}" for v in row) + f",{y}" for row, y in zip(X, labels, strict=True))
        + "\n"
    )


def _wait(predicate: Any, what: str, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _seed(url: str, worker: Any) -> Market:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from marketplace.learnwares.models import LearnwareVersion

    users = get_user_model().objects
    publisher = users.create_user("publisher", "publisher@example.com", PASSWORD)
    visitor = users.create_user("visitor", "visitor@example.com", PASSWORD)
    users.create_superuser("root", "root@example.com", PASSWORD)
    texts = [
        "Shares rose after the company reported strong results.",
        "The striker scored twice in the final.",
        "Parliament voted on the budget today.",
        "The new phone has a faster chip.",
    ] * 5
    uploads = {
        "table": packages.build_table_model_package(
            COLUMNS,
            2,
            name="churn-classifier",
            data=_rows(80, seed=0),
            seed=0,
            sample="csv",
            manifest={
                "description": "Predicts **customer churn** from three usage features. ![chart](https://tracker.example/c.png)",
                "tags": ["churn", "customers"],
            },
        ),
        "table-shifted": packages.build_table_model_package(
            COLUMNS,
            2,
            name="sensor-fault-classifier",
            data=_rows(80, seed=1, shift=4.0),
            seed=1,
            sample="csv",
            manifest={
                "description": "Flags faulty sensors from three shifted readings.",
                "tags": ["sensors"],
            },
        ),
        "image": packages.build_image_model_package(
            (1, 8, 8),
            3,
            name="tiny-glyph-classifier",
            sample="npz",
            seed=2,
            manifest={"description": "Classifies 8×8 glyph images into three shapes."},
        ),
        "text": packages.build_text_model_package(
            2,
            name="news-topic-head",
            sample=texts,
            seed=3,
            manifest={
                "description": "Business or sport? A head on MiniLM sentence embeddings of news texts."
            },
        ),
        "adapter": packages.build_lora_adapter_package(
            name="minilm-news-lora",
            seed=4,
            manifest={"description": "A LoRA adapter on MiniLM for news texts."},
        ),
    }
    import requests

    from marketplace.accounts.services import api_token_create

    # Through the public API of the live server, as a publisher and a user would (the worker publishes).
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {api_token_create(user=publisher, name='seed')[1]}"
    market = Market(url=url)
    versions = {}
    for role, data in uploads.items():
        r = http.post(
            f"{url}/api/v1/learnwares/",
            files={"package": (f"{role}.zip", data, "application/zip")},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        body = r.json()
        market.learnwares[role] = int(body["learnware"])
        versions[role] = LearnwareVersion.objects.get(learnware_id=market.learnwares[role], number=1).id

    def all_published() -> bool:
        statuses = dict(LearnwareVersion.objects.filter(id__in=versions.values()).values_list("id", "status"))
        if any(s in ("rejected", "failed") for s in statuses.values()):
            raise AssertionError(f"a seed package was not published: {statuses}\n{worker.log_tail()}")
        return all(s == "published" for s in statuses.values()) and len(statuses) == len(versions)

    try:
        _wait(all_published, "five published learnwares")
    except AssertionError as exc:
        states = list(
            LearnwareVersion.objects.filter(id__in=versions.values()).values_list("status", "job__status")
        )
        raise AssertionError(f"{exc}: {states}\n{worker.log_tail()}") from None
    data_X = np.vstack([_rows(40, seed=5), _rows(40, seed=6, shift=4.0)])
    labelled = _labelled_csv(np.vstack([_rows(45, seed=7), _rows(45, seed=8, shift=4.0)]))
    http.headers["Authorization"] = f"Bearer {api_token_create(user=visitor, name='seed')[1]}"
    r = http.post(
        f"{url}/api/v1/submissions/",
        data={"name": "churn task", "task": "classification"},
        timeout=60,
        files={
            "data": ("data.csv", packages.csv_text(COLUMNS, data_X), "text/csv"),
            "labelled": ("labelled.csv", labelled, "text/csv"),
        },
    )
    assert r.status_code == 202, r.text
    # The worker assembles the task while the page tests run; the results test (last) waits for it.
    market.submission = str(r.json()["submission"]["id"])
    market.worker = worker
    host = urlparse(url).hostname
    for user in (visitor, publisher, users.get(username="root")):
        client = Client()
        client.force_login(user)
        market.cookies[user.username] = [
            {"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host, "path": "/"}
        ]
    return market


@pytest.fixture(scope="module")
def market(django_db_setup: Any, django_db_blocker: Any, celery_worker: Any, s3_endpoint: Any) -> Any:
    from django.conf import settings
    from django.core.management import call_command
    from pytest_django.live_server_helper import LiveServer

    storages = {**settings.STORAGES, "default": s3_endpoint.storage_settings()}
    with django_db_blocker.unblock(), override_settings(STORAGES=storages, LWM_SUBMISSION_MAX_ACTIVE=100):
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()
        try:
            yield _seed(server.url, celery_worker)
        finally:
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", interactive=False, verbosity=0)  # later tests expect an empty database


def _context(browser: Any, market: Market, size: str, user: str | None = None, **kw: Any) -> Any:
    context = browser.new_context(viewport=SIZES[size], accept_downloads=True, **kw)
    context.set_default_timeout(30_000)
    if user:
        context.add_cookies(market.cookies[user])
    return context


def _pages(market: Market) -> list[tuple[str, str, str | None]]:
    """(name, path, user) of every portal page; pages of a signed-in user use the visitor or publisher."""
    lw = market.learnwares
    return [
        ("home", "/", None),
        ("browse", "/learnwares/", None),
        ("browse-query", "/learnwares/?q=customer+churn", None),
        ("browse-empty", "/learnwares/?q=xqzvbnm+plorf", None),
        ("browse-filtered", "/learnwares/?modality=table", None),
        ("search-by-data", "/search/data/", None),
        ("learnware-table", f"/learnwares/{lw['table']}/", None),
        ("learnware-image", f"/learnwares/{lw['image']}/", None),
        ("learnware-text", f"/learnwares/{lw['text']}/", None),
        ("learnware-adapter", f"/learnwares/{lw['adapter']}/", None),
        ("version", f"/learnwares/{lw['table']}/v1/", "publisher"),
        ("edit-card", f"/learnwares/{lw['table']}/edit/", "publisher"),
        ("publish", "/learnwares/new/", "publisher"),
        ("submit-task", "/tasks/new/", "visitor"),
        ("task-results", f"/tasks/{market.submission}/", "visitor"),
        ("account", "/accounts/", "visitor"),
        ("tokens", "/accounts/tokens/", "visitor"),
        ("my-learnwares", "/accounts/learnwares/", "publisher"),
        ("my-tasks", "/accounts/tasks/", "visitor"),
        ("login", "/accounts/login/", None),
        ("signup", "/accounts/signup/", None),
        ("password-reset", "/accounts/password/reset/", None),
        ("not-found", "/no-such-page/", None),
        ("method-not-allowed", f"/learnwares/{lw['table']}/delete/", "publisher"),
        ("api-docs", "/api/v1/docs/", None),
    ]


EXPECTED_STATUS = {"not-found": 404, "method-not-allowed": 405}


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return list(result)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_page_fits_the_screen_passes_axe_and_is_saved(browser: Any, market: Market, size: str) -> None:
    problems: list[str] = []
    contexts: dict[str | None, Any] = {}
    try:
        for name, path, user in _pages(market):
            if user not in contexts:
                # bypass_csp only lets the test inject axe-core; the CSP itself is tested in
                # test_site_policy.py.
                contexts[user] = _context(browser, market, size, user, bypass_csp=True)
            page = contexts[user].pages[0] if contexts[user].pages else contexts[user].new_page()
            response = page.goto(market.url + path)
            assert response is not None and response.status == EXPECTED_STATUS.get(name, 200), (
                name,
                response and response.status,
            )
            if name == "api-docs":
                page.locator(".opblock").first.wait_for()
            widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            if widths[0] > widths[1]:
                problems.append(f"{name}: page is {widths[0]} px wide in a {widths[1]} px window")
            page.screenshot(path=str(ARTIFACTS / f"pages-{size}-{name}.png"), full_page=True)
            if name != "api-docs":  # Swagger UI is a third-party page; ours are held to AA
                for v in _axe(page):
                    if v["impact"] in ("serious", "critical"):
                        problems.append(f"{name}: axe {v['id']} ({v['help']}) at {v['nodes']}")
    finally:
        for context in contexts.values():
            context.close()
    assert not problems, "\n".join(problems)


def _contrast(fg: str, bg: str) -> float:
    def lum(css: str) -> float:
        r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    a, b = sorted((lum(fg), lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_badges_meet_aa_contrast_and_dark_mode_applies(browser: Any, market: Market, scheme: str) -> None:
    context = _context(browser, market, "desktop", "visitor", color_scheme=scheme)
    page = context.new_page()
    try:
        seen = {}
        for path in (
            f"/learnwares/{market.learnwares['table']}/",
            f"/tasks/{market.submission}/",
            "/accounts/learnwares/",
        ):
            page.goto(market.url + path)
            for fg, bg, cls in page.evaluate("""() => [...document.querySelectorAll('.badge')].map(b => {
                const s = getComputedStyle(b); return [s.color, s.backgroundColor, b.className]; })"""):
                seen[cls] = _contrast(fg, bg)
        body = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        page.screenshot(path=str(ARTIFACTS / f"pages-{scheme}-my-learnwares.png"), full_page=True)
    finally:
        context.close()
    assert {"badge", "badge ok", "badge info"} <= set(seen), seen
    assert all(ratio >= 4.5 for ratio in seen.values()), seen
    dark = _contrast(body, "rgb(0, 0, 0)") < 1.5
    assert dark is (scheme == "dark"), body


def test_keyboard_focus_starts_at_the_skip_link_and_follows_the_page(browser: Any, market: Market) -> None:
    context = _context(browser, market, "desktop")
    page = context.new_page()
    try:
        page.goto(f"{market.url}/learnwares/{market.learnwares['table']}/")
        order = []
        for _ in range(12):
            page.keyboard.press("Tab")
            order.append(
                page.evaluate(
                    "() => [document.activeElement.textContent.trim().slice(0, 40), "
                    "document.activeElement.getBoundingClientRect().top]"
                )
            )
        assert order[0][0] == "Skip to content" and order[1][0].startswith("Learnware")
        nav = [text for text, _ in order[2:7]]
        assert nav == ["Browse", "Search by data", "Submit a task", "Publish", "API"], nav
        page.keyboard.press("Shift+Tab")
        assert (
            page.evaluate(
                "() => document.querySelectorAll("
                '\'[tabindex]:not([tabindex="-1"]):not([tabindex="0"])\').length'
            )
            == 0
        )
        # The tabs follow the ARIA pattern: arrow keys move between them.
        tab = page.get_by_role("tab", name="Model card")
        tab.focus()
        page.keyboard.press("ArrowRight")
        assert page.get_by_role("tab", name="Files and versions").get_attribute("aria-selected") == "true"
        assert page.locator("#panel-files").is_visible() and not page.locator("#panel-card").is_visible()
        rows = page.locator("#files-h ~ .table-wrap tbody tr")
        assert rows.count() >= 2 and re.fullmatch(
            r"[0-9a-f]{64}", rows.first.locator("td").nth(2).inner_text()
        )
    finally:
        context.close()


def test_api_docs_render_without_any_outside_request(browser: Any, market: Market) -> None:
    context = _context(browser, market, "desktop")
    outside: list[str] = []
    host = urlparse(market.url).netloc

    def guard(route: Any) -> None:
        if urlparse(route.request.url).netloc == host or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    try:
        page.goto(f"{market.url}/api/v1/docs/")
        page.locator(".opblock").first.wait_for()
        assert page.locator(".opblock").count() > 10
        assert "Learnware Market API" in page.locator(".info .title").inner_text()
    finally:
        context.close()
    assert outside == []


def test_a_gibberish_query_shows_the_empty_state_and_a_real_one_finds_its_card(
    browser: Any, market: Market
) -> None:
    context = _context(browser, market, "phone")
    page = context.new_page()
    try:
        page.goto(f"{market.url}/learnwares/?q=xqzvbnm+plorf")
        page.screenshot(path=str(ARTIFACTS / "pages-phone-gibberish-query.png"), full_page=True)
        empty = page.locator("[data-empty-state]")
        assert empty.count() == 1, page.locator("main").inner_text()[:1500]
        assert "No learnware matches" in empty.inner_text()
        assert page.locator(".lw-card").count() == 0
        assert page.locator("[data-empty-state] a.badge").count() >= 1  # suggestions
        page.goto(f"{market.url}/learnwares/?q=customer+churn")
        assert page.locator(".lw-card h3 a").first.inner_text() == "churn-classifier"
        # On a phone the filters are folded into a drawer above the results, and the sort applies on change.
        assert page.locator("details.drawer").get_attribute("open") is None
        page.get_by_label("Sort by").select_option("newest")
        page.wait_for_url(re.compile(r"sort=newest"))
    finally:
        context.close()


def test_a_csv_search_works_without_choosing_a_space(browser: Any, market: Market, tmp_path: Path) -> None:
    data = tmp_path / "my-rows.csv"
    data.write_text(
        packages.csv_text(COLUMNS, np.vstack([_rows(30, seed=11), _rows(30, seed=12, shift=4.0)]))
    )
    context = _context(browser, market, "phone")
    page = context.new_page()
    try:
        page.goto(f"{market.url}/search/data/")
        assert page.get_by_label("Feature space").input_value() == ""  # "Detect from my file"
        page.get_by_label("File").set_input_files(str(data))
        page.get_by_role("button", name="Search").click()
        page.locator("#results-h").wait_for()
        assert "table: f1, f2, f3 (3 columns)" in page.locator("#results-h").inner_text()
        names = page.locator("#results-h ~ .table-wrap tbody tr td:nth-child(2) a").all_inner_texts()
        assert set(names) == {"churn-classifier", "sensor-fault-classifier"}
        page.screenshot(path=str(ARTIFACTS / "pages-phone-search-by-data-results.png"), full_page=True)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def _run_snippet(code: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT)]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("LWM_TOKEN", None)
    (workdir / "snippet.py").write_text(code)
    return subprocess.run(
        [sys.executable, "snippet.py"], cwd=workdir, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.parametrize(
    "role,expect",
    [
        ("table", r"class[01]"),
        ("image", r"c[0-2]"),
        ("text", r"t[01]"),
        ("adapter", r"torch\.Size\(\[2, 384\]\)"),
    ],
)
def test_the_python_snippet_of_each_modality_runs_as_written(
    browser: Any, market: Market, tmp_path: Path, role: str, expect: str
) -> None:
    context = _context(browser, market, "phone")
    page = context.new_page()
    try:
        page.goto(f"{market.url}/learnwares/{market.learnwares[role]}/")
        page.get_by_role("link", name="Use this learnware").first.click()
        python = page.locator("[data-snippet=python] code")
        assert python.is_visible()
        code = python.inner_text()
        page.get_by_role("tab", name="CLI", exact=True).click()
        cli = page.locator("[data-snippet=cli] code").inner_text()
        assert f"lwm download {market.learnwares[role]} --version 1" in cli
        assert page.locator("[data-snippet=python]").is_hidden()
    finally:
        context.close()
    done = _run_snippet(code, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert re.search(expect, done.stdout), done.stdout
    what = {
        "table": "3 numeric columns in this order: f1, f2, f3",
        "image": "(n, 1, 8, 8)",
        "text": "raw texts in",
        "adapter": "PeftModel.from_pretrained",
    }[role]
    assert what in code, code
    assert json.dumps(market.url)[1:-1] in code  # the snippet talks to this very server


def _expected_winner(evaluation: dict[str, Any]) -> str:
    """The kind that won on held-out rows, read from the report independently of the page's code."""
    if isinstance(evaluation.get("winner"), dict):
        return evaluation["winner"]["kind"]
    metric = evaluation["metric"]
    scratch = evaluation["baselines"]["from_scratch"]
    scores = {
        "assembly": evaluation["methods"][evaluation["chosen"]][metric],
        "best_single": evaluation["baselines"]["best_single"]["score"],
        "from_scratch": scratch["models"][scratch["best"]][metric],
    }
    top = max(scores.values())
    return next(kind for kind in ("assembly", "best_single", "from_scratch") if scores[kind] == top)


def test_the_results_page_primary_action_downloads_the_measured_winner(browser: Any, market: Market) -> None:
    from marketplace.learnwares.models import LearnwareVersion

    submission = market.finished_submission()
    evaluation = submission.results["evaluate"]
    winner = _expected_winner(evaluation)
    if winner == "best_single":
        version = LearnwareVersion.objects.get(id=evaluation["baselines"]["best_single"]["version_id"])
        expected_sha = version.artifact_sha256
    else:
        expected_sha = submission.package_sha256
    context = _context(browser, market, "phone", "visitor")
    page = context.new_page()
    try:
        page.goto(f"{market.url}/tasks/{market.submission}/")
        card = page.locator("[data-winner-kind]")
        assert card.get_attribute("data-winner-kind") == winner
        page.screenshot(path=str(ARTIFACTS / "pages-phone-task-results-finished.png"), full_page=True)
        primary = page.locator("[data-primary-action]")
        assert primary.count() == 1 and primary.inner_text().startswith("Download the winner")
        with page.expect_download() as info:
            primary.click()
        content = Path(info.value.path()).read_bytes()
        assert hashlib.sha256(content).hexdigest() == expected_sha
        assert "learnware.yaml" in zipfile.ZipFile(io.BytesIO(content)).namelist()
        # Scores are explained where they appear: every ranking column has a tooltip.
        titles = page.locator("#rank-h ~ .table-wrap thead abbr").evaluate_all("els => els.map(e => e.title)")
        assert titles and all(len(t) > 20 for t in titles)
    finally:
        context.close()
