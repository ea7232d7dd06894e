"""Client.load: a package of unknown origin predicts in an isolated process, with the same results;
one this client downloaded and verified predicts in-process; the isolation holds against a hostile model."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest
import torch
from lwm_client import Client
from lwm_client.isolated import IsolatedPredictionFailed, IsolatedPredictor, file_sha256, remember_verified
from lwm_client.predict import Predictor
from numpy.testing import assert_allclose

from tests.support import packages


@pytest.fixture(autouse=True)
def _own_config(tmp_path, monkeypatch):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "config" / "config.json"))
    monkeypatch.delenv("LWM_ISOLATE", raising=False)


@pytest.fixture
def package(tmp_path):
    torch.manual_seed(5)
    linear = torch.nn.Linear(3, 2).eval()
    path = tmp_path / "package.zip"
    path.write_bytes(
        packages.build_table_model_package(model=packages.torchscript_bytes(linear, torch.zeros(2, 3)))
    )
    return path


def test_an_unknown_package_predicts_in_an_isolated_process_exactly_as_in_process(package):
    predictor = Client.load(package)
    assert isinstance(predictor, IsolatedPredictor)
    X = packages.table_data(["a", "b", "c"], 7, seed=2)
    direct = Predictor.from_path(package)
    assert_allclose(predictor.predict_proba(X), direct.predict_proba(X), rtol=1e-12)
    assert list(predictor.predict(X)) == list(direct.predict(X))


def test_a_package_this_client_verified_runs_in_process_and_the_choice_can_be_overridden(
    package, monkeypatch
):
    remember_verified(file_sha256(package), "http://market/api/v1/learnwares/1/versions/1/download")
    assert isinstance(Client.load(package), Predictor)
    assert isinstance(Client.load(package, isolate=True), IsolatedPredictor)
    monkeypatch.setenv("LWM_ISOLATE", "1")
    assert isinstance(Client.load(package), IsolatedPredictor)


class _Thief(torch.nn.Module):
    def __init__(self, secret: str, marker: str):
        super().__init__()
        self.secret, self.marker = secret, marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leaked = torch.from_file(self.secret, shared=False, size=8, dtype=torch.uint8)
        written = torch.from_file(self.marker, shared=True, size=8, dtype=torch.uint8)
        written.fill_(65)
        return x[:, :2] * 0 + leaked[:1].to(x.dtype) + written[:1].to(x.dtype)


def test_a_hostile_package_of_unknown_origin_reads_and_writes_nothing_of_the_user(tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    secret, marker = tmp_path / "id_rsa", tmp_path / "marker"
    secret.write_text(canary)
    path = tmp_path / "hostile.zip"
    path.write_bytes(
        packages.build_table_model_package(model=packages.torchscript_bytes(_Thief(str(secret), str(marker))))
    )
    with pytest.raises(IsolatedPredictionFailed) as caught:
        Client.load(path).predict_proba(np.zeros((2, 3)))
    assert not marker.exists() and canary not in caught.value.message


def test_without_bubblewrap_it_still_runs_apart_and_warns(package, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = Client.load(package).predict_proba(np.zeros((2, 3)))
    assert out.shape == (2, 2)
    assert any("bubblewrap" in str(w.message) for w in caught)
