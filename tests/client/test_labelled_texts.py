"""``Client.submit(data=texts, labelled=(texts, y), modality="text")``: the labelled texts travel as
JSONL, the one labelled format the market takes beside uploaded texts. They went as NPZ embeddings,
and the pipeline refused every such submission (``submission:user:bad-format``), found by
``benchmarks/reuse_markets.py --via api --markets bbc``. Checked with the market's own parser."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client.submission_form import submission_request  # noqa: E402

from marketplace.submissions.apis import _infer_format  # noqa: E402
from marketplace.submissions.data import read_texts  # noqa: E402

TEXTS = [
    "Shares rose after the merger.",
    'A "quoted" film review\nover two lines.',
    "Élection: les résultats.",
]
LABELS = np.asarray(["business", "entertainment", "politics"])


class _Upload:
    def __init__(self, name: str) -> None:
        self.name = name


def test_labelled_texts_beside_uploaded_texts_go_as_jsonl_the_market_reads() -> None:
    request = submission_request(
        None,
        data=["a text to classify", "another"],
        labelled=(TEXTS, LABELS),
        task="classification",
        modality="text",
        requirements=None,
        name="",
        column_map=None,
    )
    name, raw, _ = request["files"]["labelled"]
    assert _infer_format(_Upload(name), "", "labelled") == "jsonl"
    parsed = read_texts(raw, field="labelled", labelled=True)
    assert list(parsed.texts) == TEXTS
    assert [str(v) for v in parsed.y] == LABELS.tolist()


def test_integer_labels_stay_numbers() -> None:
    request = submission_request(
        None,
        data=TEXTS,
        labelled=(TEXTS, np.array([0, 1, 0])),
        task="classification",
        modality="text",
        requirements=None,
        name="",
        column_map=None,
    )
    parsed = read_texts(request["files"]["labelled"][1], field="labelled", labelled=True)
    assert [int(v) for v in parsed.y] == [0, 1, 0]
