"""Search by data finds the feature space from the file itself (header, shape, file type, RKME)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace
from marketplace.search.detect import csv_header, detect_space

pytestmark = pytest.mark.django_db


@pytest.fixture
def spaces():
    def table(key, columns):
        return FeatureSpace.objects.create(
            key=key, kind="table", dim=len(columns), gamma=0.1, schema={"columns": columns}
        )

    return [
        table("table-flights", ["dep_delay", "distance", "hour", "month", "air_time"]),
        table("table-diamonds", ["carat", "depth", "table", "x", "y"]),
        table("table-three", ["a", "b", "c"]),
        FeatureSpace.objects.create(
            key="image-conv-0",
            kind="image",
            dim=128,
            gamma=0.5,
            schema={"encoder": "ConvImageEncoder"},
            encoder_id="conv-seed-0",
        ),
        FeatureSpace.objects.create(
            key="text-minilm", kind="text", dim=384, gamma=0.5, schema={}, encoder_id="all-minilm-l6-v2"
        ),
    ]


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_a_csv_header_picks_its_table_space_among_spaces_of_the_same_width(spaces):
    got = detect_space(
        name="flights.csv", content=b"dep_delay,distance,hour,month,air_time\n1,2,3,4,5\n", spaces=spaces
    )
    assert got.space.key == "table-flights" and "5 columns" in got.how


def test_columns_are_matched_by_name_in_any_order_with_extras_ignored(spaces):
    got = detect_space(name="d.csv", content=b"depth,carat,table,x,y\n1,2,3,4,5\n", spaces=spaces)
    assert got.space.key == "table-diamonds"
    got = detect_space(name="d.csv", content=b"id,y,x,table,depth,carat,note\n0,1,2,3,4,5,6\n", spaces=spaces)
    assert got.space.key == "table-diamonds" and "2 not used by the space, ignored" in got.how


def test_a_column_map_renames_the_header_and_bad_maps_are_named(spaces):
    content = b"departure_delay,distance,hour,month,air_time\n1,2,3,4,5\n"
    partial = detect_space(
        name="f.csv", content=content, spaces=spaces
    )  # 4 of its 5 columns: searched on those
    assert partial.space.key == "table-flights" and "missing: dep_delay" in partial.how
    with pytest.raises(ValidationFailed) as err:
        detect_space(name="f.csv", content=b"q,r,s\n1,2,3\n", spaces=spaces)
    assert err.value.code == "search:user:no-space"
    got = detect_space(
        name="f.csv", content=content, spaces=spaces, column_map={"departure_delay": "dep_delay"}
    )
    assert got.space.key == "table-flights"
    with pytest.raises(ValidationFailed) as err:
        detect_space(name="f.csv", content=content, spaces=spaces, column_map={"dep": "dep_delay"})
    assert err.value.code == "search:user:column-map-unknown-column"
    with pytest.raises(ValidationFailed) as err:
        detect_space(name="f.csv", content=content, spaces=spaces, column_map={"departure_delay": "hour"})
    assert err.value.code == "search:user:column-map-duplicate-target"


def test_unnamed_columns_of_a_unique_width_are_detected_and_ambiguous_widths_ask(spaces):
    assert detect_space(name="d.csv", content=b"1,2,3\n4,5,6\n", spaces=spaces).space.key == "table-three"
    with pytest.raises(ValidationFailed) as err:
        detect_space(name="d.csv", content=b"1,2,3,4,5\n", spaces=spaces)
    assert err.value.code == "search:user:ambiguous-space"
    assert set(err.value.details["spaces"]) == {"table-flights", "table-diamonds"}
    chosen = detect_space(name="d.csv", content=b"1,2,3,4,5\n", spaces=spaces, chosen="table-diamonds")
    assert chosen.space.key == "table-diamonds"


def test_npz_tables_images_texts_and_rkme_files(spaces):
    assert (
        detect_space(name="x.npz", content=npz(X=np.zeros((4, 3))), spaces=spaces).space.key == "table-three"
    )
    images = detect_space(
        name="x.npz", content=npz(X=np.zeros((4, 1, 28, 28), dtype=np.uint8)), spaces=spaces
    )
    assert images.space.key == "image-conv-0" and "1 × 28 × 28" in images.how
    assert detect_space(name="t.txt", content=b"a text\n", spaces=spaces).space.key == "text-minilm"
    rkme = json.dumps({"Z": [[0.0] * 384], "beta": [1.0]}).encode()
    assert detect_space(name="rkme.json", content=rkme, spaces=spaces).space.key == "text-minilm"
    with pytest.raises(ValidationFailed) as err:
        detect_space(name="x.npz", content=npz(X=np.zeros((4, 7))), spaces=spaces)
    assert err.value.code == "search:user:no-space"


@pytest.mark.parametrize(
    "first,header", [(b"a,b,c\n", ["a", "b", "c"]), (b"1,2.5,-3e4\n", None), (b"1,x\n", ["1", "x"])]
)
def test_a_header_is_a_first_line_with_a_non_number(first, header):
    assert csv_header(first + b"1,2,3\n") == header
