"""The GPU path of the harness, end to end, on the CPU stand-in for CuPy (tests/fakecuda).

A sweep with ``--backend gpu`` goes through everything a GPU box would: the per-case process moving
inputs to the device, validation, loops calibrated with CUDA-event timing, pyperf's worker processes
importing CuPy, rows with the GPU ceilings. Only the speed is not a GPU's.
"""

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from convbench.ceilings import measure_gpu
from convbench.machine import machine_id
from convbench.problem import ConvProblem
from convbench.registry import all_kernels, get_kernel
from convbench.results import load_results

from .fakecuda import HERE as FAKECUDA, compiler_missing_reason, emulated_cupy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(compiler_missing_reason() is not None,
                                reason=compiler_missing_reason() or "")


def test_gpu_ceilings_are_measured_with_cuda_events():
    with emulated_cupy():
        found = measure_gpu(sgemm_size=64, copy_bytes=1 << 20)
    assert found["sgemm_size"] == 64 and found["copy_bytes"] == 1 << 20
    assert found["sgemm_gflops"] > 0 and found["copy_gbps"] > 0


def test_gpu_sweep_end_to_end(tmp_path):
    out = tmp_path / "results"
    shapes = tmp_path / "two.txt"
    shapes.write_text('mb2ic3ih9iw11oc4oh9ow11kh3ph1n"odd3x3"\nmb1ic4ih8oc6oh4kh3sh2ph1n"stride2"\n'
                      'mb1ic3ih9iw10oc4oh9ow10kh5ph2n"pad5x5"\n')
    # The sweep would measure the ceilings at full size (a 1 GiB copy); store small ones first.
    with emulated_cupy():
        ceilings = measure_gpu(sgemm_size=64, copy_bytes=1 << 20)
    (out / machine_id()).mkdir(parents=True)
    (out / machine_id() / "ceilings.json").write_text(json.dumps({"gpu": ceilings}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(FAKECUDA), str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "convbench", "run", "--shapes", str(shapes),
                           "--backend", "gpu", "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted((out / machine_id()).glob("2*.json"))
    files = [f for f in files if not f.name.endswith(".pyperf.json")]
    assert len(files) == 1
    frame = load_results(files[0])
    gpu_algos = {k.spec.algo for k in all_kernels() if k.spec.backend == "gpu"}
    assert set(frame["backend"]) == {"gpu"} and set(frame["algo"]) == gpu_algos
    ours = frame[~frame["peer"]]
    for row in ours.itertuples():
        problem = ConvProblem.parse(row.descriptor)
        refused = get_kernel(row.algo, "cpu").supports(problem)   # the CPU twin's limits
        if refused:
            assert row.status == "SKIPPED" and row.reason.startswith(refused.split(";")[0])
        else:
            assert row.status == "PASSED", (row.algo, row.descriptor, row.reason)
            assert row.median_s > 0 and row.gflops > 0 and row.rel_l2 < 1e-5
            assert row.sgemm_fraction == pytest.approx(row.gflops / ceilings["sgemm_gflops"])
    peer = frame[frame["peer"]]
    assert (peer["status"] == "SKIPPED").all()   # no cuDNN under the emulator
    # and the report draws the GPU rows: table columns per GPU kernel, figures written
    from convbench.report import write_report
    target = write_report([files[0]], tmp_path / "report")
    text = target.read_text()
    for algo in gpu_algos - {"torch"}:
        assert f"{algo}/gpu" in text
    assert len(list((tmp_path / "report").glob("*.png"))) >= 3
    # the roofline at the GPU's cached ceilings: a table row per layer and the figure
    roof_rows = [line for line in text.split("### Against the roofline")[1].splitlines()
                 if line.split(" | ")[:2] in (["| odd3x3", "gpu"], ["| stride2", "gpu"],
                                              ["| pad5x5", "gpu"])]
    assert len(roof_rows) == 3
    assert len(list((tmp_path / "report").glob("*-gpu-roofline.png"))) == 1


def test_ab_times_gpu_kernels_with_cuda_events(tmp_path):
    """convbench ab on the GPU path: workers move inputs to the device and time with CUDA events."""
    import shutil
    for side in ("base", "new"):
        shutil.copytree(ROOT / "kernels", tmp_path / side / "kernels")
    shapes = tmp_path / "one.txt"
    shapes.write_text('mb1ic3ih9iw11oc4kh3ph1n"odd3x3"\n')
    out = tmp_path / "ab.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(FAKECUDA), str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "convbench", "ab", "--base", str(tmp_path / "base"),
                           "--new", str(tmp_path / "new"), "--shapes", str(shapes),
                           "--backend", "gpu", "--algo", "im2col,winograd", "--processes", "3",
                           "--rounds", "1", "--min-time", "0.001", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = json.loads(out.read_text())["cases"]
    assert [(case["algo"], case["backend"], case["status"]) for case in cases] == \
        [("im2col", "gpu", "PASSED"), ("winograd", "gpu", "PASSED")]
    for case in cases:
        assert case["same_source"] is True and case["identical_output"] is True
        assert len(case["samples"]) == 3 and all(base > 0 and new > 0
                                                  for pairs in case["samples"]
                                                  for base, new in pairs)


def test_gpu_check_script_runs_its_stages_and_packs_the_results(tmp_path):
    """tools/gpu_check.sh as the first call on a lent GPU runs it (env, then a shape set), on the
    stand-in: each stage's log, and results.tgz holding results/<machine-id>/ to commit. The
    results root is a scratch folder (RESULTS), so the checkout gains nothing."""
    results, out = tmp_path / "results", tmp_path / "out"
    with emulated_cupy():
        ceilings = measure_gpu(sgemm_size=64, copy_bytes=1 << 20)
    (results / machine_id()).mkdir(parents=True)
    (results / machine_id() / "ceilings.json").write_text(json.dumps({"gpu": ceilings}))
    before = sorted((ROOT / "results").rglob("*"))
    env = dict(os.environ, OUT=str(out), RESULTS=str(results), PYTHON=sys.executable,
               BUDGET="500", PYTHONPATH=os.pathsep.join(
                   filter(None, [str(FAKECUDA), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "env", "smoke"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    # no nvidia-smi and no CUDA versions under the stand-in: the env stage says so, status 1
    assert proc.returncode == 1 and "=== done" in proc.stdout, proc.stdout + proc.stderr
    env_text = (out / "env.txt").read_text()
    assert f"machine id: {machine_id()}" in env_text
    assert "CUDA runtime FAILED" in env_text and re.search(r"^numpy \d", env_text, re.M)
    log = (out / "smoke.log").read_text()
    assert re.search(r"^\d+ cases: \d+ PASSED", log, re.M), log[-2000:]
    with tarfile.open(out / "results.tgz") as packed:
        names = packed.getnames()
    runs = [name for name in names if re.fullmatch(
        rf"results/{re.escape(machine_id())}/\d{{8}}T\d{{6}}Z_\w+(-dirty)?\.json", name)]
    assert len(runs) == 1, names
    assert sorted((ROOT / "results").rglob("*")) == before
