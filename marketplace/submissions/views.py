"""Portal pages of submissions: submit a task, follow it stage by stage, read and reuse its results."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from marketplace.core.exceptions import ApplicationError
from marketplace.jobs.choices import JobStatus
from marketplace.learnwares import services as learnware_services
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.portal.charts import Bar, bar_chart
from marketplace.portal.forms import SubmissionForm
from marketplace.portal.outcome import Outcome, task_outcome
from marketplace.portal.submission_usage import base_package_snippet, package_base
from marketplace.portal.uploads import limited_upload
from marketplace.submissions import conf
from marketplace.submissions.adapter_view import adapter_view
from marketplace.submissions.choices import STAGES, AssemblyMethod, DataFormat, Stage
from marketplace.submissions.models import Submission
from marketplace.submissions.ranking_chart import ranking_view
from marketplace.submissions.selectors import submission_get
from marketplace.submissions.services import submission_cancel, submission_create

_FORMATS = {
    ".csv": DataFormat.CSV,
    ".npz": DataFormat.NPZ,
    ".json": DataFormat.RKME,
    ".zip": DataFormat.IMAGES,
}


def _format(name: str) -> str:
    return next(fmt for suffix, fmt in _FORMATS.items() if name.lower().endswith(suffix))


def _own(request: HttpRequest, submission_id: Any) -> Submission:
    submission = submission_get(submission_id=submission_id, user=request.user)
    if submission is None:
        raise Http404("submission not found")
    return submission


@login_required
@limited_upload(lambda: 2 * conf.max_bytes())  # the data file and the labelled sample
def submission_new(request: HttpRequest) -> HttpResponse:
    # "New task with these renames" on a task refused for missing columns fills "Rename columns".
    initial = {"column_map": request.GET.get("column_map", "")}
    form = SubmissionForm(request.POST or None, request.FILES or None, initial=initial)
    error = None
    if request.method == "POST" and form.is_valid():
        data, labelled = form.cleaned_data["data"], form.cleaned_data.get("labelled")
        fmt = _format(data.name)
        try:
            submission = submission_create(
                owner=request.user,
                data_format=fmt,
                data=None if fmt == DataFormat.RKME else data,
                rkme_json=data.read().decode("utf-8", errors="replace") if fmt == DataFormat.RKME else None,
                labelled=labelled,
                labelled_format=_format(labelled.name) if labelled else "",
                requirements=form.requirements(),
                task=form.cleaned_data["task"],
                name=form.cleaned_data["name"],
                modality=form.cleaned_data["modality"],
            )
        except ApplicationError as exc:
            error = exc
        else:
            return redirect("submission-page", submission_id=submission.id)
    context = {"form": form, "error": error, "max_bytes": conf.max_bytes()}
    return render(request, "submissions/new.html", context, status=400 if (form.errors or error) else 200)


def _stages(submission: Submission) -> list[dict[str, Any]]:
    job = submission.job
    current = job.stage if job else ""
    failed = job is not None and job.status in (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.CANCELLED)
    out = []
    for stage in STAGES:
        result = submission.stage_result(stage)
        state = (
            "done"
            if result is not None
            else ("failed" if failed and stage == current else "active" if stage == current else "waiting")
        )
        out.append(
            {
                "key": stage,
                "label": Stage(stage).label,
                "state": state,
                "seconds": result.get("seconds") if result else None,
            }
        )
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _methods_chart(evaluation: dict[str, Any]) -> Any:
    """Every method's held-out score against the best-single and from-scratch baselines."""
    metric = evaluation.get("metric")
    if not evaluation.get("labelled") or not metric:
        return None
    bars = [
        Bar(
            AssemblyMethod(name).label if name in AssemblyMethod.values else name,
            scores.get(metric),
            "chosen" if name == evaluation.get("chosen") else "default",
        )
        for name, scores in evaluation.get("methods", {}).items()
        if _finite(scores.get(metric))
    ]
    single = evaluation["baselines"]["best_single"]
    if _finite(single.get("score")):
        bars.append(Bar(f"Baseline: best single ({single.get('name', '')})", single["score"], "baseline"))
    scratch = evaluation["baselines"]["from_scratch"]
    best = scratch.get("models", {}).get(scratch.get("best"), {})
    if _finite(best.get(metric)):
        bars.append(Bar(f"Baseline: from scratch ({scratch['best']})", best[metric], "baseline"))
    lo = 0.0 if metric == "accuracy" else None
    hi = 1.0 if metric in ("accuracy", "r2") else None
    return bar_chart(bars, title=f"Held-out {metric} of each method and the two baselines", lo=lo, hi=hi)


def _mixture_chart(identify: dict[str, Any] | None) -> Any:
    mixture = (identify or {}).get("mixture") or {}
    if not mixture.get("proposed"):
        return None
    bars = [Bar(f"{c['name']} v{c['version']}", c["weight"]) for c in mixture.get("components", [])]
    return bar_chart(bars, title="Mixture weights of the identified learnwares", fmt="{:.2f}", lo=0.0, hi=1.0)


def _score_names(rank: dict[str, Any] | None) -> list[str]:
    names: list[str] = []
    for row in (rank or {}).get("candidates", []):
        names += [n for n in (row.get("scores") or {}) if n not in names]
    return names


