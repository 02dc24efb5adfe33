import json
import shutil
from pathlib import Path

import pytest

from convbench.results import (ROW_FIELDS, SCHEMA_VERSION, ResultsError, export_csv, load_results,
                               read_document, write_atomic)

DATA = Path(__file__).parent / "data"


def golden():
    return DATA / "base.json"


def test_golden_file_loads_into_dataframe():
    frame = load_results(golden())
    assert len(frame) == len(json.loads(golden().read_text())["rows"])
    for field in ROW_FIELDS:
        assert field in frame.columns
    assert set(frame["machine_id"]) == {"test-machine-2c"}
    assert frame["commit"].iloc[0].startswith("aaaa")


def test_round_trip(tmp_path):
    document = read_document(golden())
    target = tmp_path / "copy.json"
    write_atomic(target, document)
    assert read_document(target) == document
    assert not list(tmp_path.glob(".*.tmp"))


def test_unknown_schema_version_is_refused_naming_file(tmp_path):
    document = read_document(golden())
    document["schema"] = SCHEMA_VERSION + 1
    path = tmp_path / "future.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsError, match=f"{path}.*schema {SCHEMA_VERSION + 1}"):
        load_results(path)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a readable results file"),
    ("[1, 2]", "not a convbench results file"),
    ('{"schema": 1, "rows": 3, "machine": {}, "git": {}, "options": {}}', "'rows' must be a list"),
    ('{"schema": 1, "rows": []}', "missing or malformed 'machine'"),
])
def test_corrupt_files_are_refused_naming_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=message) as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "nope.json")


def test_csv_export(tmp_path):
    import pandas as pd
    source = tmp_path / "run.json"
    shutil.copy(golden(), source)
    csv = export_csv(source, tmp_path / "run.csv")
    frame = pd.read_csv(csv)
    assert list(frame["descriptor"]) == list(load_results(source)["descriptor"])
    assert "gflops" in frame.columns
