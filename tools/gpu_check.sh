#!/usr/bin/env bash
# Verify and benchmark the GPU kernels on a GPU box whose Python is already provisioned (CuPy, torch
# with cuDNN, numba, scipy, pandas, matplotlib, pytest) and that may have no package registry.
#
#   bash tools/gpu_check.sh [STAGE...]      (default: env tests default)
#
# env      the GPU, driver, CUDA and library versions
# tests    pytest -m gpu (the GPU kernels against the float64 reference, on the device)
# default  the default shape set on the GPU, with the cuDNN peer (batch 1)
# gpu32    ResNet-50's 3x3 layers, VGG-16 and two large filters at batch 32 (the issue-7 targets)
# NAME     any other shape set, swept the same way
# resume=FILE   finish an interrupted sweep whose results file is in this tree (unpacked from an
#               earlier call's results.tgz: untracked files travel to the device with the tree)
#
# Everything goes to $OUT (default: gpu-check-out/): a log per stage and results.tgz holding
# results/<gpu-machine-id>/ to unpack in a checkout and commit, packed again after every stage.
# RESULTS (default: results) is the results root the sweeps write under (the tests point it at a
# scratch folder); the archive holds its last component and the machine's folder.
# BUDGET (default 570 s, under the device's 10-minute limit per command) bounds the whole call: a
# stage gets what is left less a margin for packing, a sweep that runs out is interrupted (SIGINT:
# every finished case stays in its file) and the stages after it are skipped. Sweeps use --mode quick unless
# MODE=default is given: every case starts its own processes, and on a GPU the process start (CUDA
# context, imports) costs far more than the timed calls.
#
# pyperf missing on the box: carry its wheel in .whl/ (python3 -m pip download --no-deps pyperf -d .whl
# on a machine with a registry); it is installed to /tmp/site from there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
MODE=${MODE:-quick}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import pyperf" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site:$PYTHONPATH"
    else
        echo "pyperf is not installed and no wheel is in .whl/" >&2
        exit 1
    fi
fi
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(env tests default)
BUDGET=${BUDGET:-570}
MARGIN=20
id=$("$PY" -c "from convbench.machine import machine_id; print(machine_id())")
RESULTS=${RESULTS:-results}
pack() {
    [ -d "$RESULTS/$id" ] &&
        tar czf "$OUT/results.tgz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")/$id"
}
status=0
for stage in "${stages[@]}"; do
    left=$((BUDGET - SECONDS - MARGIN))
    if [ "$left" -lt 30 ]; then
        echo "=== $stage skipped: ${left}s of the ${BUDGET}s budget left" | tee -a "$OUT/skipped.txt"
        status=1
        continue
    fi
    echo "=== $stage ($(date -u +%H:%M:%S), ${left}s left)"
    limit=(timeout -s INT -k 15 "$left")
    case $stage in
    env)
        { nvidia-smi; "$PY" - <<'PYEOF'
# each line on its own: one library that fails to answer must not hide what the others say
import importlib
failed = False

def show(label, read):
    global failed
    try:
        print(label, read())
    except Exception as error:  # noqa: BLE001 - name it and go on
        failed = True
        print(label, f"FAILED: {type(error).__name__}: {error}")

def version(name):
    return importlib.import_module(name).__version__

show("machine id:", lambda: __import__("convbench.machine").machine.machine_id())
show("cupy", lambda: version("cupy"))
show("CUDA runtime", lambda: __import__("cupy").cuda.runtime.runtimeGetVersion())
show("CUDA driver", lambda: __import__("cupy").cuda.runtime.driverGetVersion())
show("torch", lambda: version("torch"))
show("torch CUDA", lambda: __import__("torch").version.cuda)
show("cuDNN", lambda: __import__("torch").backends.cudnn.version())
for name in ("numpy", "scipy", "numba", "pyperf"):
    show(name, lambda: version(name))
show("fingerprint", lambda: __import__("convbench.machine").machine.fingerprint())
raise SystemExit(1 if failed else 0)
PYEOF
        } 2>&1 | tee "$OUT/env.txt" || status=1 ;;
    tests)
        "${limit[@]}" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider 2>&1 \
            | tee "$OUT/tests.log" || status=1 ;;
    resume=*)
        "${limit[@]}" "$PY" -m convbench run --resume "${stage#resume=}" 2>&1 \
            | tee "$OUT/resume.log" || status=1 ;;
    *)  # a shape set
        "${limit[@]}" "$PY" -m convbench run --shapes "$stage" --backend gpu --mode "$MODE" \
            --out "$RESULTS" 2>&1 \
            | tee "$OUT/$stage.log" || status=1 ;;
    esac
    pack
done
echo "=== done ($(date -u +%H:%M:%S)), status $status"
exit $status
