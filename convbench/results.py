"""The results file: one JSON document per run under ``results/<machine-id>/``.

Layout (``schema`` 1)::

    {"schema": 1, "convbench_version": "...", "created": ISO time, "machine": {fingerprint},
     "git": {"commit", "dirty", "commit_date"}, "options": {run options}, "ceilings": {...},
     "complete": bool, "rows": [{one row per (problem, algorithm, backend, threads)}],
     "ceilings_end": {...}}   (the CPU's ceilings measured again when the run completed)

The file is rewritten atomically after every finished case (written beside, then renamed), so an
interrupted sweep leaves a valid file holding every finished row. pyperf's own JSON for the same run
sits beside it with the suffix ``.pyperf.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SCHEMA_VERSION = 1
PYPERF_SUFFIX = ".pyperf.json"

# Columns every row carries, in the order tables and CSV show them.
ROW_FIELDS = (
    "descriptor", "name", "algo", "backend", "threads", "peer", "status", "reason",
    "rel_l2", "max_err", "tolerance",
    "median_s", "mad_s", "stdev_s", "values", "loops", "gflops", "sgemm_fraction",
    "workspace_bytes", "impl", "prepare_s", "first_call_s", "source_hash", "code_hash",
    "reach_hash",
    "n", "c", "h", "w", "k", "r", "s", "stride_h", "stride_w", "pad_h", "pad_w",
    "dilation_h", "dilation_w", "groups", "flops", "count", "case_wall_s", "busy_other_pct", "steal_pct",
    "samples_s", "process_medians_s", "stages_s", "threads_seen", "unavailable",
)


class ResultsError(ValueError):
    """A results file that cannot be read: missing, corrupt, or of a schema this code does not know."""


def write_atomic(path, document):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(document, handle, indent=1, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_document(path):
    """The parsed JSON of a results file, checked for schema version and shape."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: not a readable results file ({error})") from None
    if not isinstance(document, dict) or "schema" not in document:
        raise ResultsError(f"{path}: not a convbench results file (no 'schema' field)")
    if document["schema"] != SCHEMA_VERSION:
        raise ResultsError(f"{path}: results schema {document['schema']!r} is not supported; "
                           f"this convbench reads schema {SCHEMA_VERSION}")
    rows = document.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ResultsError(f"{path}: 'rows' must be a list of objects")
    for field in ("machine", "git", "options"):
        if not isinstance(document.get(field), dict):
            raise ResultsError(f"{path}: missing or malformed '{field}' section")
    return document


def unrecorded_threads(document):
    """The thread count for the CPU rows of a file written before rows recorded theirs: what its
    machine section says the environment gave, or its core count."""
    return document["machine"].get("threads") or document["machine"].get("cpu_count")


def load_results(*paths):
    """One pandas DataFrame of the rows of one or more results files.

    Each row gains ``machine_id``, ``commit``, ``commit_date``, ``created``, ``mode`` (timing effort)
    and ``file`` columns so rows from several runs and machines can be told apart. ``threads`` is
    the CPU thread count of the case (None on the GPU); files from before rows carried it get the
    count their machine section records, or its core count.

    Raises
    ------
    ResultsError
        Naming the file, for a missing or corrupt file or an unknown schema version.
    """
    import pandas as pd

    frames = []
    for path in paths:
        document = read_document(path)
        frame = pd.DataFrame(document["rows"], columns=None)
        for field in ROW_FIELDS:
            if field not in frame.columns:
                frame[field] = None
        default = unrecorded_threads(document)
        missing = frame["threads"].isna() & (frame["backend"] == "cpu")
        frame["threads"] = pd.array([default if fill else value for fill, value in
                                     zip(missing, frame["threads"])], dtype="Int64")
        frame["machine_id"] = document["machine"].get("machine_id")
        frame["commit"] = document["git"].get("commit")
        frame["commit_date"] = document["git"].get("commit_date")
        frame["created"] = document.get("created")
        frame["mode"] = document["options"].get("mode")
        frame["file"] = str(path)
        frames.append(frame)
    if not frames:
        raise ResultsError("no results files given")
    return pd.concat(frames, ignore_index=True)


def mixed_thread_backends(frame):
    """The backends that ``frame`` holds at more than one thread count."""
    if "threads" not in frame.columns:
        return set()
    counts = frame.dropna(subset=["threads"]).groupby("backend")["threads"].nunique()
    return set(counts[counts > 1].index)


def split_threads(frame, backends=None):
    """``frame`` with the thread count folded into ``backend`` (``cpu@1t``, ``cpu@2t``) for the
    given backends (default: :func:`mixed_thread_backends`), so tables and figures grouped by
    backend keep the counts apart; a frame with one count per backend comes back unchanged."""
    if backends is None:
        backends = mixed_thread_backends(frame)
    if not backends:
        return frame
    mixed = frame["backend"].isin(list(backends)) & frame["threads"].notna()
    if not mixed.any():
        return frame
    labels = [f"{backend}@{int(threads)}t" if split else backend
              for backend, threads, split in zip(frame["backend"], frame["threads"], mixed)]
    return frame.assign(backend=labels)


def kernel_labels(frame):
    """``algo/backend`` per row, with ``@Nt`` where the frame holds a backend at several thread
    counts (see :func:`split_threads`)."""
    split = split_threads(frame)
    return split["algo"] + "/" + split["backend"]


def export_csv(results_path, csv_path):
    """Write the rows of a results file as CSV for a spreadsheet."""
    frame = load_results(results_path)
    frame.to_csv(csv_path, index=False)
    return csv_path


def results_files(root, machine_id=None, pattern=None):
    """Results files under ``root`` (optionally for one machine, or matching ``pattern``), oldest
    first by creation time."""
    root = Path(root)
    pattern = pattern or (f"{machine_id}/*.json" if machine_id else "*/*.json")
    files = [path for path in root.glob(pattern)
             if not path.name.endswith(PYPERF_SUFFIX) and path.name != "ceilings.json"]
    return sorted(files, key=lambda path: path.name)
