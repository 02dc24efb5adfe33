import subprocess
import sys
import textwrap


def test_convbench_imports_without_cupy_torch_or_pandas():
    """With CuPy made unimportable, convbench and the CPU kernels still work and never touch it."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('cupy', 'torch'):
                    raise ImportError('blocked for the test: ' + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        import convbench
        from convbench import conv2d
        from convbench.registry import all_kernels
        y = conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
        assert y.shape == (1, 1, 2, 2) and float(y[0, 0, 0, 0]) == 9.0
        gpu = [k for k in all_kernels() if k.spec.backend == 'gpu']
        for kernel in gpu:
            assert kernel.unavailable_reason, kernel
        bad = [m for m in ('cupy', 'torch', 'pandas', 'matplotlib') if m in sys.modules]
        assert not bad, bad
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
