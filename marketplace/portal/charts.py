"""Charts as server-side SVG: horizontal bars and a 2-D projection of RKME points.

No JavaScript is needed to see them; every chart carries a ``<title>`` and an
``aria-label`` and is accompanied by a table of the same numbers in the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = {
    "default": "#0b5cad",
    "chosen": "#1a7f37",
    "baseline": "#8a5a00",
    "muted": "#6e7781",
    "user": "#d1242f",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    kind: str = "default"  # a key of COLOURS


def bar_chart(
    bars: Sequence[Bar], *, title: str, fmt: str = "{:.3f}", lo: float | None = None, hi: float | None = None
) -> SafeString:
    """Horizontal bars scaled to [lo, hi] (default: [min(0, values), max(values)])."""
    if not bars:
        return mark_safe("")
    values = np.array([b.value for b in bars], dtype=float)
    lo = min(0.0, float(np.nanmin(values))) if lo is None else lo
    hi = float(np.nanmax(values)) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    label_w, bar_w, row_h, pad = 290, 360, 28, 8
    width, height = label_w + bar_w + 80, pad * 2 + row_h * len(bars)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, bar in enumerate(bars):
        y = pad + i * row_h
        v = 0.0 if np.isnan(bar.value) else bar.value
        length = max(1.0, (v - lo) / span * bar_w)
        label = bar.label if len(bar.label) <= 44 else bar.label[:43] + "…"
        colour = COLOURS.get(bar.kind, COLOURS["default"])
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{length:.1f}" height="{row_h - 10}" rx="3" '
            f'fill="{colour}">'
            f"<title>{escape(bar.label)}: {escape(fmt.format(bar.value))}</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + length + 6:.1f}" '
            f'y="{y + row_h / 2 + 4:.1f}">{escape(fmt.format(bar.value))}</text>'
        )
    parts.append(f'<line class="axis" x1="{label_w}" y1="{pad}" x2="{label_w}" y2="{height - pad}"/></svg>')
    return mark_safe("".join(parts))  # noqa: S308 - every text above went through escape()


def pca_2d(X: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Project ``X`` (n, d) and ``others`` (m, d) onto the top two principal axes of ``X``.

    The axes are the right singular vectors of the centred ``X`` (the eigenvectors of its
    covariance), signed so each axis's largest loading is positive; with d = 1 the second
    coordinate is 0.
    """
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(axes.shape[0]), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    out = []
    for A in (X, *others):
        P = (np.asarray(A, dtype=float) - mean) @ axes.T
        if P.shape[1] < 2:
            P = np.hstack([P, np.zeros((P.shape[0], 2 - P.shape[1]))])
        out.append(P)
    return out


@dataclass(frozen=True)
class PointSet:
    name: str
    xy: np.ndarray  # (n, 2)
    weights: np.ndarray  # (n,), the RKME's beta: marker area is proportional to it
    kind: str = "default"


def scatter(sets: Sequence[PointSet], *, title: str, size: int = 360) -> SafeString:
    """A square scatter plot; marker area proportional to each point's weight within its set."""
    sets = [s for s in sets if len(s.xy)]
    if not sets:
        return mark_safe("")
    allxy = np.vstack([s.xy for s in sets])
    lo, hi = allxy.min(axis=0), allxy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    pad = 24
    parts = [
        f'<svg class="chart" viewBox="0 0 {size} {size}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" style="max-width:{size + 60}px"><title>{escape(title)}</title>'
        f'<rect x="0.5" y="0.5" width="{size - 1}" height="{size - 1}" fill="#fff" stroke="#d0d7de"/>'
    ]
    for s in sets:
        w = np.clip(np.asarray(s.weights, dtype=float), 0, None)
        area = w / w.max() if w.max() > 0 else np.ones_like(w)
        radius = 2.0 + 9.0 * np.sqrt(area)
        colour = COLOURS.get(s.kind, COLOURS["default"])
        for (x, y), r in zip(s.xy, radius, strict=True):
            cx = pad + (x - lo[0]) / span[0] * (size - 2 * pad)
            cy = size - pad - (y - lo[1]) / span[1] * (size - 2 * pad)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{colour}" fill-opacity="0.55" '
                f'stroke="{colour}"/>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped titles only
