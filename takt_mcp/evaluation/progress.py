"""A progress bar on stderr, advanced once per finished (case, condition) pair."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Redraws one line on a terminal; elsewhere (a log file) writes one line per update."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = done
        self.resumed = done
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.interactive = self.stream.isatty()

    def line(self, label: str = "") -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = round(BAR_WIDTH * fraction)
        elapsed = time.monotonic() - self.started
        finished_here = self.done - self.resumed
        remaining = self.total - self.done
        eta = ""
        if finished_here and remaining:
            eta = f", about {format_duration(elapsed / finished_here * remaining)} left"
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"[{bar}] {self.done}/{self.total} {format_duration(elapsed)}{eta}"
        return f"{text}  {label}" if label else text

    def start(self) -> None:
        self._write(self.line("resumed" if self.resumed else "started"))

    def advance(self, label: str = "") -> None:
        self.done += 1
        self._write(self.line(label))

    def finish(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        if self.interactive:
            # \r and the erase-line sequence redraw the bar in place.
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
