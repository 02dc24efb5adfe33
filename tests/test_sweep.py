"""The sweep end to end, in child processes, on the tiny `smoke` set."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.problem import ConvProblem
from convbench.registry import select
from convbench.results import load_results, read_document
from convbench.shapes import load_shapes

DATA_DIR = Path(__file__).parent / "data"

pytestmark = pytest.mark.sweep


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "convbench", *args], capture_output=True, text=True,
                          timeout=timeout)


def only_results(root):
    return [p for p in root.glob("*/*.json") if not p.name.endswith(".pyperf.json")
            and p.name != "ceilings.json"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    proc = run_cli("run", "--shapes", "smoke", "--backend", "cpu", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    files = only_results(out)
    assert len(files) == 1
    return proc, files[0]


def test_smoke_sweep_writes_one_row_per_case(smoke_run):
    _, path = smoke_run
    frame = load_results(path)
    problems = load_shapes("smoke")
    kernels = select(None, ["cpu"])
    assert len(frame) == len(problems) * len(kernels)
    assert set(frame["descriptor"]) == {p.descriptor for p in problems}
    assert set(frame["status"]) <= {"PASSED", "SKIPPED"}
    passed = frame[frame["status"] == "PASSED"]
    assert len(passed) >= len(problems)  # direct runs everything
    assert (passed["median_s"] > 0).all() and (passed["gflops"] > 0).all()
    assert (passed["rel_l2"] < passed["tolerance"]).all()
    assert passed["source_hash"].str.len().eq(12).all()
    assert passed["code_hash"].str.len().eq(12).all()
    assert (passed["code_hash"] != passed["source_hash"]).all()   # the kernels have comments
    assert (passed["sgemm_fraction"] > 0).all()
    skipped = frame[frame["status"] == "SKIPPED"]
    assert (skipped["reason"].str.len() > 0).all()


def test_smoke_sweep_file_metadata(smoke_run):
    _, path = smoke_run
    document = read_document(path)
    assert document["complete"] is True
    assert document["options"]["mode"] == "quick"
    assert document["machine"]["cpu_count"] >= 1
    assert document["ceilings"]["cpu"]["sgemm_gflops"] > 0
    assert document["ceilings_end"]["cpu"]["sgemm_gflops"] > 0   # measured again at the end
    assert path.parent.name == document["machine"]["machine_id"]


def test_smoke_sweep_prints_table_and_path(smoke_run):
    proc, path = smoke_run
    assert "smoke:3x3_odd" in proc.stdout and "PASSED" in proc.stdout
    assert str(path) in proc.stdout
    statuses = load_results(path)["status"].value_counts()
    assert f"{statuses.sum()} cases: {statuses['PASSED']} PASSED, {statuses['SKIPPED']} SKIPPED" \
        in proc.stdout
    assert re.search(r"cpu SGEMM ceiling: \d+ GFLOP/s at the start, \d+ at the end", proc.stdout)
    total = len(load_shapes("smoke")) * len(select(None, ["cpu"]))
    assert re.search(rf"\[\s*{total}/{total}\] ", proc.stderr)  # one progress line per case


def test_progress_lines_say_how_long_the_cases_still_to_run_will_take(smoke_run):
    """After each case: the mean wall time of the cases run so far times the cases still to
    run (skipped ones take none); nothing before the first case has run, nor after the last."""
    proc, path = smoke_run
    lines = re.findall(r"^\[\s*(\d+)/(\d+)(?: ~(\d+):(\d\d) left)?\] ", proc.stderr, re.M)
    rows = read_document(path)["rows"]              # in the order they ran
    assert len(lines) == len(rows)
    ran = [row["status"] != "SKIPPED" for row in rows]
    for done, total, minutes, seconds in lines:
        done, total = int(done), int(total)
        walls = [row["case_wall_s"] for row, was_run in zip(rows[:done], ran) if was_run]
        if done == total or not walls:
            assert minutes == "", (done, total)
            continue
        expected = sum(walls) / len(walls) * sum(ran[done:])
        assert abs(int(minutes) * 60 + int(seconds) - expected) <= 0.5 + 1e-9, (done, expected)


def test_show_reprints_a_saved_runs_table(smoke_run, tmp_path):
    run, path = smoke_run
    proc = run_cli("show", str(path))
    assert proc.returncode == 0, proc.stderr
    def table(text):
        return [line for line in text.splitlines() if line.startswith("smoke:")]

    assert table(proc.stdout) == table(run.stdout)     # the table run printed at its end
    assert "shapes smoke" in proc.stdout and "mode quick" in proc.stdout
    assert re.search(r"\d+ cases: \d+ PASSED", proc.stdout)
    missing = run_cli("show", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "none.json" in missing.stderr
    empty = run_cli("show", "--root", str(tmp_path))
    assert empty.returncode == 2 and "no results file given" in empty.stderr


def test_pyperf_json_beside_results_is_readable_by_pyperf(smoke_run):
    _, path = smoke_run
    pyperf_file = path.with_name(path.stem + ".pyperf.json")
    assert pyperf_file.is_file()
    proc = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(pyperf_file)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "smoke:3x3_odd" in proc.stdout and "direct/cpu" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--shapes", "nosuchset"], "unknown shape set 'nosuchset'"),
    (["--algo", "magic"], "unknown algorithm 'magic'; valid: "),
    (["--backend", "tpu"], "unknown backend 'tpu'; valid: cpu"),
    (["--memory-budget", "lots"], "--memory-budget: cannot read memory size 'lots'"),
    (["--memory-budget", "0"], "--memory-budget: memory size must be positive, got '0'"),
    (["--workspace-limit=-1M"], "--workspace-limit: memory size must be 0 or more, got '-1M'"),
    (["--shapes", "smoke", "--match", "(3x3"], "--match '(3x3' is not a valid regular expression"),
    (["--shapes", "smoke", "--match", "7x7"], "--match '7x7' matches no problem of smoke"),
])
def test_bad_names_exit_2_listing_valid_ones(tmp_path, args, message):
    proc = run_cli("run", "--out", str(tmp_path), *args)
    assert proc.returncode == 2
    assert message in proc.stderr


# Before they were checked, a negative seed failed every case with numpy's traceback (and in ab,
# both sides alike, so its verdict was "no significant slowdown"), a negative case timeout made
# every case a TIMEOUT, and ab and compare took an alpha of 2 or 0 and a negative minimum change.
@pytest.mark.parametrize("command, args, message", [
    ("run", ["--seed", "-1"], "argument --seed: a seed is a whole number from 0, got '-1'"),
    ("run", ["--case-timeout", "-5"], "argument --case-timeout: seconds must be a number above 0"),
    ("find", ["smoke", "--seed", "1.5"], "argument --seed: a seed is a whole number from 0"),
    ("find", ["smoke", "--case-timeout", "nan"], "argument --case-timeout: seconds must be"),
    ("ab", ["--seed", "-3"], "argument --seed: a seed is a whole number from 0, got '-3'"),
    ("ab", ["--alpha", "2"], "argument --alpha: must be a number between 0 and 1, got '2'"),
    ("ab", ["--min-change", "-1"], "argument --min-change: must be a number from 0, got '-1'"),
    ("ab", ["--min-time", "0"], "argument --min-time: seconds must be a number above 0, got '0'"),
    ("ab", ["--threads", "0"], "argument --threads: 0: this process may use"),
    ("ab", ["--threads", "1,2"], "argument --threads: one count here, got '1,2'"),
    ("bisect", ["--good", "HEAD", "--alpha", "0"], "argument --alpha: must be a number between"),
    ("compare", ["a.json", "b.json", "--alpha", "1"], "argument --alpha: must be a number between"),
    ("compare", ["a.json", "b.json", "--noise-factor=-2"], "argument --noise-factor: must be a"),
])
def test_bad_numbers_exit_2_naming_the_option(command, args, message):
    proc = run_cli(command, *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_list_shows_sets_and_kernels():
    proc = run_cli("list")
    assert proc.returncode == 0
    for name in ("resnet50", "deepbench", "smoke", "direct/cpu"):
        assert name in proc.stdout
    assert "resnet50       21 problems (53 layers of the network)" in proc.stdout


def test_list_with_a_set_prints_the_problems_a_run_would_time():
    proc = run_cli("list", "resnet50", "--match", "res[34]a_branch2b", "--mb", "8")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:] if line.startswith("resnet50:")]
    assert [row[0] for row in rows] == ["resnet50:res3a_branch2b", "resnet50:res4a_branch2b"]
    assert [row[1] for row in rows] == ["4", "6"]      # how often ResNet-50 runs each
    assert all(row[2].startswith("mb8ic") and row[3] == "3x3" for row in rows)
    assert proc.stdout.splitlines()[0].split()[-2:] == ["MB", "FLOP/B"]
    problem = ConvProblem.parse(rows[0][2])   # res3a at batch 8: input, weights, output once
    assert float(rows[0][5]) == pytest.approx(problem.bytes_float32() / 1e6, rel=1e-3)
    assert float(rows[0][6]) == pytest.approx(problem.flops / problem.bytes_float32(), rel=1e-3)
    assert "2 problems" in proc.stdout and "10 convolutions" in proc.stdout
    assert f"{10 * problem.flops / 1e9:.4g} GFLOP)" in proc.stdout   # the 3x3s have equal work
    proc = run_cli("list", "smoke", "--match", "7x7")
    assert proc.returncode == 2 and "matches no problem of smoke" in proc.stderr


def test_every_passed_row_reports_every_field(smoke_run):
    from convbench.results import ROW_FIELDS
    _, path = smoke_run
    rows = [row for row in read_document(path)["rows"] if row["status"] == "PASSED"]
    assert rows
    # empty there; stages only for staged kernels, impl for those with several implementations,
    # count where the shape file gives one (smoke's does not)
    optional = {"reason", "name", "stages_s", "impl", "count"}
    for row in rows:
        missing = [f for f in ROW_FIELDS if f not in optional and row.get(f) in (None, "")]
        assert not missing, f"{row['descriptor']} {row['algo']}: {missing}"
        assert row["prepare_s"] >= 0 and row["first_call_s"] > 0
        assert len(row["samples_s"]) == row["values"] >= 3
        assert row["median_s"] == pytest.approx(sorted(row["samples_s"])[1], rel=1e-12)


def test_reference_is_computed_once_per_problem_seed_and_fill(tmp_path, monkeypatch):
    from convbench import ConvProblem, _case
    from convbench.accuracy import make_inputs
    from convbench.runner import reference_cache_dir

    calls = []
    real = _case.reference_for
    monkeypatch.setattr(_case, "reference_for", lambda *a: calls.append(1) or real(*a))
    first, second = ConvProblem.parse("mb1ic2ih6oc3oh6kh3ph1"), ConvProblem.parse("mb1ic2ih5oc3oh5kh3ph1")
    cache = reference_cache_dir(tmp_path, first)
    x, w = make_inputs(first, seed=0)
    ref = _case.cached_reference(first, x, w, 0, "uniform", cache)
    again = _case.cached_reference(first, x, w, 0, "uniform", cache)
    assert len(calls) == 1 and (again == ref).all() and again.dtype == "float64"
    _case.cached_reference(first, *make_inputs(first, seed=0, fill="integer"), 0, "integer", cache)
    _case.cached_reference(first, *make_inputs(first, seed=1), 1, "uniform", cache)
    assert len(calls) == 3                      # another fill or seed is another reference
    assert cache.is_dir()
    reference_cache_dir(tmp_path, second)       # the sweep moved on: the first problem's are gone
    assert not cache.exists()


WINOGRADS = ("winograd", "winograd4", "winograd_5x5", "winograd4_5x5")   # smoke has a 5x5 layer


def test_staged_kernels_report_time_per_stage(smoke_run):
    _, path = smoke_run
    rows = [row for row in read_document(path)["rows"] if row["status"] == "PASSED"]
    expected = {"fft": ["forward FFT", "multiply", "inverse FFT"],
                "fft_tiled": ["forward FFT", "multiply", "inverse FFT"],
                **{winograd: ["input transform", "multiply", "output transform"]
                   for winograd in WINOGRADS}}
    seen = set()
    for row in rows:
        stages = row.get("stages_s")
        if row["algo"] in expected:
            assert list(stages) == expected[row["algo"]], row["descriptor"]
        elif row["algo"] == "im2col" and stages:   # a 1x1 stride-1 layer needs no lowering
            assert list(stages) == ["lowering", "multiply"]
        elif row["algo"] == "direct" and stages:   # an input read in place is not split
            assert list(stages) == ["split into stride phases", "sliding window"]
        else:
            assert not stages, (row["algo"], stages)
        if stages:
            seen.add(row["algo"])
            assert all(seconds > 0 for seconds in stages.values())
    assert seen == {"direct", "im2col", "fft", "fft_tiled", *WINOGRADS}


def test_rows_name_the_implementation_their_kernel_chose(smoke_run):
    """The choice ``prepare`` made (Winograd's layout, the FFTs' transform or tile size, im2col's
    lowering, direct's blocks or depthwise path, a small problem on one thread) travels from the case's
    process into its row; a kernel's only implementation, and the peers, leave it empty."""
    import re
    _, path = smoke_run
    rows = [row for row in read_document(path)["rows"] if row["status"] == "PASSED"]
    # ", one thread": a small problem's numba loops on one thread (the smoke set's are small)
    patterns = {**{winograd: r"(channel-major|tile-major stages)(, one thread)?|"
                             r"tile rows on \d threads?"
                   for winograd in WINOGRADS},
                "fft": r"\d+x\d+ transforms", "fft_tiled": r"(\d+)x\1 tiles, \d+ per image",
                "im2col": r"lowered|lowered by (output rows|blocks of \d+ output rows?) on \d threads?|"
                          r"1x1: GEMM on the input|"
                          r"strided 1x1: subsampled"}
    seen = set()
    for row in rows:
        if row["algo"] in patterns:
            assert re.fullmatch(patterns[row["algo"]], row["impl"] or ""), (row["algo"], row["impl"])
            seen.add(row["algo"])
        elif row["algo"] == "direct":       # its own path for one input channel per group
            depthwise = row["c"] == row["groups"]
            assert re.fullmatch(r"depthwise(, one thread)?" if depthwise
                                else r"blocks of 8 channels x 32 outputs(, one thread)?",
                                row["impl"] or ""), (row["descriptor"], row["impl"])
        else:
            assert row.get("impl") is None, (row["algo"], row["impl"])
    assert seen == set(patterns)


def test_find_ranks_every_kernel_on_one_descriptor(tmp_path):
    descriptor = "mb1ic3ih10oc4kh3ph1"
    proc = run_cli("find", descriptor, "--algo", "direct,im2col,winograd,fft", "--backend", "cpu",
                   "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    files = list(tmp_path.glob("*/find/*.json"))
    files = [p for p in files if not p.name.endswith(".pyperf.json")]
    assert len(files) == 1 and only_results(tmp_path) == []   # kept out of the machine's runs
    frame = load_results(files[0])
    assert set(frame["status"]) == {"PASSED"} and len(frame) == 4
    fastest_first = list(frame.sort_values("median_s")["algo"])
    lines = [line.split() for line in proc.stdout.splitlines()]
    shown = [fields[1].split("/")[0] for fields in lines if fields[:1] in (["1"], ["2"], ["3"],
                                                                             ["4"])]
    assert shown == fastest_first
    assert "mb1ic3ih10oc4oh10kh3ph1  [cpu]" in proc.stdout
    winograd = next(line for line in proc.stdout.splitlines() if "winograd/cpu" in line)
    impl = frame.set_index("algo").at["winograd", "impl"]
    assert impl and winograd.rstrip().endswith(impl)     # the table shows the choice


def test_find_adds_up_a_counted_network(tmp_path):
    """Counts from the shape file reach the rows, and the network's totals are printed."""
    shapes = tmp_path / "tiny_net.txt"
    shapes.write_text('mb1ic3ih10oc4kh3ph1n"tiny:a" x3\nmb1ic4ih10oc2kh1n"tiny:b" x2\n')
    proc = run_cli("find", str(shapes), "--algo", "direct,im2col", "--backend", "cpu",
                   "--quick", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    path = next(p for p in (tmp_path / "out").glob("*/find/*.json")
                if not p.name.endswith(".pyperf.json"))
    frame = load_results(path)
    assert dict(zip(frame["name"], frame["count"])) == {"tiny:a": 3, "tiny:b": 2}
    seconds = frame.pivot(index="name", columns="algo", values="median_s").astype(float)
    best_ms = 1e3 * (3 * seconds.loc["tiny:a"].min() + 2 * seconds.loc["tiny:b"].min())
    text = proc.stdout[proc.stdout.index("whole networks"):]
    line = next(line for line in text.splitlines() if "ours, best per layer" in line)
    fields = line.split()
    assert fields[:2] == ["tiny", "cpu"]
    assert float(fields[6]) == pytest.approx(best_ms, rel=1e-3, abs=1e-4)
    assert "2/2" in fields and "5" in fields         # both layers timed, 3 + 2 convolutions


def test_workspace_limit_skips_larger_workspaces_and_resume_keeps_it(tmp_path):
    """Each case is SKIPPED with its figure exactly when its workspace is over the limit (chosen
    between the kernels' workspaces so that both sides are there), and ``--resume`` keeps it."""
    problems = load_shapes("smoke")
    kernels = select(["direct", "im2col", "fft", "winograd"], ["cpu"])
    sizes = sorted({kernel.workspace_bytes(problem) for problem in problems
                    for kernel in kernels if not kernel.impl.supports(problem)})
    limit = sizes[len(sizes) // 2]
    proc = run_cli("run", "--shapes", "smoke", "--algo", "direct,im2col,fft,winograd",
                   "--backend", "cpu", "--check-only", "--workspace-limit", str(limit),
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "workspace limit" in proc.stderr
    path, = only_results(tmp_path)
    document = read_document(path)
    assert document["options"]["workspace_limit"] == limit
    over = 0
    for row in document["rows"]:
        problem = ConvProblem.parse(row["descriptor"])
        kernel = next(k for k in kernels if k.spec.algo == row["algo"])
        if kernel.impl.supports(problem):
            continue                                  # skipped for its own reason
        workspace = kernel.workspace_bytes(problem)
        if workspace > limit:
            over += 1
            assert row["status"] == "SKIPPED" and "over the workspace limit of" in row["reason"]
        else:
            assert row["status"] == "PASSED", row
    assert 0 < over < len(document["rows"])

    statuses = [row["status"] for row in document["rows"]]
    document["rows"], document["complete"] = [], False   # as if interrupted at once
    path.write_text(json.dumps(document))
    assert run_cli("run", "--resume", str(path)).returncode == 0
    again = read_document(path)
    assert again["options"]["workspace_limit"] == limit
    assert [row["status"] for row in again["rows"]] == statuses


def test_find_refuses_a_bad_descriptor_before_running_anything(tmp_path):
    proc = run_cli("find", "mb1ic3ih10oc4kh3zz1", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown key 'zz'" in proc.stderr and not any(tmp_path.iterdir())


def test_match_runs_only_the_chosen_problems_and_resume_keeps_the_choice(tmp_path):
    proc = run_cli("run", "--shapes", "smoke", "--match", "stride2|5x5", "--algo", "direct",
                   "--check-only", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path, = only_results(tmp_path)
    document = read_document(path)
    assert document["options"]["match"] == "stride2|5x5"
    assert [row["name"] for row in document["rows"]] == ["smoke:3x3_stride2", "smoke:5x5"]

    document["rows"], document["complete"] = document["rows"][:1], False   # as if interrupted
    path.write_text(json.dumps(document))
    proc = run_cli("run", "--resume", str(path))
    assert proc.returncode == 0, proc.stderr
    assert [row["name"] for row in read_document(path)["rows"]] == ["smoke:3x3_stride2",
                                                                    "smoke:5x5"]


@pytest.mark.parametrize("command, args", [
    ("run", ["--shapes", "smoke", "--check-only", "--out", "{blocked}"]),
    ("run", ["--shapes", "smoke", "--check-only", "--out", "{tmp}", "--report", "{blocked}"]),
    ("report", ["--out", "{blocked}", "{results}"]),
    ("history", ["--out", "{blocked}", "{results}"]),
    ("export", ["{results}", "--csv", "{blocked}/rows.csv"]),
])
def test_a_folder_it_cannot_write_exits_2_naming_it_before_any_work(tmp_path, command, args):
    (tmp_path / "file").write_text("a file, not a folder")
    blocked = tmp_path / "file" / "out"
    results = DATA_DIR / "compare_base.json"
    proc = run_cli(command, *[arg.format(blocked=blocked, tmp=tmp_path, results=results)
                              for arg in args])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(tmp_path / "file") in proc.stderr
    assert f"convbench {command}: " in proc.stderr
    assert not list(tmp_path.glob("*/*.json"))   # the sweep did not start
