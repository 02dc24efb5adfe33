"""One side of an interleaved A/B comparison: a long-lived process timing one kernel on request.

``python -m convbench._ab_worker --tree DIR --problem D --algo A --backend B`` imports the harness
(this package) as usual but the ``kernels`` package from ``DIR``, so two of these, started on two
source trees, time two versions of the same kernel under the same harness. After making the seeded
inputs, preparing and (with ``--validate``) checking the output against the float64 reference, it
prints one ``AB {...}`` line and then answers each ``time LOOPS`` line on its standard input with
``AB {"seconds": ...}``: seconds per call over ``LOOPS`` calls, by the kernel's own clock. The
manager (:mod:`convbench.ab`) alternates its requests between the two sides, so both are timed in
the same minutes of the machine's life.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import traceback

from .machine import pin_threads

PREFIX = "AB "


def _say(payload):
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _import_kernels_from(tree):
    """Put ``tree`` first on the path for ``kernels``; the harness is already imported."""
    if "kernels" in sys.modules:
        raise RuntimeError("kernels was imported before the tree was chosen")
    sys.path.insert(0, tree)
    import kernels
    return kernels.__file__


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convbench._ab_worker")
    parser.add_argument("--tree", required=True, help="directory holding the kernels package")
    parser.add_argument("--problem", required=True)
    parser.add_argument("--algo", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-budget", type=int, default=None)
    parser.add_argument("--threads", type=int,
                        help="run on the first THREADS CPUs this process may use")
    parser.add_argument("--validate", action="store_true",
                        help="check the output against the float64 reference first")
    parser.add_argument("--reference-cache", help="directory of cached float64 references")
    args = parser.parse_args(argv)

    try:
        if args.threads:
            pin_threads(args.threads)
        kernels_file = _import_kernels_from(args.tree)
        from ._case import to_device, to_host, validate
        from .accuracy import make_inputs
        from .problem import ConvProblem
        from .registry import get_kernel
        from .timing import seconds_per_call, time_func_for

        problem = ConvProblem.parse(args.problem)
        kernel = get_kernel(args.algo, args.backend)
        if kernel.unavailable_reason is None:
            try:
                kernel.impl  # noqa: B018 - the registry's target, imported from this tree
            except (ImportError, AttributeError) as error:
                _say({"status": "ABSENT", "kernels_file": kernels_file,
                      "reason": f"{kernel.spec.target} is not in this version ({error})"})
                return 0
        found = {"status": "PASSED", "reason": "", "kernels_file": kernels_file}
        if args.validate:
            checked, run, x = validate(kernel, problem, args.seed, args.memory_budget,
                                       args.reference_cache)
            found.update(checked)
            if run is None:
                _say(found)
                return 0
        else:
            x, w = make_inputs(problem, seed=args.seed, fill="uniform")
            x = to_device(args.backend, x)
            run = kernel.prepare(problem, w, args.memory_budget)
            run(x)  # one checked call; the timed loop calls the unchecked function
        # a digest of the output, so the manager can say whether both versions agree bit for bit
        found["output_sha256"] = hashlib.sha256(to_host(run(x)).tobytes()).hexdigest()
        found["per_call_s"] = seconds_per_call(args.backend, run.unchecked, x)
        time_func = time_func_for(args.backend, run.unchecked, x)
    except Exception as error:  # noqa: BLE001 - reported as this side's FAILED status
        _say({"status": "FAILED", "reason": f"{type(error).__name__}: {error}",
              "traceback": traceback.format_exc(limit=5)})
        return 0
    _say(found)

    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "time":
            loops = int(words[1])
            _say({"seconds": time_func(loops) / loops})
    return 0


if __name__ == "__main__":
    sys.exit(main())
