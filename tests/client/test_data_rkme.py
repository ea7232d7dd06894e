"""``specs.data_rkme``: the one "rows -> RKME" of publishing, search by data, submissions and the
client, checked against the two steps written out here, and K from the one setting ``LWM_RKME_K``."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings as django_settings
from lwm_client import data as local
from lwm_client.models import FeatureSpace

from marketplace.learnwares.models import FeatureSpace as ServerSpace
from marketplace.search.data import spec_from_file
from specs import TableStandardizer, default_gamma, rkme_fit
from specs.data_rkme import DEFAULT_RKME_K, encoded_rkme, rkme_k_from_env, table_rkme


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(5, 2, n), rng.uniform(100, 900, n)])


def test_a_table_rkme_is_the_spaces_standardisation_then_rkme_fit_with_min_k_n() -> None:
    X, std = _rows(60), TableStandardizer().fit(_rows(200, seed=3))
    spec = table_rkme(X, std.to_dict(), 0.25, k=20, random_state=4)
    # Written out: the unit-free step divides by the rows' own RMS, then the space's mean/scale.
    U = X / np.sqrt(np.mean(X * X, axis=0))
    expected = rkme_fit((U - std.mean_) / std.scale_, 20, 0.25, random_state=4)
    np.testing.assert_allclose(spec.Z_, expected.Z_, rtol=1e-12)
    np.testing.assert_allclose(spec.beta_, expected.beta_, rtol=1e-12)
    small = encoded_rkme(X[:7], 0.25, k=20)
    assert small.Z_.shape[0] == 7  # fewer rows than K: K = n


def test_k_comes_from_lwm_rkme_k_in_the_environment_else_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LWM_RKME_K", raising=False)
    assert rkme_k_from_env() == DEFAULT_RKME_K
    monkeypatch.setenv("LWM_RKME_K", "17")
    assert rkme_k_from_env() == 17
    monkeypatch.setenv("LWM_RKME_K", "0")
    with pytest.raises(ValueError, match="LWM_RKME_K"):
        rkme_k_from_env()


def test_the_servers_setting_defaults_to_the_shared_default() -> None:
    # settings/test.py leaves LWM_RKME_K alone, so this is base.py's default.
    assert django_settings.LWM_RKME_K == DEFAULT_RKME_K


def test_search_by_data_and_the_client_take_k_from_the_one_setting(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = _rows(40)
    std = TableStandardizer().fit(_rows(200, seed=3)).to_dict()
    fields = {"key": "table-k", "kind": "table", "dim": 2, "gamma": default_gamma(2), "standardization": std}
    settings.LWM_RKME_K = 9
    monkeypatch.setenv("LWM_RKME_K", "9")
    csv = "a,b\n" + "\n".join(f"{float(a)!r},{float(b)!r}" for a, b in X)
    server = spec_from_file(space=ServerSpace(**fields), name="d.csv", content=csv.encode())
    client = local.spec_table(X, FeatureSpace(**fields))
    assert server.Z_.shape[0] == client.Z_.shape[0] == 9
    np.testing.assert_array_equal(server.Z_, client.Z_)
