import pytest

from convbench.timing import MODES, cuda_time_func, host_time_func, loops_for


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_host_time_func_runs_loops_times_and_returns_clock_difference():
    clock = FakeClock()
    calls = []

    def run(x):
        calls.append(x)
        clock.now += 0.25  # each call "takes" a quarter second

    time_func = host_time_func(run, "input", clock=clock)
    assert time_func(4) == pytest.approx(1.0)
    assert calls == ["input"] * 4
    assert time_func(1) == pytest.approx(0.25)


def test_loops_for_reaches_min_time():
    assert loops_for(0.001, 0.05) == 50
    assert loops_for(0.2, 0.05) == 1
    assert loops_for(0.0, 0.05) == 1
    assert loops_for(0.03, 0.05) == 2


def test_modes_order_by_effort():
    quick, default, rigorous = MODES["quick"], MODES["default"], MODES["rigorous"]
    assert quick.processes == 1
    assert quick.processes * quick.values < default.processes * default.values
    assert default.processes * default.values < rigorous.processes * rigorous.values


class FakeEvent:
    def __init__(self, log, clock):
        self.log, self.clock, self.t = log, clock, None

    def record(self):
        self.t = self.clock.now
        self.log.append("record")

    def synchronize(self):
        self.log.append("event-sync")


class FakeCupy:
    """Just enough of cupy.cuda for cuda_time_func: events read a fake GPU clock in ms."""

    def __init__(self):
        self.log = []
        self.clock = FakeClock()
        outer = self

        class Device:
            def synchronize(self):
                outer.log.append("device-sync")

        class Cuda:
            @staticmethod
            def Event():
                return FakeEvent(outer.log, outer.clock)

            @staticmethod
            def get_elapsed_time(start, end):
                return end.t - start.t

        Cuda.Device = Device
        self.cuda = Cuda


def test_cuda_time_func_uses_events_and_synchronises():
    cupy = FakeCupy()

    def run(x):
        cupy.log.append("launch")
        cupy.clock.now += 2.0  # 2 ms of GPU time per call

    seconds = cuda_time_func(run, None, cupy_module=cupy)(3)
    assert seconds == pytest.approx(0.006)
    assert cupy.log == ["device-sync", "record", "launch", "launch", "launch", "record", "event-sync"]


def test_cpu_ceilings_are_measured_every_run_gpu_ones_come_from_the_cache(tmp_path, monkeypatch):
    import json

    from convbench import ceilings

    def no_gpu():
        raise AssertionError("the cached GPU ceilings should have been used")

    monkeypatch.setattr(ceilings, "measure_cpu", lambda: {"sgemm_gflops": 250.0, "copy_gbps": 30.0})
    monkeypatch.setattr(ceilings, "measure_gpu", no_gpu)
    cache = tmp_path / "ceilings.json"
    cache.write_text(json.dumps({"cpu": {"sgemm_gflops": 120.0}, "gpu": {"sgemm_gflops": 5e4}}))
    before = cache.read_text()
    found = ceilings.ceilings(tmp_path, ("cpu", "gpu"))
    assert found["cpu"]["sgemm_gflops"] == 250.0 and "measured" in found["cpu"]
    assert found["gpu"] == {"sgemm_gflops": 5e4}
    assert cache.read_text() == before          # the committed cache is left as it was


def test_drift_note_warns_when_the_ceiling_moved_during_the_run():
    from convbench.ceilings import drift_note
    start = {"cpu": {"sgemm_gflops": 200.0}}
    steady = drift_note(start, {"cpu": {"sgemm_gflops": 210.0}})
    assert steady == ("cpu SGEMM ceiling: 200 GFLOP/s at the start, 210 at the end (+5 %)")
    moved = drift_note(start, {"cpu": {"sgemm_gflops": 120.0}})
    assert "(-40 %)" in moved and "speed changed during the run" in moved
    assert drift_note(start, {}) == ""          # a check-only run measures nothing
