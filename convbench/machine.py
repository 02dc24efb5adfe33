"""Who is running: a stable machine id and the fingerprint stored with every result."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """Cores this process may use (the affinity mask), which is what numba and BLAS get."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# The variables that set how many threads numba, OpenMP and the BLAS libraries start.
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


# How idle threads wait: set by convbench for its own kernels unless the user set them.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
DEFAULTS_VARIABLE = "CONVBENCH_DEFAULTS"


def thread_settings() -> dict:
    """The thread and wait-policy variables set in this environment (unset ones left out), for the
    results file: a run made with ``NUMBA_NUM_THREADS=1`` must not pass for one that used every
    core."""
    return {name: os.environ[name] for name in THREAD_VARIABLES + WAIT_VARIABLES
            if name in os.environ}


# Prefixes of the variables that change what the numerical libraries do, not only how many threads
# they start: ``OPENBLAS_CORETYPE=Haswell`` makes OpenBLAS run its AVX2 kernels on an AVX-512 CPU
# (on the 2-core AMD EPYC CI VM, SGEMM 248 GFLOP/s against 464 with its own choice, SkylakeX),
# ``MKL_ENABLE_INSTRUCTIONS`` does the same for MKL, ``NUMBA_OPT`` or ``NUMBA_CPU_NAME`` change what
# numba compiles. Every such variable set in a run's environment is recorded with its results and
# passed on to every process that validates or times a case.
SETTING_PREFIXES = ("OPENBLAS_", "GOTO_", "MKL_", "BLIS_", "NUMBA_", "OMP_", "KMP_", "GOMP_",
                    "NPY_", "DNNL_", "ONEDNN_", "CUDA_", "CUPY_", "NVIDIA_TF32", "TORCH_")


def library_settings(env=None) -> dict:
    """The variables of this environment (default: the process's) with one of
    :data:`SETTING_PREFIXES`, sorted by name: what the results file records beside the machine."""
    env = os.environ if env is None else env
    return {name: env[name] for name in sorted(env) if name.startswith(SETTING_PREFIXES)}


def blas_runtime() -> list[dict]:
    """The BLAS libraries loaded in this process as threadpoolctl finds them, numpy's first:
    library, version, the kernels it chose for this CPU (``architecture``), threads.
    Empty when threadpoolctl is not installed (a provisioned GPU box may lack it)."""
    from kernels.common import blas_libraries   # imports numpy, whose BLAS the kernels call

    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return [{key: info.get(key) for key in keys} | {"library": Path(info["filepath"]).name}
            for info in (lib.info() for lib in blas_libraries())]


def blas_summary(runtime=None) -> str:
    """One line for the BLAS numpy runs on: ``openblas 0.3.31 (SkylakeX kernels, 2 threads)``."""
    runtime = blas_runtime() if runtime is None else runtime
    if not runtime:
        return blas_vendor() + " (kernels unknown: threadpoolctl is not installed)"
    first = runtime[0]
    return (f"{first['internal_api']} {first['version']} ({first['architecture']} kernels, "
            f"{first['num_threads']} threads)")


def convbench_defaults(env=None) -> list[str]:
    """The variables convbench set itself as defaults for its kernels (``CONVBENCH_DEFAULTS``)."""
    env = os.environ if env is None else env
    return sorted(filter(None, env.get(DEFAULTS_VARIABLE, "").split(",")))


def environment_line(machine=None) -> str:
    """The BLAS kernels in use and the library variables the user set, for a run's header and
    ``show``; ``machine`` is a results file's fingerprint (default: this process, now)."""
    if machine is None:
        machine = {"blas_runtime": blas_runtime(), "library_settings": library_settings(),
                   "convbench_defaults": convbench_defaults()}
    if "blas_runtime" not in machine:   # a file from before it was recorded
        return f"BLAS {machine.get('blas', 'unknown')}"
    own = set(machine.get("convbench_defaults") or ())
    settings = {name: value for name, value in (machine.get("library_settings") or {}).items()
                if name not in own}
    line = f"BLAS {blas_summary(machine['blas_runtime'] or [])}"
    if settings:
        line += "; set: " + ", ".join(f"{name}={value}" for name, value in settings.items())
    return line


# The libraries whose version can change a timing: the kernels' own, the peers', and pyperf, which
# starts and drives the timed processes. pandas is recorded too, but only builds the tables.
TIMING_LIBRARIES = ("numpy", "scipy", "numba", "pyperf", "cupy", "torch")