def _winner_action(
    request: HttpRequest, submission: Submission, outcome: Outcome | None
) -> dict[str, str] | None:
    """The primary action: download what won on the held-out rows (None before a package exists)."""
    package_url = reverse("submission-package", args=[submission.id]) if submission.package else ""
    if outcome is not None and outcome.kind == "best_single":
        single = outcome.best_single
        version = None
        if single.get("version_id"):
            version = (
                LearnwareVersion.objects.filter(
                    id=single["version_id"],
                    status=VersionStatus.PUBLISHED,
                    learnware__in=Learnware.objects.visible_to(request.user),
                )
                .select_related("learnware")
                .first()
            )
        if version is not None:
            return {
                "url": reverse("learnware-download", args=[version.learnware_id, version.number]),
                "label": f"Download the winner: {version.learnware.name} v{version.number}",
                "page": reverse("learnware-page", args=[version.learnware_id]),
            }
    if not package_url:
        return None
    if outcome is not None and outcome.kind == "from_scratch":
        return {
            "url": package_url,
            "label": f"Download the winner: the from-scratch model ({outcome.name})",
            "page": "",
        }
    return {
        "url": package_url,
        "label": "Download the assembly" if outcome is None else "Download the winner: the assembly",
        "page": "",
    }


def _imputed_rows(columns: dict[str, Any] | None, results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row a column the user lacked: its method (per column since labelled rows may teach some)
    and, for an RKME-filled one, whose RKME fills it for each member (``filled_by``: the assembled
    members once known, else every candidate the plan saw)."""
    imputed = (columns or {}).get("imputed")
    if not imputed:
        return []
    rows = imputed.get("per_column") or [
        {"column": c, "method": imputed["method"]} for c in imputed["columns"]
    ]
    chosen = (results.get("package") or results.get("assemble") or {}).get("members")
    ids = {m.get("version_id") for m in chosen or []}
    if not ids:
        return rows
    shown = [r | {"filled_by": [f for f in r.get("filled_by") or [] if f["version_id"] in ids]} for r in rows]
    return [r if r["filled_by"] else {k: v for k, v in r.items() if k != "filled_by"} for r in shown]


@login_required
def submission_detail(request: HttpRequest, submission_id: Any) -> HttpResponse:
    submission = _own(request, submission_id)
    job = submission.job
    results = submission.results or {}
    if (submission.requirements or {}).get("kind") == "base_model":  # a ranking, not a reuse report
        return _model_selection_page(request, submission)
    evaluation = results.get("evaluate")
    outcome = task_outcome(evaluation)
    context = {
        "outcome": outcome,
        "winner_action": _winner_action(request, submission, outcome),
        "submission": submission,
        "job": job,
        "stages": _stages(submission),
        "results": results,
        "identify": results.get("identify"),
        "columns": (results.get("spec") or {}).get("columns"),
        "imputed_rows": _imputed_rows((results.get("spec") or {}).get("columns"), results),
        "imputation_cost": (evaluation or {}).get("imputation_cost"),
        "rank": results.get("rank"),
        "assemble": results.get("assemble"),
        "evaluation": evaluation,
        "package": results.get("package"),
        "score_names": _score_names(results.get("rank")),
        "methods_chart": _methods_chart(evaluation) if evaluation else None,
        "mixture_chart": _mixture_chart(results.get("identify")),
        "job_api": reverse("job-detail", args=[job.id]) if job and not job.is_terminal else "",
        "download_url": reverse("submission-package", args=[submission.id]) if submission.package else "",
        "base_usage": _base_usage(request, submission, results),
    }
    return render(request, "submissions/detail.html", context)


def _base_usage(request: HttpRequest, submission: Submission, results: dict[str, Any]) -> str:
    """The Python snippet of a package on a published base model ("" for any other package)."""
    base = package_base(results) if submission.package and results.get("package") else None
    if base is None:
        return ""
    return base_package_snippet(
        site_url=request.build_absolute_uri("/").rstrip("/"),
        submission_id=str(submission.id),
        base=base,
        task=submission.task,
        adapter=(submission.requirements or {}).get("kind") == "adapter",
    )


def _model_selection_page(request: HttpRequest, submission: Submission) -> HttpResponse:
    job, results = submission.job, submission.results or {}
    rank, evaluation = results.get("rank"), results.get("evaluate")
    context = {
        "submission": submission,
        "job": job,
        "rank": rank,
        "ranking": ranking_view(rank) if rank else None,
        "evaluation": evaluation,
        "evaluation_rows": [evaluation["head"], evaluation["baseline"]] if evaluation else [],
        "adapter": adapter_view(evaluation, submission.requirements or {}, submission.modality)
        if evaluation
        else None,
        # The delivered head on the chosen base (when it is not worse than from scratch).
        "download_url": reverse("submission-package", args=[submission.id]) if submission.package else "",
        "job_api": reverse("job-detail", args=[job.id]) if job and not job.is_terminal else "",
    }
    return render(request, "submissions/model_selection.html", context)


@login_required
@require_POST
def submission_stop(request: HttpRequest, submission_id: Any) -> HttpResponse:
    submission = _own(request, submission_id)
    try:
        submission_cancel(submission=submission, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancellation requested: the job stops at its next stage.")
    return redirect("submission-page", submission_id=submission.id)


@login_required
@require_POST
def submission_publish(request: HttpRequest, submission_id: Any) -> HttpResponse:
    """Publish the assembled package as a learnware of the user's (it goes through the same checks)."""
    submission = _own(request, submission_id)
    if not submission.package:
        messages.error(request, "This submission has no package to publish.")
        return redirect("submission-page", submission_id=submission.id)
    with submission.package.open("rb") as handle:
        data = handle.read()
    try:
        lw, version, _ = learnware_services.learnware_upload(user=request.user, data=data)
    except ApplicationError as exc:
        messages.error(request, f"The assembly could not be published: {exc.message} ({exc.code})")
        return redirect("submission-page", submission_id=submission.id)
    return redirect("version-page", learnware_id=lw.id, number=version.number)
