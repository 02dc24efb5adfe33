"""Peers (torch, scipy.signal) sit in the registry and run through the same checks as our kernels."""

import subprocess
import sys
import textwrap

import pytest

from convbench import ConvProblem, get_kernel
from convbench.accuracy import compare, make_inputs
from convbench.reference import reference_for
from kernels.peers.scipy_signal import CALL_BUDGET_S, estimated_seconds


def test_peers_are_registered_and_marked():
    for algo, backend in (("torch", "cpu"), ("scipy", "cpu")):
        kernel = get_kernel(algo, backend)
        assert kernel.spec.peer is True


def test_torch_missing_gives_skipped_row_not_error(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'torch':
                    raise ImportError('blocked for the test')
        sys.meta_path.insert(0, Block())
        from convbench.__main__ import main
        sys.exit(main(['run', '--shapes', 'smoke', '--algo', 'torch', '--quick',
                       '--out', {str(tmp_path)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from convbench.results import load_results
    files = [p for p in tmp_path.glob("*/*.json") if "pyperf" not in p.name and "ceilings" not in p.name]
    frame = load_results(files[0])
    assert set(frame["status"]) == {"SKIPPED"}
    assert set(frame["reason"]) == {"torch is not installed"}


def test_torch_validates_on_a_tiny_problem_where_installed():
    pytest.importorskip("torch")
    problem = ConvProblem.parse("g2mb2ic4ih9oc6oh5kh3sh2ph1")
    x, w = make_inputs(problem)
    kernel = get_kernel("torch", "cpu")
    result = compare(kernel.prepare(problem, w)(x), reference_for(problem, x, w),
                     kernel.tolerance_for(problem))
    assert result.passed, result.reason


def test_scipy_peer_validates_with_stride_dilation_groups():
    problem = ConvProblem.parse("g2mb2ic4ih11iw9oc4oh5ow3kh3sh2sw3ph1dh1")
    x, w = make_inputs(problem)
    kernel = get_kernel("scipy", "cpu")
    result = compare(kernel.prepare(problem, w)(x), reference_for(problem, x, w),
                     kernel.tolerance_for(problem))
    assert result.passed, result.reason


def test_scipy_peer_skips_what_would_blow_the_budget():
    big = ConvProblem.parse('mb64ic256ih56oc256oh56kh3ph1n"too big"')
    assert estimated_seconds(big) > CALL_BUDGET_S
    reason = get_kernel("scipy", "cpu").supports(big)
    assert reason and "operation count" in reason and "budget" in reason
    assert get_kernel("scipy", "cpu").supports(ConvProblem.parse("mb1ic3ih8oc4kh3")) is None


def test_scipy_budget_decision_is_the_same_in_every_process():
    # The sweep, the case process and each pyperf worker decide support on their own; an estimate
    # that varied from call to call once failed a worker whose manager had accepted the problem.
    problem = ConvProblem.parse('mb1ic64ih56oc64oh56kh3ph1n"res2a_branch2b"')
    estimates = {estimated_seconds.__wrapped__(problem) for _ in range(3)}
    assert len(estimates) == 1
    # a tenfold batch costs ten times as much
    tenfold = ConvProblem.parse('mb10ic64ih56oc64oh56kh3ph1n"res2a_branch2b"')
    assert estimated_seconds(tenfold) == pytest.approx(10 * estimated_seconds(problem))
