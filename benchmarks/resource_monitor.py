"""The server's CPU and memory while a benchmark level runs.

From ``/proc/PID`` and its child processes (tingshuo's embedded LLM is a ``llama-server``
child) when the server runs on this machine and its PID is known, else from the
Prometheus process metrics at ``/metrics`` (tingshuo exports them); a remote peer without either
is reported as unmeasured rather than guessed.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc/PID/task/TID/children``."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return tree


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    with open(f"/proc/{pid}/status") as fh:
        match = re.search(r"VmRSS:\s+(\d+)", fh.read())
    return cpu, int(match.group(1)) if match else 0


@dataclass
class ResourceSample:
    at_s: float
    cpu_seconds: float
    rss_mb: float


@dataclass
class ResourceMonitor:
    pid: int | None = None
    metrics_url: str | None = None
    interval_s: float = 0.5
    samples: list[ResourceSample] = field(default_factory=list)
    source: str = "unmeasured"

    async def _read(self, http: aiohttp.ClientSession) -> tuple[float, float] | None:
        if self.pid is not None:
            cpu, rss_kb = 0.0, 0
            for pid in _process_tree(self.pid):
                try:
                    process_cpu, process_rss_kb = _cpu_and_rss(pid)
                except (FileNotFoundError, ProcessLookupError):
                    if pid == self.pid:
                        raise
                    continue  # a child that just exited (a restarted llama-server)
                cpu, rss_kb = cpu + process_cpu, rss_kb + process_rss_kb
            return cpu, rss_kb / 1024
        if self.metrics_url:
            async with http.get(self.metrics_url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                text = await response.text()
            cpu = re.search(r"^process_cpu_seconds_total (\S+)", text, re.M)
            rss = re.search(r"^process_resident_memory_bytes (\S+)", text, re.M)
            if cpu and rss:
                return float(cpu.group(1)), float(rss.group(1)) / 2**20
        return None

    async def run(self) -> None:
        """Samples until cancelled."""
        t0 = time.monotonic()
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    reading = await self._read(http)
                except (OSError, aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    reading = None
                if reading is not None:
                    self.source = f"/proc/{self.pid}" if self.pid is not None else str(self.metrics_url)
                    self.samples.append(ResourceSample(round(time.monotonic() - t0, 2), *reading))
                await asyncio.sleep(self.interval_s)

    def summary(self) -> dict[str, object]:
        s = self.samples
        if len(s) < 2:
            return {"source": self.source, "samples": len(s)}
        cpu_pct = [100 * (b.cpu_seconds - a.cpu_seconds) / max(1e-6, b.at_s - a.at_s) for a, b in zip(s, s[1:])]
        return {
            "source": self.source,
            "samples": len(s),
            "cpu_percent_mean": round(100 * (s[-1].cpu_seconds - s[0].cpu_seconds) / (s[-1].at_s - s[0].at_s), 1),
            "cpu_percent_max": round(max(cpu_pct), 1),
            "rss_mb_start": round(s[0].rss_mb, 1),
            "rss_mb_max": round(max(x.rss_mb for x in s), 1),
            "rss_mb_end": round(s[-1].rss_mb, 1),
            "series": [[x.at_s, round(x.cpu_seconds, 2), round(x.rss_mb, 1)] for x in s],
        }