def environment_differences(base, new) -> list[tuple]:
    """(kind, label, old, new) for each difference between two results files' fingerprints that
    can change a timing; kind is "machine", "version", "blas" or "setting". Fields a file does
    not have (older files) are not compared."""
    found = []

    def note(kind, label, old, now):
        if old != now:
            found.append((kind, label, old, now))

    for key, label in (("cpu_model", "CPU"), ("cpu_count", "cores"), ("threads", "threads"),
                       ("python", "Python"), ("gpu", "GPU"), ("gpu_driver", "GPU driver")):
        if key in base and key in new:
            note("machine", label, base[key], new[key])
    old_versions, new_versions = base.get("versions") or {}, new.get("versions") or {}
    for name in sorted(set(old_versions) & set(new_versions) & set(TIMING_LIBRARIES)):
        note("version", name, old_versions[name], new_versions[name])
    if "blas_runtime" in base and "blas_runtime" in new:
        note("blas", "BLAS", blas_summary(base["blas_runtime"]), blas_summary(new["blas_runtime"]))
    if "library_settings" in base and "library_settings" in new:
        old_settings, new_settings = base["library_settings"], new["library_settings"]
        for name in sorted(set(old_settings) | set(new_settings)):
            note("setting", name, old_settings.get(name), new_settings.get(name))
    return found


def environment_changes(base, new) -> list[str]:
    """:func:`environment_differences` in words: "label: old -> new", unset for a missing value."""
    def text(value):
        return value if value not in (None, "") else "unset"

    return [f"{label}: {text(old)} -> {text(now)}"
            for _, label, old, now in environment_differences(base, new)]


def same_environment(base, new) -> bool:
    """Whether two runs' fingerprints differ in nothing that changes our kernels' timings: a
    library installed in one run only (a peer such as torch) does not count, since the other run
    has no rows that used it. A file that does not record the BLAS kernels or the library
    variables while the other does is not known to be the same: it is not."""
    if any((key in base) != (key in new) for key in ("blas_runtime", "library_settings")):
        return False
    return all(kind == "version" and (old in (None, "") or now in (None, ""))
               for kind, _, old, now in environment_differences(base, new))


# In a fresh process: numpy's BLAS kernels as blas_runtime sees them, as JSON.
_ARCHITECTURE_SCRIPT = ("import json; from convbench.machine import blas_runtime; r = blas_runtime(); "
                        "print(json.dumps(r[0]['architecture'] if r else None))")


def blas_choice_without(names, env=None):
    """The kernels numpy's BLAS picks for this CPU in a fresh process whose environment lacks
    ``names`` (``OPENBLAS_CORETYPE``, say): what it would do on its own. None if unknown."""
    env = {name: value for name, value in (os.environ if env is None else env).items()
           if name not in names}
    try:
        done = subprocess.run([sys.executable, "-c", _ARCHITECTURE_SCRIPT], env=env,
                              capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


# Variables that choose a BLAS's kernels instead of letting it detect the CPU.
KERNEL_CHOICE_VARIABLES = ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
                           "MKL_CBWR")


def setup_notes(env=None) -> list[str]:
    """What in this environment makes a run time something other than the machine's best, in
    words: a BLAS held to other kernels than its own choice, thread counts below the cores, a CPU
    frequency governor that is not ``performance``. Empty when nothing is found."""
    env = os.environ if env is None else env
    notes = []
    forced = [name for name in KERNEL_CHOICE_VARIABLES if name in env]
    runtime = blas_runtime()
    if forced:
        now = runtime[0]["architecture"] if runtime else None
        own = blas_choice_without(forced, env)
        setting = ", ".join(f"{name}={env[name]}" for name in forced)
        if own and now and own != now:
            notes.append(f"{setting}: the BLAS runs its {now} kernels; on its own it would choose "
                         f"{own} on this CPU. Unset it to time the machine's best, or keep it "
                         f"to compare with runs made with it (the results record it).")
        else:
            notes.append(f"{setting} is set: it can hold the BLAS to kernels other than its own "
                         f"choice (here it runs {now or 'unknown'} kernels, its own choice would "
                         f"be {own or 'unknown'}).")
    cores = cpu_count()
    for name in THREAD_VARIABLES:
        value = env.get(name)
        if value and value.isdigit() and int(value) < cores:
            notes.append(f"{name}={value}: fewer threads than the {cores} cores this process may "
                         f"use (run --threads N pins a count per case instead).")
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        policy = governor.read_text().strip()
    except OSError:
        policy = None
    if policy and policy != "performance":
        notes.append(f"CPU frequency governor '{policy}': timings move with the clock; "
                     f"'performance' holds it (python -m pyperf system tune does that and more).")
    if not runtime:
        notes.append("threadpoolctl is not installed: which BLAS kernels run is not recorded.")
    return notes


def peer_environment(env=None) -> dict:
    """A copy of ``env`` (default: this process's) without the variables convbench set as defaults
    for its own kernels (listed in ``CONVBENCH_DEFAULTS``): a peer library runs as its users run it,
    with what the user set and nothing convbench chose. ``OMP_WAIT_POLICY=PASSIVE``, made for
    numba's threads, would also put PyTorch's OpenMP threads to sleep between calls."""
    env = dict(os.environ if env is None else env)
    for name in convbench_defaults(env):
        env.pop(name, None)
    env.pop(DEFAULTS_VARIABLE, None)
    return env


