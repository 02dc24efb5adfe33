"""cupy.cuda on the host: one pretend device, events on the host clock."""

import os
import time
from types import SimpleNamespace


def _get_device_count():
    return 1


def _mem_get_info():
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return free, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _get_device_properties(device):
    return {"name": b"CPU emulation of CUDA", "totalGlobalMem": _mem_get_info()[1],
            "multiProcessorCount": os.cpu_count()}


runtime = SimpleNamespace(getDeviceCount=_get_device_count, memGetInfo=_mem_get_info,
                          getDeviceProperties=_get_device_properties)


class Device:
    def __init__(self, device=0):
        self.id = device

    def synchronize(self):
        pass


class Event:
    def __init__(self, *_, **__):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        if self.time is None:
            raise RuntimeError("event synchronized before it was recorded")


def get_elapsed_time(start, end):
    return (end.time - start.time) * 1e3


def set_allocator(allocator=None):
    pass
