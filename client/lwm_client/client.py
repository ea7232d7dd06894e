"""The client: every market operation as one typed call (the CLI is a thin layer over it)."""

from __future__ import annotations

import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lwm_client import data as local
from lwm_client.base_heads import fetch_referenced_base
from lwm_client.base_spaces import EncoderSpacesMixin
from lwm_client.config import Config, read_config_file, write_config_file
from lwm_client.downloads import download_verified, is_folder_target
from lwm_client.errors import (
    ConfigError,
    JobFailed,
    LwmError,
    NotFound,
    PackageError,
    RejectedUpload,
    TransientError,
)
from lwm_client.http import Transport
from lwm_client.model_bases import fetch_model_base
from lwm_client.model_selection import ModelSelectionMixin
from lwm_client.models import (
    Download,
    FeatureSpace,
    Job,
    Learnware,
    SearchResult,
    Submission,
    Upload,
    Version,
    build,
)
from lwm_client.packages import package_bytes, package_check
from lwm_client.progress import Progress
from lwm_client.search_params import (
    card_search_params,
    data_search_filters,
    file_search_form,
    named_components,
)
from lwm_client.spaces import widest_covering_space
from lwm_client.submission_form import submission_request
from specs import RKMESpecification


class Client(EncoderSpacesMixin, ModelSelectionMixin):
    """A market client. ``url``/``token``/``timeout`` default to ``LWM_URL``/``LWM_TOKEN``/``LWM_TIMEOUT``,
    then to the config file ``lwm login`` wrote; ``progress=True`` shows tqdm bars while waiting."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        progress: bool = False,
        poll_interval: float = 0.5,
        **transport: Any,
    ) -> None:
        self.config = Config.resolve(url=url, token=token, timeout=timeout)
        self.http = Transport(self.config, **transport)
        self.progress = progress
        self.poll_interval = poll_interval

    # --- account ------------------------------------------------------------------------------
    def login(self, username: str, password: str, *, name: str = "lwm-cli", save: bool = True) -> str:
        """Exchange a password for a named API token; with ``save`` write it to the config file."""
        body = self.http.json(
            "POST", "auth/token/", auth=False, json={"username": username, "password": password, "name": name}
        )
        token = body["token"]
        self.config = Config(url=self.config.url, token=token, timeout=self.config.timeout)
        self.http.config = self.config
        if save:
            write_config_file(
                {**read_config_file(), "url": self.config.url, "token": token, "username": username}
            )
        return token

    def me(self) -> dict[str, Any]:
        return self.http.json("GET", "me/")

    # --- feature spaces and local specs ------------------------------------------------------
    def feature_space(self, key: str) -> FeatureSpace:
        return build(FeatureSpace, self.http.json("GET", f"feature-spaces/{key}/"))

    def feature_spaces(self) -> list[FeatureSpace]:
        return [build(FeatureSpace, s) for s in self.http.json("GET", "feature-spaces/")]

    def table_space(self, columns: Sequence[str]) -> FeatureSpace:
        key = local.table_space_key(columns)
        try:
            return self.feature_space(key)
        except NotFound:
            raise NotFound(
                f"no learnware has been published with the columns {list(columns)} (feature space {key}) yet",
                code="space:user:unknown",
                status=404,
            ) from None

    def spec_table(
        self,
        source: Any,
        *,
        columns: Sequence[str] | None = None,
        space: FeatureSpace | None = None,
        column_map: dict[str, str] | None = None,
    ) -> tuple[RKMESpecification, FeatureSpace]:
        """The RKME of a CSV/NPZ/DataFrame/array in its table space, computed here.

        Columns are matched to the space's by name (any order; extra columns are left out);
        ``column_map`` renames yours first (``{"departure_delay": "dep_delay"}``)."""
        X, names, _ = local.read_table(source, columns=columns)
        if space is None:
            if names is None:
                raise ConfigError(
                    "unnamed columns: give columns=[...] or the feature space", code="data:user:columns"
                )
            space = self._table_space_for(local.apply_column_map(names, column_map))
        return local.spec_table(local.space_rows(X, names, space, column_map), space), space

    def _table_space_for(self, names: list[str]) -> FeatureSpace:
        """The space of exactly these columns, else the widest table space whose columns they all hold
        (extra columns are ignored by name, as the market does)."""
        try:
            return self.table_space(names)
        except NotFound:
            covering = widest_covering_space(self.feature_spaces(), names)
            if covering is None:
                raise
            return covering

    def spec(
        self, source: Any, *, modality: str = "table", **kwargs: Any
    ) -> tuple[RKMESpecification, FeatureSpace]:
        fn = {"table": self.spec_table, "image": self.spec_images, "text": self.spec_texts}[modality]
        return fn(source, **kwargs)

    # --- jobs and waiting ----------------------------------------------------------------------
    def job(self, job_id: str) -> Job:
        return build(Job, self.http.json("GET", f"jobs/{job_id}/"))

    def _poll(self, fetch: Callable[[], Any], *, timeout: float, desc: str) -> Any:
        deadline = time.monotonic() + timeout
        with Progress(desc, enabled=self.progress) as bar:
            while True:
                item = fetch()
                bar.update(item.stage, item.progress, item.message)
                if item.finished:
                    return item
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{desc}: still {item.status} at stage {item.stage!r} after {timeout:.0f} s",
                        code="client:timeout",
                        details={"status": item.status, "stage": item.stage},
                    )
                time.sleep(self.poll_interval)

    def wait_job(self, job_id: str, *, timeout: float = 900.0, desc: str = "job") -> Job:
        return self._poll(lambda: self.job(job_id), timeout=timeout, desc=desc)

    # --- learnwares ----------------------------------------------------------------------------
    @staticmethod
    def check(package: bytes | str | Path, *, deep: bool = False) -> dict[str, Any]:
        """Run the server's upload checks here; returns a summary or raises :class:`PackageError`."""
        data = package if isinstance(package, bytes) else package_bytes(package)
        return package_check(data, deep=deep).summary()

    def publish(
        self,
        package: bytes | str | Path,
        *,
        learnware: int | None = None,
        wait: bool = True,
        timeout: float = 900.0,
        check: bool = True,
    ) -> Upload:
        """Upload a package (zip bytes, zip path or folder); with ``wait`` poll until published or rejected.

        Raises :class:`RejectedUpload` with the reasons when the upload or the pipeline refuses it.
        """
        data = package if isinstance(package, bytes) else package_bytes(package)
        if check:
            package_check(data)
        path = f"learnwares/{learnware}/versions/" if learnware else "learnwares/"
        # One key for every attempt: a retried upload never makes a second version.
        body = self.http.json(
            "POST",
            path,
            files={"package": ("package.zip", data, "application/zip")},
            idempotency_key=uuid.uuid4().hex,
        )
        upload = build(Upload, body)
        if not wait:
            return upload
        job = self.wait_job(
            str(upload.job), timeout=timeout, desc=f"publish #{upload.learnware} v{upload.version}"
        )
        upload.final = self.version(upload.learnware, upload.version)
        upload.status = upload.final.status
        if job.status != "succeeded" or upload.status == "rejected":
            err = job.error if isinstance(job.error, dict) else {}
            reasons = upload.final.rejection_reasons or ([err] if err else [])
            reasons = reasons if isinstance(reasons, list) else [reasons]
            raise RejectedUpload(
                f"learnware {upload.learnware} v{upload.version} was {upload.status or job.status}: "
                f"{err.get('message') or job.message}",
                reasons=reasons,
                code=str(err.get("code", "")),
                details={"learnware": upload.learnware, "version": upload.version, "job": upload.job},
            )
        return upload

    def learnwares(self, *, limit: int | None = None, **filters: Any) -> list[Learnware]:
        return [
            build(Learnware, r)
            for r in self._pages("learnwares/", {k: v for k, v in filters.items() if v}, limit)
        ]

    def _pages(self, path: str, params: dict[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
        offset, seen = 0, 0
        while True:
            page = self.http.json("GET", path, params={**params, "limit": 100, "offset": offset})
            for row in page["results"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield row
            if not page.get("next"):
                return
            offset += len(page["results"])

    def learnware(self, learnware_id: int) -> Learnware:
        return build(Learnware, self.http.json("GET", f"learnwares/{learnware_id}/"))

    def versions(self, learnware_id: int) -> list[Version]:
        return [build(Version, v) for v in self._pages(f"learnwares/{learnware_id}/versions/", {}, None)]

    def version(self, learnware_id: int, number: int) -> Version:
        return build(Version, self.http.json("GET", f"learnwares/{learnware_id}/versions/{number}/"))

    # --- search --------------------------------------------------------------------------------
    def search(self, q: str = "", *, limit: int = 20, **filters: Any) -> SearchResult:
        """Search cards by text and filters (modality, task, kind, license, tags, base_model, owner)."""
        params = card_search_params(q, limit, filters)
        return SearchResult.from_dict(self.http.json("GET", "search/", params=params))

    def search_by_data(
        self,
        spec: Any,
        *,
        feature_space: str | None = None,
        k: int = 10,
        mixture: bool = True,
        column_map: dict[str, str] | None = None,
        **filters: Any,
    ) -> SearchResult:
        """Find learnwares whose specification explains your data; only the RKME is sent.

        ``spec``: an RKME, the (spec, space) pair ``spec_*`` returns, or a table (CSV/NPZ path,
        DataFrame) specced here with its columns matched by name (``column_map`` renames them)."""
        if isinstance(spec, (list, tuple)) and spec and all(isinstance(t, str) for t in spec):
            spec = self.spec_texts(list(spec))  # raw texts: specced in the text space, as submit does
        if not isinstance(spec, (RKMESpecification, tuple)):
            space = self.feature_space(feature_space) if feature_space else None
            spec = self.spec_table(spec, space=space, column_map=column_map)
        if isinstance(spec, tuple):
            spec, space = spec
            feature_space = feature_space or space.key
        if not feature_space:
            raise ConfigError(
                "search_by_data needs the feature space key (or the (spec, space) pair spec_* returns)",
                code="search:user:space",
            )
        body = {
            "feature_space": feature_space,
            "rkme": local.rkme_document(spec),  # with unit_rms, as submit sends it: the same-units prior
            "k": k,
            "mixture": mixture,
            **data_search_filters(filters),
        }
        return named_components(SearchResult.from_dict(self.http.json("POST", "search/by-data/", json=body)))

    def search_by_file(
        self,
        path: str | Path,
        *,
        feature_space: str | None = None,
        k: int = 10,
        mixture: bool = True,
        column_map: dict[str, str] | None = None,
        cross_space: bool = True,
        timeout: float = 900.0,
    ) -> SearchResult:
        """Search with a CSV's rows themselves (sent, unlike :meth:`search_by_data`): columns are matched by
        name (``column_map`` renames yours); learnwares of other spaces are ranked on the columns you share
        (``result.cross_space``). A large file is searched by a worker: this waits for it."""
        path = local.existing_file(path)
        if not feature_space:  # the space holding the header's columns (after your renames)
            names = local.read_table(str(path))[1] or []
            try:
                feature_space = self._table_space_for(local.apply_column_map(names, column_map)).key
            except NotFound:
                msg = f"{path.name}: no table space holds all its columns; pass feature_space to compare with"
                raise ConfigError(msg, code="search:user:space") from None
        form = file_search_form(
            feature_space, k=k, mixture=mixture, cross_space=cross_space, renames=column_map
        )
        files = {"file": (path.name, path.read_bytes(), "text/csv")}
        response = self.http.send("POST", "search/by-data/", data=form, files=files)
        body = response.json()
        if response.status_code == 202:  # a large file: a worker searches it
            job = self.wait_job(body["job_id"], timeout=timeout, desc=f"search with {path.name}")
            if job.status != "succeeded":
                raise JobFailed(f"search with {path.name} {job.status}: {job.message}", details=job.raw)
            body = job.result
        return named_components(SearchResult.from_dict(body or {}))

    # --- submissions ---------------------------------------------------------------------------
    def submit(
        self,
        spec: RKMESpecification | tuple[RKMESpecification, FeatureSpace] | None = None,
        *,
        data: Any = None,
        labelled: tuple[Any, Any] | None = None,
        task: str = "classification",
        modality: str = "table",
        requirements: dict[str, Any] | None = None,
        name: str = "",
        wait: bool = True,
        timeout: float = 900.0,
        column_map: dict[str, str] | None = None,
    ) -> Submission:
        """Hand the market a task: your data's RKME (computed here) or, with ``data``, the rows themselves,
        and optionally a labelled sample (X, y).

        ``data`` (instead of ``spec``): a CSV/NPZ/JSONL path, a folder of images, an array (table rows,
        or images (n, C, H, W) in [0, 1] or 0..255), or a list of texts; it is uploaded, so the market
        can run every learnware on your rows. Otherwise the labelled sample is the only data sent, and
        only when you pass it. Text X may be strings (sent as JSONL beside uploaded texts, else encoded
        here with MiniLM); image X is (n, C, H, W) or (n, H, W) in [0, 1] or 0..255, sent as the images.
        With ``wait``, poll until the pipeline ends; :class:`JobFailed` if it fails.
        """
        request = submission_request(
            spec,
            data=data,
            labelled=labelled,
            task=task,
            modality=modality,
            requirements=requirements,
            name=name,
            column_map=column_map,
        )
        body = self.http.json("POST", "submissions/", idempotency_key=uuid.uuid4().hex, **request)
        submission = build(Submission, body["submission"])
        if not wait:
            return submission
        return self.wait_submission(submission.id, timeout=timeout)

    def submissions(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Your submissions, newest first, as the server lists them."""
        return list(self._pages("submissions/", {}, limit))

    def submission(self, submission_id: str) -> Submission:
        return build(Submission, self.http.json("GET", f"submissions/{submission_id}/"))

    def wait_submission(self, submission_id: str, *, timeout: float = 900.0) -> Submission:
        final = self._poll(
            lambda: self.submission(submission_id),
            timeout=timeout,
            desc=f"submission {str(submission_id)[:8]}",
        )
        if final.status != "succeeded":
            err = final.error if isinstance(final.error, dict) else {}
            raise JobFailed(
                f"submission {submission_id} {final.status} at stage {final.stage!r}: "
                f"{err.get('message') or final.message}",
                code=str(err.get("code", "")),
                details={"submission": str(submission_id), "error": final.error},
            )
        return final

    # --- download and predict ------------------------------------------------------------------
    def _download(self, path: str, dest: Path, expected: str | None) -> Download:
        return download_verified(self.http, path, dest, expected)

    def download(self, learnware_id: int, version: int | None = None, *, dest: str | Path = ".") -> Download:
        """Download a version's package (latest published by default), verified against its sha256."""
        if version is None:
            version = self.learnware(learnware_id).latest_version
            if version is None:
                raise NotFound(
                    f"learnware {learnware_id} has no published version",
                    code="download:user:none-published",
                    status=404,
                )
        info = self.version(learnware_id, version)
        target = Path(dest)
        if is_folder_target(target):
            target = target / f"learnware-{learnware_id}-v{version}.zip"
        path = f"learnwares/{learnware_id}/versions/{version}/download"
        got = self._download(path, target, info.artifact_sha256)
        return fetch_model_base(self, got, info.base_pin)  # a text model on a published base: its base too

    def download_submission(self, submission_id: str, *, dest: str | Path = ".") -> Download:
        """Download a submission's package, verified against its sha256 (and the base model it refers to)."""
        info = self.submission(submission_id)
        target = Path(dest)
        if is_folder_target(target):
            target = target / f"submission-{str(submission_id)[:8]}.zip"
        got = self._download(f"submissions/{submission_id}/package", target, info.package_sha256 or None)
        return fetch_referenced_base(self, got)

    @staticmethod
    def load(path: str | Path, *, isolate: bool | None = None, base: str | Path | None = None) -> Any:
        """A predictor (``predict``/``predict_proba``) for a package (TorchScript or ONNX, checked before
        it runs).

        A package this client downloaded and verified from a market runs in this process
        (:class:`~lwm_client.predict.Predictor`); any other runs each prediction in an isolated
        process (:class:`~lwm_client.isolated.IsolatedPredictor`, bubblewrap when installed).
        ``isolate`` (or ``LWM_ISOLATE=1/0``) overrides that choice; ``base``: a model-selection head's
        base model (package zip or folder) instead of the one fetched (a from-scratch one needs none).
        """
        from lwm_client.isolated import IsolatedPredictor, should_isolate
        from lwm_client.predict import Predictor

        package = Path(path)
        if not package.is_file() or not zipfile.is_zipfile(package):
            what = "does not exist" if not package.exists() else "is not a package zip"
            raise PackageError(
                f"{package} {what}", code="predict:user:not-a-package", details={"path": str(package)}
            )
        return (
            IsolatedPredictor(path, base)
            if should_isolate(path, isolate)
            else Predictor.from_path(path, base)
        )


__all__ = ["Client", "LwmError"]
