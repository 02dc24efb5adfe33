"""GPU kernels with CuPy. Importing this package does not import CuPy."""
