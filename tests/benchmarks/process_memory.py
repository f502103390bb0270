"""Run a command and sample the RSS of its process tree (for the benchmarks)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class TreeMemory:
    seconds: float  # wall time of the command
    peaks: dict[int, int]  # each process's peak RSS in bytes, by pid
    peak_total: int  # the peak of the whole tree's summed RSS, in bytes
    root_pid: int


def run_sampling_rss(command: list[str], env: dict[str, str], every_s: float = 0.2) -> TreeMemory:
    """Run `command` to the end, sampling its process tree's RSS every `every_s`; raise with
    the end of its stderr when it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    peak_total = 0
    done = threading.Event()

    def sample():
        nonlocal peak_total
        root = psutil.Process(process.pid)
        while not done.is_set():
            sizes = {}
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:  # the command has ended
                tree = []
            for one in tree:
                with contextlib.suppress(psutil.Error):  # a process that ended since
                    sizes[one.pid] = one.memory_info().rss
            for pid, rss in sizes.items():
                peaks[pid] = max(peaks.get(pid, 0), rss)
            peak_total = max(peak_total, sum(sizes.values()))
            time.sleep(every_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise RuntimeError(f"{command} failed:\n{stderr.decode()[-3000:]}")
    return TreeMemory(time.perf_counter() - start, peaks, peak_total, process.pid)
