"""Server-side charts checked against independent computations."""

from __future__ import annotations

import re

import numpy as np
from numpy.testing import assert_allclose
from sklearn.decomposition import PCA

from marketplace.portal.charts import Bar, PointSet, bar_chart, pca_2d, scatter
from marketplace.portal.markdown import render_markdown


def test_pca_2d_matches_sklearn_up_to_the_sign_of_each_axis():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5)) @ rng.normal(size=(5, 5))
    Y = rng.normal(size=(7, 5))
    P, Q = pca_2d(X, Y)
    pca = PCA(n_components=2).fit(X)
    ref_P, ref_Q = pca.transform(X), pca.transform(Y)
    signs = np.sign((P * ref_P).sum(axis=0))
    assert_allclose(P, ref_P * signs, atol=1e-9)
    assert_allclose(Q, ref_Q * signs, atol=1e-9)  # other sets use X's mean and axes


def test_pca_2d_of_one_column_pads_a_zero_axis():
    (P,) = pca_2d(np.arange(6.0)[:, None])
    assert_allclose(P[:, 1], 0.0)
    assert_allclose(np.abs(P[:, 0]), np.abs(np.arange(6.0) - 2.5))


def test_bar_lengths_are_proportional_to_values_and_labels_escaped():
    svg = str(bar_chart([Bar("<b>a</b>", 0.5), Bar("b", 1.0), Bar("c", 0.25)], title="t", lo=0.0, hi=1.0))
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert_allclose(np.array(widths) / widths[1], [0.5, 1.0, 0.25], rtol=1e-3)
    assert "<b>" not in svg and "&lt;b&gt;a&lt;/b&gt;" in svg


def test_scatter_marker_area_is_proportional_to_weight():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]])
    svg = str(scatter([PointSet("s", xy, np.array([1.0, 0.25, 0.0]))], title="t"))
    radii = np.array([float(r) for r in re.findall(r'r="([\d.]+)"', svg)])
    assert_allclose((radii - 2.0) ** 2 / 81.0, [1.0, 0.25, 0.0], atol=2e-3)


def test_markdown_keeps_formatting_and_drops_active_content():
    html = str(
        render_markdown("**bold** <script>x()</script> [a](javascript:y()) <span onmouseover=z()>s</span>")
    )
    assert "<strong>bold</strong>" in html
    assert "script" not in html and "javascript" not in html and "onmouseover" not in html
