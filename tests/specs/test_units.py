"""specs.units: the factor that maps a user's columns into the market's units, checked on
simulated domains against the factor the simulation applied."""

from __future__ import annotations

import numpy as np
import pytest

from specs.exceptions import InvalidDataError
from specs.units import check_rms, mixture_unit_factor, unit_rms, units_summary


def _domains(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Two domains whose columns differ in location (a distribution difference, not units).
    a = rng.normal(size=(n, 4)) + np.array([0.0, 5.0, 1.0, 10.0])
    b = rng.normal(size=(n, 4)) + np.array([6.0, 0.0, 1.0, 10.0])
    return a, b


def test_unit_rms_is_the_columns_root_mean_square_with_zero_columns_left_alone():
    X = np.array([[3.0, 0.0, -1.0], [4.0, 0.0, 1.0]])
    assert unit_rms(X) == pytest.approx([np.sqrt(12.5), 1.0, 1.0])


def test_a_single_domain_users_factor_is_the_ratio_of_rms_and_recovers_the_units():
    rng = np.random.default_rng(0)
    a, _ = _domains(rng, 4000)
    units = np.array([0.1, 1.0, 60.0, 1000.0])
    user = a[:2000] * units
    s = mixture_unit_factor(unit_rms(user), [unit_rms(a[2000:])], [1.0])
    assert s == pytest.approx(units, rel=0.03)
    assert mixture_unit_factor(unit_rms(user), [unit_rms(a[2000:])], [1.0]) == pytest.approx(
        unit_rms(user) / unit_rms(a[2000:])
    )


def test_a_mixture_users_factor_explains_its_second_moments_by_the_weights_not_by_one_member():
    rng = np.random.default_rng(1)
    a, b = _domains(rng, 6000)
    units = np.array([2.54, 0.001, 1.0, 3600.0])
    user = np.vstack([a[:1400], b[:600]]) * units  # 70 / 30
    s = mixture_unit_factor(unit_rms(user), [unit_rms(a[3000:]), unit_rms(b[3000:])], [0.7, 0.3])
    assert s == pytest.approx(units, rel=0.03)
    # One member's ratio alone mistakes the other domain's columns for other units.
    alone = unit_rms(user) / unit_rms(a[3000:]) / units
    assert np.abs(np.log(alone)).max() > np.log(1.25)


def test_the_factor_is_exactly_proportional_to_the_users_units():
    rng = np.random.default_rng(2)
    a, b = _domains(rng, 500)
    user = np.vstack([a[:250], b[:250]])
    members = [unit_rms(a[250:]), unit_rms(b[250:])]
    units = np.geomspace(0.1, 10.0, 4)
    raw = mixture_unit_factor(unit_rms(user), members, [0.5, 0.5])
    other = mixture_unit_factor(unit_rms(user * units), members, [0.5, 0.5])
    assert other == pytest.approx(raw * units, rel=1e-12)
    # The converted rows (x / s) are the same for both users.
    assert (user * units) / other == pytest.approx(user / raw, rel=1e-12)


def test_bad_weights_and_stored_rms_are_refused_by_name():
    with pytest.raises(InvalidDataError, match="weights"):
        mixture_unit_factor(np.ones(2), [np.ones(2)], [0.0])
    with pytest.raises(InvalidDataError, match="unit_rms"):
        check_rms([1.0, -2.0], 2)
    with pytest.raises(InvalidDataError, match="unit_rms"):
        check_rms([1.0], 2)
    assert check_rms([1, 2], 2).dtype == np.float64


def test_the_summary_names_the_columns_in_other_units_and_the_largest_factor():
    summary = units_summary(np.array([1.0, 1.1, 0.1, 1000.0]), ["a", "b", "c", "d"])
    assert summary["differ"] is True and summary["columns_differing"] == 2
    assert summary["max_factor"] == pytest.approx(1000.0)
    assert [c["column"] for c in summary["largest"]] == ["d", "c"]
    assert units_summary(np.array([1.0, 0.9, 1.2]))["differ"] is False


def _rbf(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))


def test_same_units_mmd2_matches_an_independent_computation_from_the_moved_rows():
    from specs.units import same_units_mmd2

    rng = np.random.default_rng(3)
    d, K, Kc, m, gamma = 3, 30, 20, 4, 1 / 6
    mean, scale = rng.normal(size=d), rng.uniform(0.5, 2.0, d)
    Z, beta = rng.normal(size=(K, d)), rng.dirichlet(np.ones(K))
    Zs, betas = rng.normal(size=(m, Kc, d)), rng.dirichlet(np.ones(Kc), size=m)
    st = np.array([b @ _rbf(z, z, gamma) @ b for z, b in zip(Zs, betas, strict=True)])
    factors = np.exp(rng.uniform(-0.5, 0.5, (m, d)))
    got = same_units_mmd2(Z, beta, factors, mean, scale, Zs, betas, st, gamma)
    for c in range(m):
        # the unit-free rows x / r_u behind Z, times r_u / r_c, then the space's fixed mean/scale
        P = ((Z * scale + mean) * factors[c] - mean) / scale
        want = (
            beta @ _rbf(P, P, gamma) @ beta
            - 2 * beta @ _rbf(P, Zs[c], gamma) @ betas[c]
            + betas[c] @ _rbf(Zs[c], Zs[c], gamma) @ betas[c]
        )
        assert got[c] == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_same_units_mmd2_with_factor_one_is_the_unit_free_mmd2():
    from specs import mmd_squared
    from specs.units import same_units_mmd2

    rng = np.random.default_rng(4)
    Z, beta = rng.normal(size=(25, 2)), np.full(25, 1 / 25)
    Zc, bc = rng.normal(size=(15, 2)) + 0.3, np.full(15, 1 / 15)
    st = np.array([bc @ _rbf(Zc, Zc, 0.25) @ bc])
    got = same_units_mmd2(
        Z, beta, np.ones((1, 2)), np.array([0.2, -1.0]), np.array([0.5, 3.0]), Zc[None], bc[None], st, 0.25
    )
    assert got[0] == pytest.approx(mmd_squared(Z, beta, Zc, bc, 0.25), rel=1e-4, abs=1e-7)


def test_member_scale_converts_large_real_unit_changes_exactly_and_names_columns_float32_cannot_hold():
    from specs.units import UnitsOutOfRange, member_scale, rows_in_units

    factor = np.array([1e9, 1e-9, 2.54, 1e30])  # bytes -> GB, and back: not clipped as search clips
    scale = member_scale(factor)
    assert scale == pytest.approx(1.0 / factor, rel=1e-15)
    X = np.array([[3e9, 2e-9, 2.54, 1e30], [-1e9, 4e-9, 5.08, 0.0]], dtype=np.float32)
    want = (X.astype(np.float64) / factor).astype(np.float32)
    np.testing.assert_allclose(rows_in_units(X, scale), want, rtol=1e-6)
    # A scale outside float32's normal range is 0 or inf there: refused, naming the columns.
    with pytest.raises(UnitsOutOfRange) as caught:
        member_scale(np.array([1.0, 1e60, 2.0, 1e-60]))
    assert caught.value.columns == [1, 3]
    # Rows that overflow float32 once converted are named too (column 1: 1e30 * 1e9 > 3.4e38).
    with pytest.raises(UnitsOutOfRange) as caught:
        rows_in_units(np.array([[1.0, 1e30], [2.0, 1.0]], dtype=np.float32), np.array([1.0, 1e9]))
    assert caught.value.columns == [1] and float(np.finfo(np.float32).max) < 1e30 * 1e9
