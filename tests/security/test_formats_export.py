"""torch.export (.pt2) is refused everywhere, and nothing of ours calls a full unpickler on uploaded bytes.

The payload is a real ``torch.export.save`` archive whose ``data/sample_inputs/model.pt`` pickle
creates a marker file when unpickled. A positive control shows ``torch.export.load`` itself
runs it (so the payload is live); every market and client path must leave no marker, and
Python's ``pickle.find_class`` audit event must not fire while the client loads packages.
"""

from __future__ import annotations

import collections
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client.errors import PackageError, UnsafeArtifactError  # noqa: E402
from lwm_client.packages import package_check  # noqa: E402
from lwm_client.predict import Predictor, load_model  # noqa: E402

from specs.packaging import InvalidPackageError, package_inspect  # noqa: E402
from tests.support import hostile_packages as hostile  # noqa: E402
from tests.support import packages  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_find_class_events: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and _find_class_events is not None:
        _find_class_events.append(".".join(map(str, args)))


sys.addaudithook(_audit)  # cannot be removed; records only while a test sets the list


def test_positive_control_torch_export_load_runs_the_payload(tmp_path):
    marker = tmp_path / "ran"
    archive = tmp_path / "model.pt2"
    archive.write_bytes(hostile.pt2_with_pickle_payload(str(marker)))
    # In a separate interpreter: this is the call the market must never make on uploaded bytes.
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.export.load({str(archive)!r})"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert marker.exists(), (
        "the payload did not run under torch.export.load: the tests below would prove nothing"
    )


@pytest.mark.parametrize("file", ["model.pt2", "model.pt"])
def test_the_upload_check_and_the_client_check_refuse_a_pt2_by_name(file):
    marker = hostile.marker_path()
    data = hostile.table_package(hostile.pt2_with_pickle_payload(str(marker)), name="pt2", file=file)
    with pytest.raises(InvalidPackageError) as server:
        package_inspect(data)
    with pytest.raises(PackageError) as client:
        package_check(data, deep=True)
    assert server.value.code == client.value.code == "upload:user:unsafe-format"
    assert hostile.markers_left(marker) == []


def test_the_client_never_loads_a_pt2_and_never_unpickles_while_loading_packages():
    global _find_class_events
    marker = hostile.marker_path()
    payload = hostile.pt2_with_pickle_payload(str(marker))
    _find_class_events = []
    try:
        with pytest.raises(UnsafeArtifactError) as direct:
            load_model(payload, "torch_export")
        with pytest.raises(UnsafeArtifactError) as disguised:
            load_model(payload, "torchscript")
        with pytest.raises(UnsafeArtifactError):
            Predictor.from_bytes(hostile.table_package(payload, name="pt2", file="model.pt2"))
        Predictor.from_bytes(packages.build_table_model_package()).predict(
            packages.table_data(["a", "b", "c"], 3)
        )
        events = list(_find_class_events)
        pickle.loads(pickle.dumps(collections.OrderedDict()))  # the recorder's own control: this must show
        control = list(_find_class_events[len(events) :])
    finally:
        _find_class_events = None
    assert direct.value.code == "predict:user:format"
    assert disguised.value.details["check"] == "upload:user:unsafe-format"
    assert control == ["collections.OrderedDict"]
    assert events == []  # not one pickle global was resolved, even for the good package
    assert hostile.markers_left(marker) == []
