"""report and history write the expected files (figures are produced, not compared pixel by pixel)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.history import runs_in_order, step_changes, write_history
from convbench.report import best_per_layer, write_report
from convbench.results import load_results

DATA = Path(__file__).parent / "data"
RUNS = ["compare_base.json", "compare_aa.json", "compare_slower.json", "compare_faster.json"]


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_report_writes_markdown_html_and_figures(tmp_path):
    target = write_report([DATA / "compare_base.json"], tmp_path)
    text = target.read_text()
    assert "Best algorithm per layer" in text and "smoke:3x3_odd" in text
    machine = json.loads((DATA / "compare_base.json").read_text())["machine"]
    assert f"Machine: {machine['cpu_model']}, {machine['cpu_count']} cores;" in text
    assert f"numpy {machine['versions']['numpy']}" in text and "; BLAS " in text
    pngs = sorted(tmp_path.glob("*.png"))
    assert {p.name.rsplit("-", 1)[1] for p in pngs} == {"gflops.png", "errors.png", "workspace.png",
                                                       "roofline.png"}
    assert all(is_png(p) for p in pngs)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs) and "<table>" in page


def test_a_report_of_an_interrupted_run_says_so_and_how_to_finish_it(tmp_path):
    finished = write_report([DATA / "compare_base.json"], tmp_path / "finished").read_text()
    assert "Incomplete" not in finished
    document = json.loads((DATA / "compare_base.json").read_text())
    document["rows"] = document["rows"][:3]
    path = tmp_path / "interrupted.json"
    path.write_text(json.dumps(dict(document, complete=False)))
    text = write_report([path], tmp_path / "interrupted").read_text()
    assert ("**Incomplete:** the sweep was interrupted after 3 cases; "
            f"`python -m convbench run --resume {path}` finishes it.") in text


def test_per_layer_figures_stack_panels_for_a_large_set(tmp_path):
    """Per-layer bar figures keep at most ``LAYERS_PER_PANEL`` layers side by side: a set of 52
    layers draws three panels of up to 24, one below the other, instead of one figure 52 layers
    wide."""
    from convbench.report import LAYERS_PER_PANEL
    import matplotlib.image as image
    document = json.loads((DATA / "compare_base.json").read_text())
    rows = []
    for copy in range(13):            # 13 x 4 = 52 distinct layers
        for row in document["rows"]:
            rows.append(dict(row, name=f"{row['name']}_{copy}",
                             descriptor=row["descriptor"].replace('n"', f'n"{copy}_')))
    document["rows"] = rows
    large = tmp_path / "large.json"
    large.write_text(json.dumps(document))
    write_report([large], tmp_path / "large")
    write_report([DATA / "compare_base.json"], tmp_path / "small")
    assert LAYERS_PER_PANEL == 24
    for kind in ("gflops", "workspace"):
        big = image.imread(next((tmp_path / "large").glob(f"*-{kind}.png"))).shape
        small = image.imread(next((tmp_path / "small").glob(f"*-{kind}.png"))).shape
        assert big[0] > 2.5 * small[0], kind          # three panels' height
        assert big[1] < 0.9 * (0.9 * 52 + 3) * 110, kind   # not one 52-layer-wide figure


def test_report_adds_up_a_counted_network_and_draws_it(tmp_path):
    """The same run with counts on its layers: the whole-network table and figure appear, the
    direct kernel's total being each layer's time times its count."""
    document = json.loads((DATA / "compare_base.json").read_text())
    for count, row in enumerate(document["rows"], start=1):
        row["count"] = count
    counted = tmp_path / "counted.json"
    counted.write_text(json.dumps(document))
    text = write_report([counted], tmp_path / "report").read_text()
    assert "### Whole networks" in text
    line = next(line for line in text.splitlines() if line.startswith("| smoke | cpu | direct |"))
    expected = sum(count * row["median_s"] for count, row in enumerate(document["rows"], start=1))
    assert float(line.split("|")[4]) == pytest.approx(expected * 1e3, rel=1e-2)
    assert is_png(next((tmp_path / "report").glob("*-networks.png")))


def test_several_machines_side_by_side(tmp_path):
    other = json.loads((DATA / "compare_slower.json").read_text())
    other["machine"]["machine_id"] = "other-machine-8c"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    text = write_report([DATA / "compare_base.json", path], tmp_path / "out").read_text()
    assert "Machines side by side" in text
    assert "best on test-machine-2c" in text and "best on other-machine-8c" in text


def test_best_per_layer_picks_fastest_and_speedup_over_direct():
    frame = load_results(DATA / "compare_base.json")
    frame["layer"] = frame["name"]
    best = best_per_layer(frame)
    assert set(best["layer"]) == set(frame["name"])
    assert (best["best"] == "direct").all() and (best["speedup_vs_direct"] == 1.0).all()


def test_cli_report_exit_2_on_corrupt_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    proc = subprocess.run([sys.executable, "-m", "convbench", "report", str(bad), "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and str(bad) in proc.stderr


def test_history_orders_runs_and_marks_steps(tmp_path):
    paths = [DATA / name for name in reversed(RUNS)]  # given out of order on purpose
    runs = runs_in_order(paths)
    assert [p.name for p, _ in runs] == RUNS
    steps = step_changes(runs, floors=False)
    found = set(zip(steps["name"], steps["verdict"], steps["commit"].str[0]))
    # base -> aa: nothing; aa -> slower: 3x3_odd slower at commit c...; slower -> faster: 3x3_odd
    # back to normal (faster) and 5x5 faster, at commit d...
    assert ("smoke:3x3_odd", "slower", "c") in found
    assert ("smoke:3x3_odd", "faster", "d") in found
    assert ("smoke:5x5", "faster", "d") in found
    assert len(steps) == 3
    assert not steps["code_changed"].any()      # every run has the same kernel source
    # with the floors of the runs before each step: 3x3_odd's way back at d is no larger than
    # the 25 % its identical code already moved between b and c, so only its first step stands
    floored = step_changes(runs)
    assert set(zip(floored["name"], floored["verdict"], floored["commit"].str[0])) == {
        ("smoke:3x3_odd", "slower", "c"), ("smoke:5x5", "faster", "d")}
    target, _ = write_history(paths, tmp_path)
    assert is_png(tmp_path / "history.png")
    assert "slower" in target.read_text()
    assert "## Environment changes\n\nNone recorded" in target.read_text()


def test_history_names_environment_changes_beside_the_steps(tmp_path):
    """A run made with other BLAS kernels: its steps are flagged, the change listed."""
    from convbench.history import environment_shifts
    blas = {"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
            "threading_layer": "pthreads", "num_threads": 2, "library": "libopenblas.so"}
    paths = []
    for name, architecture in zip(RUNS, ("SkylakeX", "SkylakeX", "Haswell", "Haswell")):
        document = json.loads((DATA / name).read_text())
        document["machine"].update(blas_runtime=[dict(blas, architecture=architecture)],
                                   library_settings={})
        if architecture == "Haswell":
            document["machine"]["library_settings"] = {"OPENBLAS_CORETYPE": "Haswell"}
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(document))
    shifts = environment_shifts(runs_in_order(paths))
    assert list(shifts) == [2]                  # between compare_aa and compare_slower only
    assert "OPENBLAS_CORETYPE: unset -> Haswell" in shifts[2]
    text = write_history(paths, tmp_path / "out")[0].read_text()
    assert "smoke:3x3_odd direct/cpu: slower" in text
    step = next(line for line in text.splitlines() if "slower" in line and "3x3_odd" in line)
    assert step.endswith("(the environment changed too, see below)")
    assert "before `compare_slower.json`" in text and "(SkylakeX kernels" in text


def test_relative_speed_against_direct_and_best_peer():
    import pandas as pd
    from convbench.report import relative_speed_table
    frame = pd.DataFrame([
        {"layer": "L", "backend": "cpu", "algo": "direct", "status": "PASSED", "median_s": 4.0, "peer": False},
        {"layer": "L", "backend": "cpu", "algo": "im2col", "status": "PASSED", "median_s": 1.0, "peer": False},
        {"layer": "L", "backend": "cpu", "algo": "torch", "status": "PASSED", "median_s": 2.0, "peer": True},
        {"layer": "L", "backend": "cpu", "algo": "scipy", "status": "PASSED", "median_s": 8.0, "peer": True},
        {"layer": "L", "backend": "cpu", "algo": "fft", "status": "SKIPPED", "median_s": None, "peer": False},
    ])
    table = relative_speed_table(frame)
    assert table.loc["L", "im2col/cpu"] == "x4.00 / x2.00"
    assert table.loc["L", "direct/cpu"] == "x1.00 / x0.50"
    assert table.loc["L", "torch/cpu"] == "x2.00 / x1.00"
    assert "fft/cpu" not in table.columns


def _network_rows():
    """Two layers of network ``net`` (run 3 and 1 times) and one of the uncounted ``other``."""
    rows = []
    for descriptor, name, count, flops, times in (
            ("mb1ic2ih6oc3kh3n\"net:a\"", "net:a", 3, 2e9, {"direct": 2.0, "im2col": 1.0,
                                                           "winograd": 0.5, "torch": 1.5}),
            ("mb1ic2ih6oc3kh1n\"net:b\"", "net:b", 1, 1e9, {"direct": 1.0, "im2col": 2.0,
                                                           "torch": 0.25}),
            ("mb1ic2ih6oc3kh1n\"other:c\"", "other:c", None, 1e9, {"direct": 1.0})):
        for algo in ("direct", "im2col", "winograd", "torch"):
            seconds = times.get(algo)
            rows.append({"descriptor": descriptor, "name": name, "count": count, "flops": flops,
                         "backend": "cpu", "algo": algo, "peer": algo == "torch",
                         "status": "PASSED" if seconds else "SKIPPED", "median_s": seconds})
    return rows


def test_network_totals_count_each_layer_as_often_as_the_network_runs_it():
    import pandas as pd
    from convbench.report import network_totals
    totals = network_totals(pd.DataFrame(_network_rows())).set_index("kernel")
    assert set(totals["network"]) == {"net"}           # "other" has no count: no total
    best = totals.loc["ours, best per layer"]
    assert best["total_ms"] == pytest.approx((3 * 0.5 + 1 * 1.0) * 1e3)    # winograd, then direct
    assert best["mix"] in ("winograd 1, direct 1", "direct 1, winograd 1")
    assert best["gflops"] == pytest.approx((3 * 2 + 1) / 2.5)
    assert best["convolutions"] == 4 and best["layers_timed"] == "2/2"
    assert totals.loc["direct", "total_ms"] == pytest.approx(7e3)
    assert totals.loc["im2col", "vs_best"] == pytest.approx(5.0 / 2.5)
    assert totals.loc["torch (peer)", "total_ms"] == pytest.approx(4.75e3)
    winograd = totals.loc["winograd"]                   # skipped one layer: no total
    assert winograd["total_ms"] != winograd["total_ms"] and winograd["layers_timed"] == "1/2"
    assert list(totals.index[:4]) == ["ours, best per layer", "torch (peer)", "im2col", "direct"]


def test_totals_of_a_matched_run_say_they_cover_only_its_layers():
    from convbench.report import totals_caveat
    assert "--match 'res2a'" in totals_caveat({"options": {"match": "res2a", "shapes": "resnet50"}})
    assert totals_caveat({"options": {"match": None, "shapes": "resnet50"}}) == ""


def test_network_totals_need_a_count_on_every_layer():
    import pandas as pd
    from convbench.report import network_totals
    rows = _network_rows()
    rows[0]["count"] = None                            # one row of net:a without its count
    assert network_totals(pd.DataFrame(rows)).empty
    assert network_totals(pd.DataFrame([r for r in rows if r["name"] == "other:c"])).empty


def test_stages_table_gives_each_stage_its_share():
    from convbench.report import _label, stages_table
    from convbench.results import load_results
    frame = load_results(Path(__file__).parent / "data" / "compare_base.json")
    frame["layer"] = _label(frame)
    passed = frame.index[frame["status"] == "PASSED"]
    frame["stages_s"] = None
    frame.at[passed[0], "stages_s"] = {"lowering": 0.001, "multiply": 0.003}
    table = stages_table(frame)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["stages"] == "lowering 1 ms (25%) · multiply 3 ms (75%)"
    assert row["sum_ms"] == pytest.approx(4.0)


def test_ranking_orders_timed_kernels_fastest_first_then_the_rest():
    import pandas as pd
    from convbench.report import ranking
    row = {"descriptor": "mb1ic2ih6oc3kh3", "name": "", "backend": "cpu", "mad_s": 0.0,
           "gflops": 1.0, "workspace_bytes": 64, "rel_l2": 1e-7, "reason": None}
    frame = pd.DataFrame([
        {**row, "algo": "direct", "status": "PASSED", "median_s": 4.0, "peer": False},
        {**row, "algo": "fft", "status": "SKIPPED", "median_s": None, "peer": False,
         "reason": "needs stride 1"},
        {**row, "algo": "im2col", "status": "PASSED", "median_s": 1.0, "peer": False},
        {**row, "algo": "torch", "status": "PASSED", "median_s": 2.0, "peer": True},
        {**row, "algo": "winograd", "status": "FAILED", "median_s": None, "peer": False,
         "reason": "error 1e-2 over tolerance"},
        {**row, "algo": "direct", "backend": "gpu", "status": "PASSED", "median_s": 0.5,
         "peer": False},
    ])
    table = ranking(frame)
    cpu = table[table["backend"] == "cpu"]
    assert list(cpu["kernel"]) == ["im2col/cpu", "torch/cpu (peer)", "direct/cpu", "fft/cpu",
                                   "winograd/cpu"]
    assert list(cpu["rank"]) == [1, 2, 3, 0, 0]
    assert list(cpu["vs_fastest"][:3]) == [1.0, 2.0, 4.0]
    assert cpu["vs_fastest"][3:].isna().all()
    assert list(cpu["note"]) == ["", "", "", "needs stride 1", "error 1e-2 over tolerance"]
    gpu = table[table["backend"] == "gpu"]         # each backend ranked on its own
    assert list(gpu["rank"]) == [1] and list(gpu["vs_fastest"]) == [1.0]
    assert list(table["layer"].unique()) == ["mb1ic2ih6oc3kh3"]   # no name: the descriptor


def test_committed_results_with_a_relative_root(tmp_path, monkeypatch):
    """`history --root results` from the checkout: git must not see the root's path twice."""
    import shutil

    from convbench.history import committed_results
    runs = tmp_path / "results" / "some-machine-2c"
    runs.mkdir(parents=True)
    for name in ("20260101T000000Z_a.json", "20260102T000000Z_b.json"):
        shutil.copy(DATA / "compare_base.json", runs / name)
    shutil.copy(DATA / "compare_base.json", runs / "20260103T000000Z_uncommitted.json")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "results/some-machine-2c/20260101T000000Z_a.json",
                          "results/some-machine-2c/20260102T000000Z_b.json"], check=True)
    subprocess.run(git + ["commit", "-qm", "runs"], check=True)
    monkeypatch.chdir(tmp_path)
    found = committed_results(Path("results"), "some-machine-2c")
    assert [p.name for p in found] == ["20260101T000000Z_a.json", "20260102T000000Z_b.json"]


