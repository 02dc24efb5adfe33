"""The roofline: each problem's floor at the measured ceilings, and how near kernels come to it."""

import json
from pathlib import Path

import pandas as pd
import pytest

from convbench.problem import ConvProblem
from convbench.report import write_report
from convbench.roofline import ceiling_for, roof, roofline_table

DATA = Path(__file__).parent / "data"


def test_floor_of_a_memory_bound_layer_is_its_bytes_over_the_copy_rate():
    # 1x1, one channel in and out, 100 x 100: 2 FLOP per output against 8 bytes moved per pixel
    problem = ConvProblem.parse("mb1ic1ih100oc1oh100kh1")
    found = roof(problem, sgemm_gflops=100.0, copy_gbps=10.0)
    assert found.flops == 20_000 and found.bytes == 4 * (10_000 + 1 + 10_000)
    assert found.intensity == pytest.approx(20_000 / 80_004)
    assert found.compute_s == pytest.approx(2e-7) and found.memory_s == pytest.approx(8.0004e-6)
    assert found.bound == "memory" and found.seconds == found.memory_s
    assert found.ridge == 10.0
    assert found.attainable_gflops() == pytest.approx(10.0 * found.intensity)


def test_floor_of_a_3x3_layer_is_its_flops_over_the_sgemm_rate():
    problem = ConvProblem.parse("mb1ic64ih56oc64oh56kh3ph1")
    found = roof(problem, sgemm_gflops=400.0, copy_gbps=40.0)
    assert found.flops == 2 * 64 * 56 * 56 * 64 * 9
    assert found.intensity > found.ridge and found.bound == "compute"
    assert found.seconds == pytest.approx(found.flops / 400e9)
    assert found.attainable_gflops() == 400.0


@pytest.mark.parametrize("sgemm, copy", [(0, 10.0), (100.0, None), (-1.0, 5.0)])
def test_a_floor_needs_positive_ceilings(sgemm, copy):
    with pytest.raises(ValueError, match="positive ceilings"):
        roof(ConvProblem.parse("mb1ic1ih8oc1oh8kh1"), sgemm, copy)


def test_ceilings_at_the_pinned_count_and_the_better_of_start_and_end():
    start = {"cpu": {"sgemm_gflops": 400.0, "copy_gbps": 40.0},
             "cpu@1t": {"sgemm_gflops": 200.0, "copy_gbps": 39.0}}
    end = {"cpu": {"sgemm_gflops": 420.0, "copy_gbps": 35.0}}
    assert ceiling_for(start, "cpu@1t", 1)["sgemm_gflops"] == 200.0      # pinned count's own
    both = ceiling_for(start, "cpu", 2, end)          # no cpu@2t: the backend's, best of the two
    assert (both["sgemm_gflops"], both["copy_gbps"]) == (420.0, 40.0)
    assert ceiling_for(start, "gpu") == {} and ceiling_for({}, "cpu", None, end) == {}
    for unknown in (None, float("nan"), pd.NA):        # no count recorded: the backend's own
        assert ceiling_for(start, "cpu", unknown)["sgemm_gflops"] == 400.0


def rows(**overrides):
    row = {"descriptor": "mb1ic64ih56oc64oh56kh3ph1", "layer": "res2a", "backend": "cpu",
           "status": "PASSED", "peer": False, "threads": 2}
    return {**row, **overrides}


def test_table_gives_the_fastest_kernel_and_peer_their_share_of_the_floor():
    frame = pd.DataFrame([rows(algo="direct", median_s=4e-3), rows(algo="im2col", median_s=2e-3),
                          rows(algo="torch", median_s=1e-3, peer=True),
                          rows(algo="fft", median_s=None, status="SKIPPED"),
                          rows(algo="direct", backend="gpu", median_s=1e-4, threads=None)])
    ceilings = {"cpu": {"sgemm_gflops": 400.0, "copy_gbps": 40.0}}
    table = roofline_table(frame, ceilings)
    assert list(table["backend"]) == ["cpu"]          # the GPU measured no ceilings: left out
    row = table.iloc[0]
    floor = 2 * 64 * 56 * 56 * 64 * 9 / 400e9
    assert row["bound"] == "compute" and row["floor_ms"] == pytest.approx(floor * 1e3)
    assert row["best"] == "im2col" and row["best_of_roof"] == pytest.approx(floor / 2e-3)
    assert row["peer"] == "torch" and row["peer_of_roof"] == pytest.approx(floor / 1e-3)


def test_report_has_the_roofline_table_and_figure(tmp_path):
    document = json.loads((DATA / "compare_base.json").read_text())
    write_report([DATA / "compare_base.json"], tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "### Against the roofline" in text
    header = next(line for line in text.splitlines() if line.startswith("| layer | backend | FLOP/B"))
    assert "best_of_roof" in header
    assert len(list(tmp_path.glob("*-roofline.png"))) == 1
    # without a measured copy rate there is no roof to draw: no table, no figure
    del document["ceilings"]["cpu"]["copy_gbps"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(document))
    write_report([bare], tmp_path / "bare")
    assert "Against the roofline" not in (tmp_path / "bare" / "report.md").read_text()
    assert not list((tmp_path / "bare").glob("*-roofline.png"))
