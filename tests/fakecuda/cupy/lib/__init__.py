"""cupy.lib: only ``stride_tricks`` (see ../../README.md)."""

from . import stride_tricks  # noqa: F401