def _run_copy(tmp_path, name, day, code_hash=None):
    """A copy of a golden run dated ``day`` of November 2026 (runs are ordered by commit date),
    its rows given ``code_hash`` where one is named."""
    document = json.loads((DATA / name).read_text())
    stamp = f"2026-11-{day:02d}T10:00:00+00:00"
    document["created"] = document["git"]["commit_date"] = stamp
    document["git"]["commit"] = f"{day:02d}" * 20
    if code_hash:
        for row in document["rows"]:
            row["code_hash"] = code_hash
    path = tmp_path / f"{day:02d}_{name}"
    path.write_text(json.dumps(document))
    return path


def test_a_step_is_not_hidden_by_the_runs_after_it(tmp_path):
    """Three quiet runs, then a slowdown that stays: the step is the first slow run, and the slow
    runs after it do not make it look like noise (a floor counting the pair across the step
    would)."""
    days = [("compare_base.json", 1), ("compare_aa.json", 2), ("compare_base.json", 3),
            ("compare_slower.json", 4), ("compare_slower.json", 5)]
    paths = [_run_copy(tmp_path, name, day) for name, day in days]
    steps = step_changes(runs_in_order(paths))
    assert list(zip(steps["name"], steps["verdict"], steps["commit"])) == [
        ("smoke:3x3_odd", "slower", "04" * 5)]


