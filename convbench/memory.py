"""How much memory a case may use, read off the machine as it is now."""

from __future__ import annotations

import os

DEFAULT_BUDGET_FRACTION = 0.5  # of the memory available now: leaves room for the reference and the OS


def available_bytes() -> int:
    """Memory the kernel could take without swapping: ``MemAvailable`` on Linux, free pages elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_budget() -> int:
    return int(available_bytes() * DEFAULT_BUDGET_FRACTION)


def format_bytes(count: float) -> str:
    """'512 B', '3.4 MiB', '6.9 GiB' (GiB is the largest unit)."""
    if abs(count) < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB"):
        count /= 1024
        if abs(count) < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GiB"


def parse_bytes(text: str, zero=False) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes; '0' only with ``zero``."""
    units = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = cleaned, ""
    if cleaned and cleaned[-1] in units:
        number, unit = cleaned[:-1], cleaned[-1]
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ValueError(f"cannot read memory size {text!r}; use e.g. 512M, 2G or a byte count") from None
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"memory size must be {'0 or more' if zero else 'positive'}, got {text!r}")
    return int(value)
