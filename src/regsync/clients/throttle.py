"""One client-side limiter for every Checkfront call of a run: a request rate and a concurrency, both adaptive.

Checkfront answers 429 + Retry-After beyond a rate it does not publish ("high enough for a
well-behaving interactive program"). A run should settle just under that rate without being told it:

- rate (AIMD): unlimited, or `checkfront.max_requests_per_s` when set (never above it). On a 429 the
  rate drops to a share of what the server accepted over the last seconds (once per epoch, so the
  429s of calls already in flight do not cut it again); every second without a 429 it grows by 1 %.
- concurrency (AIMD): at most `checkfront.concurrency` calls in flight. When the latency rises well
  above the least seen (the server queues), the limit shrinks by a fifth; otherwise it grows by one
  per epoch back to the maximum.

The Retry-After of a 429 is honoured by the retry policy for the call that got it (regsync.clients.retry);
the limiter only slows the others down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 2.0  # how far back the accepted rate is measured
DECREASE = 0.85  # the rate after a 429, as a share of the accepted rate
INCREASE = 0.01  # per second without a 429, as a share of the rate
LATENCY_RISE = 2.0  # latency above this multiple of the least seen shrinks the concurrency


class Throttle:
    """Admit calls at an adaptive rate and concurrency; thread-safe."""

    def __init__(
        self,
        max_concurrency: int,
        max_rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_rate = max_rate
        self.rate: float | None = max_rate  # None: no limit learned or set
        self.concurrency = max_concurrency
        self.clock = clock
        self.sleep = sleep
        self._in_flight = 0
        self._next_slot = 0.0
        self._accepted: deque[float] = deque()
        self._epoch_end = 0.0
        self._last_increase = clock()
        self._least_latency: float | None = None
        self._latency: float | None = None  # moving average
        self._condition = threading.Condition()
        self.rate_limited = 0  # 429s seen

    def acquire(self) -> float:
        """Wait for a free slot and the rate's next turn; returns the moment the call may start."""
        with self._condition:
            while self._in_flight >= self.concurrency:
                self._condition.wait()
            self._in_flight += 1
            now = self.clock()
            wait = 0.0
            if self.rate is not None:
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self.rate
                wait = slot - now
        if wait > 0:
            self.sleep(wait)
        return self.clock()

    def release(self, started: float, *, rate_limited: bool = False) -> None:
        """A call admitted at `started` ended; a 429 cuts the rate, a rising latency the concurrency."""
        now = self.clock()
        with self._condition:
            self._in_flight -= 1
            if rate_limited:
                self.rate_limited += 1
                self._on_rate_limited(now)
            else:
                self._on_answer(now, now - started)
            self._condition.notify_all()

    def _accepted_rate(self, now: float) -> float | None:
        while self._accepted and self._accepted[0] < now - WINDOW_S:
            self._accepted.popleft()
        if len(self._accepted) < 2:
            return None
        span = max(now - self._accepted[0], 1e-3)
        return len(self._accepted) / span

    def _on_rate_limited(self, now: float) -> None:
        if now < self._epoch_end:
            return  # a call sent before the last cut
        accepted = self._accepted_rate(now)
        current = self.rate if self.rate is not None else (accepted or 1.0) * 2
        target = DECREASE * accepted if accepted is not None else current / 2
        self.rate = max(0.5, min(current, target))
        self._epoch_end = now + max(0.5, 2 * (self._latency or 0.25))
        self._last_increase = now
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)

    def _on_answer(self, now: float, latency: float) -> None:
        self._accepted.append(now)
        if self._least_latency is None or latency < self._least_latency:
            self._least_latency = latency
        self._latency = latency if self._latency is None else 0.9 * self._latency + 0.1 * latency
        if now >= self._epoch_end:
            self._epoch_end = now + max(0.1, 2 * self._latency)
            least = self._least_latency or latency
            if self._latency > LATENCY_RISE * least and self._latency > least + 0.05:
                self.concurrency = max(1, int(self.concurrency * 0.8))
            elif self.concurrency < self.max_concurrency:
                self.concurrency += 1
        if self.rate is not None and now - self._last_increase >= 1.0:
            seconds = now - self._last_increase
            self._last_increase = now
            grown = self.rate * (1 + INCREASE * seconds)
            self.rate = min(grown, self.max_rate) if self.max_rate is not None else grown

    def snapshot(self) -> dict[str, float | int | None]:
        with self._condition:
            rate = round(self.rate, 2) if self.rate is not None else None
            return {"rate": rate, "concurrency": self.concurrency, "rate_limited": self.rate_limited}
