"""The environment a case is timed in: the same library settings in every process of a case,
recorded with the results, and differences between two runs' environments named by compare."""

import json
import os
import subprocess
import sys

import pytest

from convbench.machine import (SETTING_PREFIXES, environment_changes, environment_line,
                               fingerprint, library_settings)
from convbench.registry import get_kernel
from convbench.results import read_document
from convbench.runner import SweepOptions, sweep
from convbench.shapes import load_shapes

ARCHITECTURE = ("import os; os.environ.pop('KMP_DUPLICATE_LIB_OK', None); import numpy; "
                "from threadpoolctl import threadpool_info; "
                "print([i['architecture'] for i in threadpool_info() if i['user_api'] == 'blas'][0])")


def _architecture(coretype):
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    done = subprocess.run([sys.executable, "-c", ARCHITECTURE], capture_output=True, text=True,
                          timeout=120, env=env)
    return done.stdout.strip() if done.returncode == 0 else None


def _own_and_other_kernels():
    """(the kernels OpenBLAS picks here, other kernels OPENBLAS_CORETYPE can hold it to), or skip."""
    pytest.importorskip("threadpoolctl")
    plain = _architecture(None)
    forced = next((name for name in ("Sandybridge", "Haswell") if name != plain
                   and _architecture(name) == name), None)
    if plain is None or forced is None:
        pytest.skip(f"OpenBLAS here cannot be made to use other kernels (its own: {plain})")
    return plain, forced


def test_library_settings_are_the_prefixed_variables():
    env = {"OPENBLAS_CORETYPE": "Haswell", "NUMBA_OPT": "2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
           "HOME": "/root", "OPENBLASX": "no", "PATH": "/bin"}
    assert library_settings(env) == {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "NUMBA_OPT": "2",
                                     "OPENBLAS_CORETYPE": "Haswell"}
    assert all(prefix.isupper() for prefix in SETTING_PREFIXES)


def test_changes_between_two_runs_are_named_and_old_files_are_not_compared():
    blas = [{"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
             "threading_layer": "pthreads", "num_threads": 2, "library": "libopenblas.so"}]
    base = {"cpu_model": "AMD EPYC", "cpu_count": 2, "threads": 2, "python": "3.11.7",
            "versions": {"numpy": "2.4.6", "numba": "0.68.1"}, "blas_runtime": blas,
            "library_settings": {"OPENBLAS_THREAD_TIMEOUT": "14"},
            "convbench_defaults": ["OPENBLAS_THREAD_TIMEOUT"]}
    assert environment_changes(base, dict(base)) == []
    forced = dict(base, blas_runtime=[dict(blas[0], architecture="Haswell")],
                  library_settings={"OPENBLAS_THREAD_TIMEOUT": "14", "OPENBLAS_CORETYPE": "Haswell"},
                  versions={"numpy": "2.5.0", "numba": "0.68.1"})
    changes = environment_changes(base, forced)
    assert changes == ["numpy: 2.4.6 -> 2.5.0",
                       "BLAS: openblas 0.3.31 (SkylakeX kernels, 2 threads) -> "
                       "openblas 0.3.31 (Haswell kernels, 2 threads)",
                       "OPENBLAS_CORETYPE: unset -> Haswell"]
    old = {key: value for key, value in base.items()
           if key not in ("blas_runtime", "library_settings")}
    assert environment_changes(old, forced) == ["numpy: 2.4.6 -> 2.5.0"]
    # show's line: the user's variable, not the default convbench set for itself
    assert environment_line(forced) == ("BLAS openblas 0.3.31 (Haswell kernels, 2 threads); "
                                        "set: OPENBLAS_CORETYPE=Haswell")


def test_fingerprint_records_the_blas_kernels_and_settings(monkeypatch):
    pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("NUMBA_OPT", "3")
    found = fingerprint()
    assert found["library_settings"]["NUMBA_OPT"] == "3"
    assert found["blas_runtime"] and found["blas_runtime"][0]["architecture"]
    assert "KMP_DUPLICATE_LIB_OK" not in os.environ or "KMP_DUPLICATE_LIB_OK" in \
        found["library_settings"]   # threadpoolctl's import leaves the environment as it was
    json.dumps(found)   # stored as it is


def test_the_blas_named_first_is_numpys_even_with_scipys_own_loaded():
    """A scipy wheel brings an OpenBLAS of its own, which threadpoolctl may list first."""
    pytest.importorskip("threadpoolctl")
    script = ("import json, numpy, scipy.linalg; from convbench.machine import blas_runtime; "
              "print(json.dumps([numpy.show_config(mode='dicts')['Build Dependencies']['blas']"
              ".get('version'), [b['version'] for b in blas_runtime()]]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    built, loaded = json.loads(done.stdout)
    if not built or built not in loaded:
        pytest.skip(f"numpy does not say which of the BLAS loaded is its own ({built}, {loaded})")
    assert loaded[0] == built


@pytest.mark.sweep
def test_pyperf_workers_time_with_the_blas_kernels_the_case_was_validated_with(tmp_path):
    """pyperf starts its workers in a cleaned environment; a variable such as OPENBLAS_CORETYPE
    must reach them, or the values come from other BLAS kernels than the validation, the stage
    times and the ceilings (SGEMM 248 against 464 GFLOP/s on the CI VM)."""
    plain, forced = _own_and_other_kernels()
    problem = [p for p in load_shapes("smoke") if p.name == "smoke:3x3_odd"]
    env = dict(os.environ, OPENBLAS_CORETYPE=forced)
    path = sweep(problem, [get_kernel("im2col", "cpu")], SweepOptions(mode="quick"),
                 out_dir=tmp_path, env=env)
    row = read_document(path)["rows"][0]
    assert row["status"] == "PASSED", row["reason"]
    seen = row["threads_seen"]
    assert f"({forced} kernels" in seen["blas"]
    assert seen["workers_blas"] == [seen["blas"]]


def test_machine_command_says_when_the_blas_is_held_to_other_kernels():
    plain, forced = _own_and_other_kernels()
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_CORETYPE"}
    held = subprocess.run([sys.executable, "-m", "convbench", "machine"], capture_output=True,
                          text=True, timeout=120, env=dict(env, OPENBLAS_CORETYPE=forced))
    assert held.returncode == 0, held.stderr
    assert f"{forced} kernels" in held.stdout
    assert (f"note: OPENBLAS_CORETYPE={forced}: the BLAS runs its {forced} kernels; on its own it "
            f"would choose {plain}") in held.stdout
    own = subprocess.run([sys.executable, "-m", "convbench", "machine"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert own.returncode == 0, own.stderr
    assert "BLAS         " in own.stdout and f"{plain} kernels" in own.stdout
    assert "OPENBLAS_CORETYPE" not in own.stdout


def test_setup_notes_name_thread_counts_below_the_cores():
    from convbench.machine import cpu_count, setup_notes
    if cpu_count() < 2:
        pytest.skip("one core: no count is below it")
    notes = setup_notes({"NUMBA_NUM_THREADS": "1", "PATH": "/bin"})
    assert any(note.startswith("NUMBA_NUM_THREADS=1: fewer threads than the") for note in notes)
    assert not any("NUMBA_NUM_THREADS" in note
                   for note in setup_notes({"NUMBA_NUM_THREADS": str(cpu_count())}))
