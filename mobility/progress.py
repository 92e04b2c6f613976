"""Progress lines for whoever watches a run: stage start and end (rows, seconds), and a heartbeat.

    stage 1/3 pseudonymize …
      input gate: checking 4 raw tables …
      … 30 s, Spark tasks 3/8 of the running stage done
    stage 1/3 pseudonymize: 826,810 rows out in 41 s

Lines go to stderr (stdout holds the run summary) and only when progress is on:
``MI_PROGRESS=1`` forces it on, ``MI_PROGRESS=0`` off; otherwise it is on for a real
command-line run (``python -m jobs.<job>``, i.e. ``main()`` without ``argv``) and off
when a test calls ``main([...])`` in-process. The heartbeat (every
``MI_PROGRESS_INTERVAL`` seconds, default 30, then at doubling intervals) shows a long
step is alive without flooding the console.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_current: Progress | None = None


class Progress:
    """Prints progress lines when ``enabled``; does nothing otherwise."""

    def __init__(self, enabled: bool, *, spark: Any = None, interval: float | None = None, stream=None) -> None:
        self.enabled = enabled
        self.spark = spark
        self.interval = interval if interval is not None else float(os.environ.get("MI_PROGRESS_INTERVAL", "30"))
        self.stream = stream
        self._last = time.monotonic()
        self._lock = threading.Lock()

    @staticmethod
    def wanted(argv: list[str] | None) -> bool:
        flag = os.environ.get("MI_PROGRESS", "").strip()
        if flag in ("0", "1"):
            return flag == "1"
        return argv is None

    def say(self, line: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            print(line, file=self.stream or sys.stderr, flush=True)
            self._last = time.monotonic()

    def step(self, what: str) -> None:
        """A long step starts (indented under its stage)."""
        self.say(f"  {what} …")

    @contextmanager
    def stage(self, name: str, number: int, total: int, *, rows: Any = None) -> Iterator[dict[str, Any]]:
        """Announce a stage, keep a heartbeat while it runs, report rows and seconds at the end.

        ``rows`` is a callable returning the stage's rows out (called after the stage);
        the yielded dict may also get ``rows`` set by the caller.
        """
        info: dict[str, Any] = {}
        label = f"stage {number}/{total} {name}"
        self.say(f"{label} …")
        t0 = time.monotonic()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop, t0), daemon=True) if self.enabled else None
        if beat is not None:
            beat.start()
        ok = False
        try:
            yield info
            ok = True
        finally:
            stop.set()
            if beat is not None:
                beat.join(timeout=2)
            seconds = time.monotonic() - t0
            if ok:
                n = info.get("rows")
                if n is None and callable(rows):
                    try:
                        n = rows()
                    except Exception:  # progress must never fail a run
                        n = None
                shown = f"{n:,} rows out" if isinstance(n, int) else "done"
                self.say(f"{label}: {shown} in {seconds:.0f} s")
            else:
                self.say(f"{label}: failed after {seconds:.0f} s")

    def _heartbeat(self, stop: threading.Event, t0: float) -> None:
        """After ``interval`` s of silence a line, then after twice as long, and so on (30, 60, 120 s ...)."""
        wait = self.interval
        while not stop.wait(1.0):
            if time.monotonic() - self._last < wait:
                continue
            self.say(f"  … {time.monotonic() - t0:.0f} s{self._spark_status()}")
            wait *= 2

    def _spark_status(self) -> str:
        try:
            tracker = self.spark.sparkContext.statusTracker()
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            if not stages:
                return ""
            done = sum(s.numCompletedTasks for s in stages)
            total = sum(s.numTasks for s in stages)
            return f", Spark tasks {done}/{total} of the running stage{'s' if len(stages) > 1 else ''} done"
        except Exception:  # no session, or the JVM is busy: the elapsed time alone still says "alive"
            return ""


def current() -> Progress:
    """The running job's progress (a disabled one outside a job)."""
    return _current or Progress(False)


def activate(progress: Progress | None) -> None:
    global _current
    _current = progress


def step(what: str) -> None:
    """Announce a long step of the running job (no-op when progress is off)."""
    current().step(what)


def rows_out(section: Any) -> int | None:
    """A stage's rows out from its summary section (``rows_out``, ``rows_out_*``, or the sum of ``*_released``)."""
    if not isinstance(section, dict):
        return None
    if isinstance(section.get("rows_out"), int):
        return section["rows_out"]
    for key, value in section.items():
        if key.startswith("rows_out") and isinstance(value, int):
            return value
    released = [v for k, v in section.items() if k.endswith("_released") and isinstance(v, int)]
    return sum(released) if released else None
