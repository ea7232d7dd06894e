"""``lwm rank-models`` on the user's side: reading the labelled file, its mistakes, the table."""

from __future__ import annotations

import numpy as np
import pytest
from lwm_client import cli
from lwm_client.errors import ConfigError
from lwm_client.model_selection import _images_npz, ranking_table, read_labelled_images, read_labelled_texts
from lwm_client.models import Submission


def test_a_csv_and_a_jsonl_file_give_the_same_texts_and_labels(tmp_path):
    (tmp_path / "a.csv").write_text('text,topic\n"the match, won",sport\nrates rise,money\n')
    (tmp_path / "a.jsonl").write_text(
        '{"text": "the match, won", "topic": "sport"}\n\n{"text": "rates rise", "topic": "money"}\n'
    )
    expected = (["the match, won", "rates rise"], ["sport", "money"])
    assert read_labelled_texts(tmp_path / "a.csv", "topic") == expected
    assert read_labelled_texts(tmp_path / "a.jsonl", "topic") == expected


def test_a_missing_label_column_is_one_line_naming_it_not_a_traceback(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "one", "topic": "a"}\n')
    assert cli.main(["--url", "http://127.0.0.1:9", "rank-models", str(data), "--labels", "label"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'label'" in err[0] and "rank:user:columns" in err[0]


def test_the_table_lists_every_model_with_its_scores_then_the_skipped_ones():
    scores = {"mean": 0.5, "best": 0.75, "best_layer": 1, "layers": [0.25, 0.75]}
    rank = {
        "estimators": ["knn"],
        "candidates": [{"rank": 1, "name": "tiny-a v1", "combined": 1.0, "scores": {"knn": scores}}],
        "skipped_models": [{"name": "big v2", "reason": "the time budget of 1 s was spent"}],
        "explanation": "1 base model(s) ranked",
    }
    table = ranking_table(Submission(id="s", status="succeeded", results={"rank": rank}))
    lines = table.splitlines()
    assert "knn mean/best@layer" in lines[0]
    assert lines[1].split()[:3] == ["1", "tiny-a", "v1"] and "0.5/0.75" in lines[1] and "@1" in lines[1]
    assert "big v2" in lines[2] and "skipped" in lines[2] and lines[3] == "1 base model(s) ranked"


def test_an_npz_of_images_reads_back_and_its_mistakes_are_named(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    (tmp_path / "a.npz").write_bytes(_images_npz(images, [0, 1, 1]))
    read, labels = read_labelled_images(tmp_path / "a.npz", "label")  # no 'label' array: 'y'
    np.testing.assert_array_equal(read, images)
    assert labels == ["0", "1", "1"]
    np.savez(tmp_path / "b.npz", images=images, topic=np.array(["x", "y", "x"]))
    assert read_labelled_images(tmp_path / "b.npz", "topic")[1] == ["x", "y", "x"]
    mistakes = {
        "rank:user:labels": lambda: _images_npz(images, [0, 1]),
        "rank:user:images": lambda: _images_npz(np.zeros((3, 4)), [0, 1, 1]),
        "rank:user:columns": lambda: read_labelled_images(_without_images(tmp_path), "y"),
        "rank:user:bad-file": lambda: read_labelled_images(_not_npz(tmp_path), "y"),
    }
    for code, call in mistakes.items():
        with pytest.raises(ConfigError) as err:
            call()
        assert err.value.code == code, (code, err.value)


def _without_images(tmp_path):
    np.savez(tmp_path / "c.npz", pixels=np.zeros((2, 4, 4)), y=np.array([0, 1]))
    return tmp_path / "c.npz"


def _not_npz(tmp_path):
    (tmp_path / "d.npz").write_text("not a zip")
    return tmp_path / "d.npz"


def test_rank_models_on_an_npz_with_a_wrong_label_array_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", pixels=np.zeros((2, 4, 4)), y=np.array([0, 1]))
    assert cli.main(["--url", "http://127.0.0.1:9", "rank-models", str(tmp_path / "a.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'images'" in err[0] and "rank:user:columns" in err[0]
