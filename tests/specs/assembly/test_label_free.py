"""The label-free choice between soft routing and the best single (specs.assembly.label_free)."""

from __future__ import annotations

import numpy as np
import pytest

from specs.assembly import RKMEJobSelector
from specs.assembly.label_free import classes_disjoint, label_free_choice, routing_evidence
from specs.exceptions import InvalidDataError, InvalidParameterError


def _gaussian_posteriors(X: np.ndarray, centres: np.ndarray, gamma: float) -> np.ndarray:
    """Independent computation: posterior of each point-mass 'member' under equal priors."""
    d = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    logits = -gamma * d
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_evidence_matches_a_hand_computation() -> None:
    r = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    confidence, shares = routing_evidence(r)
    assert confidence == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4)
    assert shares.tolist() == pytest.approx([0.75, 0.25])  # a tie goes to the first member (argmax)


def test_selector_responsibilities_agree_with_gaussian_posteriors() -> None:
    """One reduced point per member with beta 1: responsibilities are Gaussian posteriors."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0]])
    X = rng.normal(size=(50, 2)) + centres[rng.integers(0, 2, 50)]
    sel = RKMEJobSelector().fit([centres[:1], centres[1:]], [np.ones(1), np.ones(1)], 0.7)
    np.testing.assert_allclose(sel.responsibilities(X), _gaussian_posteriors(X, centres, 0.7), atol=1e-10)


def test_separated_members_are_routed() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 0.0]])
    X = rng.normal(size=(200, 2)) + centres[np.repeat([0, 1], [140, 60])]
    choice = label_free_choice(
        _gaussian_posteriors(X, centres, 0.5), np.array([0.7, 0.3]), [["0", "1"], ["2", "3"]]
    )
    assert choice.method == "rkme_soft_selector"
    assert choice.routing_confidence is not None and choice.routing_confidence > 0.99
    assert choice.route_shares == pytest.approx([0.7, 0.3], abs=0.02)
    # independent: TV between the routed shares and the weights, by hand
    routed = np.mean(np.linalg.norm(X - centres[1], axis=1) < np.linalg.norm(X - centres[0], axis=1))
    assert choice.disagreement == pytest.approx(abs(routed - 0.3), abs=1e-4)


def _misrouted() -> tuple[np.ndarray, np.ndarray]:
    """Half the rows come from each member, but member 1's density also covers member 0's rows."""
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [0.3, 0.0]])
    X = np.vstack(
        [rng.normal(size=(100, 2)) * 0.3 + [2.0, 0.0], rng.normal(size=(100, 2)) * 0.3 + [0.3, 0.0]]
    )
    return _gaussian_posteriors(X, centres, 0.5), np.array([0.5, 0.5])


def test_misrouting_with_overlapping_classes_is_still_routed_softly() -> None:
    # Shared classes: the soft router averages where the routes are uncertain, so a large TV is
    # no reason to fall back to one member.
    r, w = _misrouted()
    choice = label_free_choice(r, w, [["a", "b"], ["b", "c"]])
    assert choice.disagreement is not None and choice.disagreement > 0.15
    assert choice.method == "rkme_soft_selector" and "disagree" in choice.reason


def _split(shares: tuple[int, int]) -> np.ndarray:
    return np.vstack([np.tile([0.9, 0.1], (shares[0], 1)), np.tile([0.1, 0.9], (shares[1], 1))])


def test_disjoint_classes_route_while_routing_can_beat_the_best_singles_share() -> None:
    # routes 0.7 / 0.3 vs weights 0.5 / 0.5: TV 0.2 > 0.15, but 1 - 0.2 >= 0.5 -> still route
    choice = label_free_choice(_split((70, 30)), np.array([0.5, 0.5]), [["a", "b"], ["c", "d"]])
    assert choice.disagreement == pytest.approx(0.2) and choice.method == "rkme_soft_selector"
    assert "disjoint" in choice.reason
    # routes 0.5 / 0.5 vs weights 0.8 / 0.2: TV 0.3, 1 - 0.3 < 0.8 -> the best single
    choice = label_free_choice(_split((50, 50)), np.array([0.8, 0.2]), [["a", "b"], ["c", "d"]])
    assert (
        choice.disagreement == pytest.approx(0.3)
        and choice.method == "best_single"
        and choice.disjoint_classes
    )
    # Unknown classes count as shared: routed softly whatever the TV.
    assert (
        label_free_choice(_split((50, 50)), np.array([0.8, 0.2]), [["a", "b"], None]).method
        == "rkme_soft_selector"
    )


def test_rows_of_one_member_keep_the_best_single() -> None:
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = rng.normal(size=(100, 2)) * 0.5
    choice = label_free_choice(_gaussian_posteriors(X, centres, 0.5), np.ones(3), None)
    assert choice.method == "best_single"
    assert choice.route_shares is not None and choice.route_shares[0] == pytest.approx(1.0)


def test_classes_disjoint() -> None:
    assert classes_disjoint([["0", "1"], ["2"], ["3", "4"]])
    assert not classes_disjoint([["0", "1"], ["1", "2"]])
    assert not classes_disjoint([["0"], None])


def test_without_rows_or_with_one_member() -> None:
    assert label_free_choice(None, n_members=2).method == "rkme_soft_selector"
    assert label_free_choice(None, n_members=1).method == "best_single"
    assert label_free_choice(np.ones((3, 1)), np.ones(1)).method == "best_single"


def test_bad_inputs_are_named_errors() -> None:
    with pytest.raises(InvalidDataError):
        label_free_choice(np.array([[0.5, 0.6]]), np.ones(2))
    with pytest.raises(InvalidDataError):
        label_free_choice(np.full((2, 2), 0.5), np.ones(3))
    with pytest.raises(InvalidDataError):
        routing_evidence(np.zeros((0, 2)))
    with pytest.raises(InvalidParameterError):
        label_free_choice(np.full((2, 2), 0.5), None)
    with pytest.raises(InvalidParameterError):
        label_free_choice(np.full((2, 2), 0.5), np.ones(2), single_share=0.0)