def test_history_says_which_steps_ran_changed_kernel_code(tmp_path):
    paths = [_run_copy(tmp_path, "compare_base.json", 1, "old"),
             _run_copy(tmp_path, "compare_slower.json", 2, "new"),
             _run_copy(tmp_path, "compare_faster.json", 3, "new")]
    target, steps = write_history(paths, tmp_path / "out")
    assert steps["code_changed"].tolist() == [True, False, False]
    text = target.read_text()
    assert "| `02_compare_slower.json` | 0202020202 | 1 | 0 | 1 slower, 0 faster | same |" in text
    assert "smoke:3x3_odd direct/cpu: slower (x1.24), kernel code changed" in text
    assert "smoke:5x5 direct/cpu: faster" in text and "same kernel code" in text


@pytest.fixture
def two_commits(tmp_path, monkeypatch):
    """A git repository holding a copy of kernels/ at two commits: the second rebinds
    load_channel in kernels/cpu/_common.py (the direct kernel calls it, the FFTs do not) and adds
    a constant nothing reads. Returns the repository and a function making two runs (compare's
    golden files, before reach hashes, their files' code hashes differing) at those commits,
    their rows given ``algo``."""
    import shutil

    from .test_ab import _git

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).parent.parent / "kernels", repo / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    with open(repo / "kernels" / "cpu" / "_common.py", "a") as handle:
        handle.write("\nload_channel = load_channel\nUNREAD = 1\n")
    _git(repo, "commit", "-q", "-am", "two")
    shas = subprocess.run(["git", "-C", str(repo), "rev-list", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.split()[::-1]

    def runs(algo):
        paths = []
        for day, (name, sha) in enumerate(zip(("compare_base.json", "compare_slower.json"), shas),
                                          1):
            folder = tmp_path / algo
            folder.mkdir(exist_ok=True)
            path = _run_copy(folder, name, day, code_hash=f"{day}" * 12)
            document = json.loads(path.read_text())
            document["git"].update(commit=sha, dirty=False)
            for row in document["rows"]:
                row["algo"] = algo
            path.write_text(json.dumps(document))
            paths.append(path)
        return paths

    return repo, runs


def test_history_names_the_definitions_a_step_ran_changed(two_commits, tmp_path):
    """Runs from before reach hashes differ in their files' code hash; the commits say what
    changed, and that a kernel whose files changed only where it does not reach ran the same
    code."""
    repo, runs = two_commits
    target, steps = write_history(runs("direct"), tmp_path / "out_direct", repo=repo)
    assert steps["code_changed"].tolist() == [True]
    assert ("- direct/cpu: `kernels.cpu._common:load_channel`\n"
            in target.read_text())   # UNREAD is not part of its code
    target, steps = write_history(runs("fft"), tmp_path / "out_fft", repo=repo)
    assert steps["code_changed"].tolist() == [False]
    assert "two commits show no change in the code fft/cpu reaches" in target.read_text()
    assert "smoke:3x3_odd fft/cpu: slower (x1.24), same kernel code" in target.read_text()


def test_compare_checks_changed_code_against_the_commits(two_commits):
    from convbench.compare import compare_frames
    from convbench.history import code_change_text, refine_code_changed

    repo, runs = two_commits
    for algo, changed in (("direct", True), ("fft", False)):
        (base_path, new_path) = runs(algo)
        base, new = load_results(base_path), load_results(new_path)
        frame = compare_frames(base, new)
        assert frame["source_changed"].all()          # the files' code hashes differ
        frame, changes = refine_code_changed(frame, (base_path, base), (new_path, new), repo)
        assert frame["source_changed"].eq(changed).all()
        text = code_change_text(changes)
        assert text == ("Kernel code changed since the base run:\n"
                        "- direct/cpu: `kernels.cpu._common:load_channel`" if changed else
                        "Kernel code since the base run: the recorded hashes differ, but the two "
                        "commits show no change in the code fft/cpu reaches")
    # a commit this checkout lacks: the hashes stand, and the text says why
    frame, changes = refine_code_changed(compare_frames(base, new), (base_path, base),
                                         (new_path, new))
    assert frame["source_changed"].all() and "is not in this checkout" in changes
    # a run made outside a git checkout (a copied tree, as on a device box)
    document = json.loads(new_path.read_text())
    document["git"] = {"commit": "unknown", "dirty": None, "commit_date": None}
    new_path.write_text(json.dumps(document))
    _, changes = refine_code_changed(compare_frames(base, new), (base_path, base),
                                     (new_path, load_results(new_path)), repo)
    assert "records no commit (not run from a git checkout)" in changes


def test_errors_figure_draws_the_tolerance_and_the_grown_one(monkeypatch, tmp_path):
    import pandas as pd

    from convbench import report

    drawn = []
    monkeypatch.setattr(report, "_save", lambda fig, path: drawn.append(fig))
    frame = pd.DataFrame({"algo": ["direct", "direct", "im2col"], "status": ["PASSED"] * 3,
                          "rel_l2": [1e-6, 4e-6, 3e-7], "tolerance": [3e-6, 1.2e-5, 2e-6]})
    report._figure_errors(frame, "m", tmp_path / "e.png")
    from matplotlib.collections import LineCollection
    bars = [collection for collection in drawn[0].axes[0].collections
            if isinstance(collection, LineCollection)]
    levels = sorted(float(bar.get_segments()[0][0][1]) for bar in bars)
    assert levels == pytest.approx([2e-6, 3e-6, 1.2e-5])


def test_history_gives_each_layer_its_own_line_style_in_every_panel():
    from convbench.history import layer_styles

    names = [f"layer{index:02d}" for index in range(45)]
    styles = layer_styles(names)
    looks = {(tuple(style["color"]), style["linestyle"]) for style in styles.values()}
    assert len(looks) == len(names)                    # no two layers drawn alike
    assert len({tuple(styles[name]["color"]) for name in names[:20]}) == 20
    assert layer_styles(reversed(names[:12])) == layer_styles(names[:12])   # order-free
