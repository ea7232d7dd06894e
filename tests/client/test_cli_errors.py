"""User mistakes on the command line end with one line naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from lwm_client import cli
from lwm_client.downloads import is_folder_target


def test_predict_with_a_missing_package_prints_one_line_naming_it(tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    assert cli.main(["predict", str(tmp_path / "missing.zip"), str(rows)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # Client.load names it (for Python callers too); the CLI prints that one line.
    assert len(err) == 1 and "missing.zip" in err[0] and "predict:user:not-a-package" in err[0]


def test_predict_with_a_file_that_is_not_a_zip_and_json_output(tmp_path, capsys):
    bogus = tmp_path / "model.zip"
    bogus.write_text("not a zip")
    assert cli.main(["--json", "predict", str(bogus), str(bogus)]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "predict:user:not-a-package"


def test_a_download_destination_is_a_folder_unless_it_names_a_zip(tmp_path):
    assert (
        is_folder_target(Path(tmp_path / "out"))
        and is_folder_target(Path("./out"))
        and is_folder_target(tmp_path)
    )
    assert not is_folder_target(Path(tmp_path / "package.zip"))
