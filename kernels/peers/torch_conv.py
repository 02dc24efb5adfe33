"""PyTorch's ``conv2d`` as a peer: oneDNN on the CPU, cuDNN on the GPU.

Notes
-----
On the CPU, torch uses as many threads as this process may use (the cores numba and BLAS get). On the
GPU, ``cudnn.benchmark`` is on so cuDNN times its algorithms and keeps the fastest for the shape (its
"find"), and TF32 is off for convolutions and matrix products so the comparison is float32 against
float32. Inputs are shared with torch without copies (``torch.from_numpy``, DLPack), so nothing but
the convolution is timed.
"""

import os


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class TorchConv:
    def __init__(self, device):
        self.device = device

    def supports(self, problem):
        if self.device == "cuda":
            import torch
            if not torch.cuda.is_available():
                return (f"torch {torch.__version__} sees no CUDA device (a CPU-only build, or no "
                        f"driver)")
        return None

    def workspace_bytes(self, problem):
        return 0  # oneDNN and cuDNN manage their own workspace, which torch does not report

    def prepare(self, problem, w):
        import torch
        import torch.nn.functional as functional

        torch.set_num_threads(_cores())
        stride, padding, dilation, groups = (problem.stride, problem.padding, problem.dilation,
                                             problem.groups)
        if self.device == "cuda":
            import cupy

            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            weights = torch.from_dlpack(cupy.asarray(w)).contiguous()

            def run(x):
                with torch.no_grad():
                    y = functional.conv2d(torch.from_dlpack(x), weights, None, stride, padding,
                                          dilation, groups)
                return cupy.from_dlpack(y.contiguous())
            return run

        weights = torch.from_numpy(w.copy())

        def run(x):
            with torch.no_grad():
                y = functional.conv2d(torch.from_numpy(x), weights, None, stride, padding, dilation,
                                      groups)
            return y.contiguous().numpy()

        return run


torch_cpu = TorchConv("cpu")
torch_gpu = TorchConv("cuda")