# Others' share of the CPU during a case above which its time is not called this machine's best.
BUSY_WARNING_PCT = 10.0


def cpu_stat():
    """(busy, steal, total) clock ticks of all CPUs since boot, from /proc/stat; None without it.

    busy is user + nice + system + irq + softirq; steal is time the hypervisor gave this guest's
    CPUs to others; total adds idle and iowait to both."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        values = [int(value) for value in fields[1:9]]
    except (OSError, IndexError, ValueError):
        return None
    if fields[0] != "cpu" or len(values) < 4:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def own_cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class CpuShare:
    """What else used the CPUs while a case ran: ``start()`` before the case's process starts,
    ``stop()`` once it has been waited for. ``stop`` gives ``busy_other_pct`` (CPU time of every
    process outside this one and its waited-for children, as a share of all CPUs' time over the
    interval) and ``steal_pct`` (the hypervisor's), or {} where /proc/stat cannot be read.
    ``stat``, ``own`` and ``hz`` are for tests."""

    def __init__(self, stat=cpu_stat, own=own_cpu_seconds, hz=None):
        self.stat, self.own = stat, own
        self.hz = hz or os.sysconf("SC_CLK_TCK")
        self.begin = None

    def start(self):
        self.begin = (self.stat(), self.own())
        return self

    def stop(self) -> dict:
        if self.begin is None or self.begin[0] is None:
            return {}
        end = self.stat()
        if end is None:
            return {}
        (busy0, steal0, total0), own0 = self.begin
        busy1, steal1, total1 = end
        ticks = total1 - total0
        if ticks <= 0:
            return {}
        others = max(0.0, (busy1 - busy0) / self.hz - (self.own() - own0))
        return {"busy_other_pct": round(100.0 * others / (ticks / self.hz), 2),
                "steal_pct": round(100.0 * (steal1 - steal0) / ticks, 2)}


def busy_now(seconds=0.5, share=None):
    """A note when other processes or the hypervisor take over ``BUSY_WARNING_PCT`` of the CPUs
    over the next ``seconds`` (this process sleeps meanwhile), else None: a run started now
    would be disturbed. ``share`` (a :class:`CpuShare`) is for tests."""
    import time

    share = (share or CpuShare()).start()
    time.sleep(seconds)
    found = share.stop()
    taken = taken_by_others_pct(found)
    if not is_busy(taken):
        return None
    return (f"other processes or the hypervisor are taking {taken:.0f} % of the CPUs right now "
            f"(busy {found['busy_other_pct']:.0f} %, steal {found['steal_pct']:.0f} %): timings "
            f"taken beside them are not this machine's best")


def taken_by_others_pct(row):
    """busy_other_pct + steal_pct of a row, or None where the run did not record them."""
    values = [row.get(name) for name in ("busy_other_pct", "steal_pct")]
    values = [float(v) for v in values if v is not None and v == v]
    return sum(values) if values else None


def is_busy(pct) -> bool:
    """Whether a share of the CPUs taken by others (a percentage; None or NaN: not recorded) is
    over ``BUSY_WARNING_PCT``."""
    return pct is not None and pct == pct and float(pct) > BUSY_WARNING_PCT


def busy_row(row):
    """Whether others took over ``BUSY_WARNING_PCT`` of the CPUs while this timed row ran."""
    return bool(row.get("status") == "PASSED" and row.get("median_s")
                and is_busy(taken_by_others_pct(row)))


def busy_text(row):
    """'busy: others took N % of the CPUs' for a timed case during which others took over
    ``BUSY_WARNING_PCT`` of them, else ''."""
    taken = taken_by_others_pct(row) if row.get("median_s") or row.get("ratio") else None
    if not is_busy(taken):
        return ""
    return f"busy: others took {taken:.0f} % of the CPUs"


def busy_note(rows):
    """A warning naming how many timed rows ran while others took over ``BUSY_WARNING_PCT`` of
    the CPUs, and the worst; None when none did (or the run did not record it)."""
    timed = [row for row in rows if row.get("status") == "PASSED" and row.get("median_s")]
    busy = [(taken_by_others_pct(row), row) for row in timed if busy_row(row)]
    if not busy:
        return None
    worst, row = max(busy, key=lambda item: item[0])
    return (f"other processes or the hypervisor took over {BUSY_WARNING_PCT:.0f} % of the "
            f"CPUs during {len(busy)} of {len(timed)} timed cases (up to {worst:.0f} %, "
            f"{row.get('name') or row['descriptor']} {row['algo']}/{row['backend']}); those times "
            f"are not this machine's best: time them again with the machine otherwise idle")


def default_threads() -> int:
    """Threads a CPU kernel gets when the run does not set them: numba's count (its variable, or
    the cores this process may use), which the BLAS libraries follow unless told otherwise."""
    value = os.environ.get("NUMBA_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    try:
        return max(1, int(value)) if value else cpu_count()
    except ValueError:
        return cpu_count()


def thread_environment(threads, env=None) -> dict:
    """A copy of ``env`` (default: this process's) with every thread variable set to ``threads``."""
    env = dict(os.environ if env is None else env)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    return env


def pin_threads(threads) -> None:
    """Keep this process (and the processes it starts) to the first ``threads`` CPUs it may use.

    The thread variables must be set before numba or the BLAS load; this makes the cores match, so
    one thread per core and no thread migrates to a core the run was not meant to use. The
    affinity call moves one thread, so every thread the process already has is moved (OpenBLAS
    starts its workers when numpy loads, before any code here runs); threads started later, and
    child processes, inherit the mask.
    """
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if threads > len(allowed):
            raise ValueError(f"cannot pin to {threads} CPUs: this process may use {len(allowed)}")
        cpus = allowed[:threads]
        tasks = Path("/proc/self/task")
        for tid in sorted(int(t.name) for t in tasks.iterdir()) if tasks.is_dir() else [0]:
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:      # a thread that ended in the meantime
                pass


def total_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@lru_cache(maxsize=1)
def gpu_info():
    """(name, driver) of GPU 0 from nvidia-smi, or None; never imports CuPy."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    if not first:
        return None
    name, _, driver = first.partition(",")
    return {"name": name.strip(), "driver": driver.strip()}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@lru_cache(maxsize=1)
def machine_id() -> str:
    """Stable across identical machines: CPU model, core count and GPU name, never the host name."""
    gpu = gpu_info()
    parts = [_slug(cpu_model())[:40], f"{cpu_count()}c"]
    if gpu:
        parts.append(_slug(gpu["name"])[:30])
    return "-".join(part for part in parts if part)


def _version(package: str):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def blas_vendor() -> str:
    """Which BLAS numpy calls (OpenBLAS, MKL, ...) as numpy reports it."""
    try:
        import numpy
        config = numpy.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: fall back to unknown rather than fail a run
        return "unknown"


def fingerprint() -> dict:
    """Everything about this machine and software that could change a timing."""
    gpu = gpu_info()
    return {
        "machine_id": machine_id(),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
        "memory_bytes": total_memory_bytes(),
        "gpu": gpu["name"] if gpu else None,
        "gpu_driver": gpu["driver"] if gpu else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "versions": {name: _version(name) for name in
                     ("numpy", "scipy", "numba", "pandas", "pyperf", "cupy", "torch")},
        "blas": blas_vendor(),
        "blas_runtime": blas_runtime(),
        "threads": default_threads(),
        "thread_settings": thread_settings(),
        "library_settings": library_settings(),
        "convbench_defaults": convbench_defaults(),
    }


def git_state(root=None) -> dict:
    """Commit hash and whether the working tree has changes; unknown outside a git checkout."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=10,
                                    check=True).stdout.strip())
        date = subprocess.run(["git", "show", "-s", "--format=%cI", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None, "commit_date": None}
    return {"commit": commit, "dirty": dirty, "commit_date": date}


def source_hash(paths) -> str:
    """Short hash of the kernel's source text, so a changed kernel is recognised in results."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


def strip_prose(tree):
    """``tree`` (an ``ast`` tree, changed in place) without the statements that are a lone string:
    docstrings, and any other, which does nothing. A body left empty gets a ``pass``."""
    import ast

    def prose(statement):
        return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str))

    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            statements = getattr(node, name, None)
            if isinstance(statements, list) and any(prose(s) for s in statements):
                kept = [s for s in statements if not prose(s)]
                setattr(node, name, kept or ([ast.Pass()] if name == "body" else []))
    return tree


def code_text(source: str) -> str:
    """Python source as the interpreter runs it: comments, blank lines and layout dropped, and
    every statement that is a lone string left out (:func:`strip_prose`): ``ast.unparse`` of what
    remains. Text that does not parse comes back as it is."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    return ast.unparse(strip_prose(tree))


def code_hash(paths) -> str:
    """Short hash of the kernel's code (:func:`code_text` of each file): unlike
    :func:`source_hash`, an edit to a comment or a docstring leaves it as it was, so such an edit
    neither flags the kernel as changed in a comparison nor starts its timing history afresh.

    ``ast.unparse`` may lay code out differently in another Python version; results record the
    version, and ``compare`` names it when it differs."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(code_text(Path(path).read_text(encoding="utf-8")).encode())
    return digest.hexdigest()[:12]
