"""Where a benchmark's time goes: py-spy attached to a process, and what uses the CPU.

- `Profiler(pid)`: `py-spy record --pid` (sampling, `--nonblocking`, so the
  target is never paused) until stopped; `summary()` gives the top functions
  by own time and by time including callees, as shares of the samples.
- `CpuMeter`: samples, twice a second, the CPU time of every process the
  benchmark started (services, probes, the broker, load-generating
  subprocesses), of PostgreSQL's backends serving the benchmark's databases,
  and of this process; `delta()` gives CPU seconds per process kind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import psutil


class Profiler:
    def __init__(self, pid: int, out: Path, rate: int = 100, label: str = ""):
        self.pid = pid
        self.out = out
        self.label = label
        self.rate = rate
        self.error = ""
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            self.error = "py-spy is not installed"
            return
        self._process = subprocess.Popen(
            [
                *(exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--nonblocking"),
                *("--format", "raw", "--output", str(self.out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        if self._process.poll() is not None:
            self.error = (self._process.stderr.read() or "py-spy exited").strip()[-500:]

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def summary(self, top: int = 15) -> dict:
        if self.error or not self.out.exists():
            return {"method": "py-spy record --pid", "error": self.error or "no profile written"}
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        samples = 0
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if f]
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            samples += n
            own[_short(frames[-1])] += n
            for f in {_short(f) for f in frames}:
                if not f.startswith(_ENTRY):  # every sample has these: they say nothing
                    total[f] += n

        def share(c: Counter) -> list[dict]:
            return [{"function": f, "share": round(n / samples, 3)} for f, n in c.most_common(top)]

        return {
            "method": f"py-spy record --pid {self.pid} --rate {self.rate} --nonblocking ({self.label})",
            "samples": samples,
            "top_own": share(own) if samples else [],
            "top_inclusive": share(total) if samples else [],
            "raw_profile": str(self.out),
        }


_ENTRY = ("_run_module_as_main ", "_run_code ", "run (", "Runner.run ", "<module> ", "main (", "Thread.")


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", str(Path.cwd()) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def kind_of(process: psutil.Process) -> str:
    try:
        cmd = process.cmdline()
    except (psutil.Error, OSError):
        return "?"
    text = " ".join(cmd)
    if process.pid == os.getpid():
        return "bench (load generator, in-process work)"
    if "-m" in cmd:
        module = cmd[cmd.index("-m") + 1] if cmd.index("-m") + 1 < len(cmd) else ""
        if module.startswith("services."):
            return module.split(".")[1].replace("_", "-")
        return module
    if "multiprocessing" in text:
        return "bench subprocesses (publisher, subscribers, baseline)"
    if "tansu" in text or "broker" in text:
        return "broker"
    if text.startswith("postgres") or "postgres:" in text:
        return "postgresql backends"
    if "py-spy" in text:
        return "py-spy"
    return os.path.basename(cmd[0]) if cmd else "?"


class CpuMeter:
    """CPU seconds per process kind, sampled in a thread (a process that ends keeps its last sample)."""

    def __init__(self, database_marker: str = "podium_bench_", interval: float = 0.5):
        self.marker = database_marker
        self.interval = interval
        self.seen: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-meter")
        self.me = psutil.Process()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def _processes(self) -> list[psutil.Process]:
        found = [self.me, *self.me.children(recursive=True)]
        for p in psutil.process_iter(["name"]):
            if p.info["name"] == "postgres":
                with contextlib.suppress(psutil.Error):
                    if self.marker in " ".join(p.cmdline()):
                        found.append(p)
        return found

    def sample(self) -> None:
        for p in self._processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                cpu = t.user + t.system
                with self._lock:
                    kind = self.seen[p.pid][0] if p.pid in self.seen else kind_of(p)
                    self.seen[p.pid] = (kind, cpu)

    def snapshot(self) -> dict[int, tuple[str, float]]:
        self.sample()
        with self._lock:
            return dict(self.seen)

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        out: Counter[str] = Counter()
        for pid, (kind, cpu) in after.items():
            out[kind] += cpu - before.get(pid, (kind, 0.0))[1]
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.005}
