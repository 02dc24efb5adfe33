"""compare on golden results files: A/A, a 25 % slowdown, an improvement, missing/new/failing cases."""

import subprocess
import sys
from pathlib import Path

import pytest

from convbench.compare import Thresholds, compare_frames, regressions, render, timing_verdict
from convbench.results import load_results

DATA = Path(__file__).parent / "data"


def verdicts(base, new, **kwargs):
    frame = compare_frames(load_results(DATA / base), load_results(DATA / new), Thresholds(**kwargs))
    return frame, dict(zip(zip(frame["name"], frame["algo"]), frame["verdict"]))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "convbench", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_aa_pair_has_no_regression():
    frame, by_case = verdicts("compare_base.json", "compare_aa.json")
    assert set(by_case.values()) == {"same"}
    assert regressions(frame).empty


def test_same_file_against_itself_is_all_same():
    frame, by_case = verdicts("compare_base.json", "compare_base.json")
    assert set(by_case.values()) == {"same"}
    assert (frame["ratio"] == 1.0).all()


def test_one_case_25_percent_slower_is_exactly_that_regression():
    frame, by_case = verdicts("compare_base.json", "compare_slower.json")
    bad = regressions(frame)
    assert list(zip(bad["name"], bad["algo"])) == [("smoke:3x3_odd", "direct")]
    assert bad["ratio"].iloc[0] == pytest.approx(1.25, rel=0.03)
    assert bad["p_value"].iloc[0] < 0.01
    others = {case: v for case, v in by_case.items() if case != ("smoke:3x3_odd", "direct")}
    assert set(others.values()) == {"same"}


def test_faster_case_is_an_improvement_not_a_regression():
    frame, by_case = verdicts("compare_base.json", "compare_faster.json")
    assert by_case[("smoke:5x5", "direct")] == "faster"
    assert regressions(frame).empty


def test_missing_new_failing_and_changed_source_are_listed():
    frame, by_case = verdicts("compare_base.json", "compare_changed.json")
    assert by_case[("smoke:1x1_groups2", "direct")] == "only in base"
    assert by_case[("smoke:5x5_new", "direct")] == "only in new"
    assert by_case[("smoke:3x3_stride2", "direct")] == "new failure"
    changed = frame[frame["source_changed"]]
    assert list(zip(changed["name"], changed["algo"])) == [("smoke:5x5", "direct")]
    assert list(regressions(frame)["name"]) == ["smoke:3x3_stride2"]


def test_min_change_threshold_is_settable():
    _, by_case = verdicts("compare_base.json", "compare_slower.json", min_change=0.30)
    assert by_case[("smoke:3x3_odd", "direct")] == "same"


def test_large_change_without_significance_is_not_a_regression():
    base = {"median_s": 1.0, "mad_s": 0.01, "samples_s": [1.0, 1.01, 0.99]}
    new = {"median_s": 1.3, "mad_s": 0.01, "samples_s": [1.3, 1.31, 1.29]}
    verdict, ratio, p_value, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same" and "not significant" in why  # 3 vs 3 values cannot reach p < 0.01
    assert ratio == pytest.approx(1.3)


def test_change_inside_noise_floor_is_not_a_regression():
    base = {"median_s": 1.0, "mad_s": 0.1, "samples_s": list(1 + 0.1 * (i % 3 - 1) for i in range(20))}
    new = {"median_s": 1.15, "mad_s": 0.1, "samples_s": list(1.15 + 0.1 * (i % 3 - 1) for i in range(20))}
    verdict, _, _, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same" and "noise floor" in why


def test_cli_exit_status_gates_ci():
    assert cli(DATA / "compare_base.json", DATA / "compare_aa.json").returncode == 0
    slower = cli(DATA / "compare_base.json", DATA / "compare_slower.json")
    assert slower.returncode == 1
    assert "verdict: REGRESSION" in slower.stdout and "smoke:3x3_odd" in slower.stdout
    assert cli(DATA / "compare_base.json", DATA / "compare_faster.json").returncode == 0
    assert cli(DATA / "compare_base.json", DATA / "compare_changed.json").returncode == 1


def test_markdown_output():
    out = cli(DATA / "compare_base.json", DATA / "compare_slower.json", "--markdown").stdout
    assert out.startswith("| case | kernel | base_ms | new_ms | ratio | verdict |")
    assert "| slower |" in out


def test_corrupt_or_unknown_version_exits_2_naming_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 99, "rows": []}')
    proc = cli(DATA / "compare_base.json", bad)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "schema 99" in proc.stderr


def test_render_plain_lists_every_case():
    frame, _ = verdicts("compare_base.json", "compare_changed.json")
    text = render(frame)
    for name in ("smoke:1x1_groups2", "smoke:5x5_new", "smoke:3x3_stride2", "source changed"):
        assert name in text


def test_worker_processes_are_the_unit_when_both_runs_have_them():
    """Raw values cleanly separated but worker medians overlapping: not significant."""
    base_procs = [1.00, 1.20, 0.90, 1.10, 1.00, 1.25]
    new_procs = [1.25, 1.05, 1.30, 1.15, 1.35, 1.20]
    base = {"median_s": 1.05, "mad_s": 0.001, "process_medians_s": base_procs,
            "samples_s": [1.0 + 0.001 * i for i in range(18)]}
    new = {"median_s": 1.22, "mad_s": 0.001, "process_medians_s": new_procs,
           "samples_s": [1.22 + 0.001 * i for i in range(18)]}
    verdict, _, p_value, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same", why
    # the same rows without process medians would look like a clear regression
    raw = timing_verdict({k: v for k, v in base.items() if k != "process_medians_s"},
                         {k: v for k, v in new.items() if k != "process_medians_s"}, Thresholds())
    assert raw[0] == "slower"


def test_separated_worker_medians_are_significant():
    base = {"median_s": 1.0, "mad_s": 0.01, "process_medians_s": [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]}
    new = {"median_s": 1.25, "mad_s": 0.01, "process_medians_s": [1.25, 1.26, 1.24, 1.27, 1.23, 1.25]}
    verdict, ratio, p_value, _ = timing_verdict(base, new, Thresholds())
    assert verdict == "slower" and p_value < 0.01 and ratio == pytest.approx(1.25)
