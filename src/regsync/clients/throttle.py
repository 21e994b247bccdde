"""One client-side limiter for every Checkfront call of a run: a request rate and a concurrency, both adaptive.

Checkfront answers 429 + Retry-After beyond a rate it does not publish ("high enough for a
well-behaving interactive program"). A run should settle just under that rate without being told it:

- rate (AIMD): unlimited, or `checkfront.max_requests_per_s` when set (never above it). On a 429 the
  rate drops to 80 % of the rate the server refused (the least of what was sent, what was accepted
  and the current limit over the last second; once per epoch, so the 429s of calls already in flight
  do not cut it again). It then climbs back quickly to 95 % of the lowest rate ever refused, and
  above that by 0.5 % a second, so a run settles just under the server's limit with few 429s.
- concurrency (AIMD): at most `checkfront.concurrency` calls in flight. When the latency rises well
  above the least seen (the server queues), the limit shrinks by a fifth; otherwise it grows by one
  per epoch back to the maximum.

The Retry-After of a 429 is honoured by the retry policy for the call that got it (regsync.clients.retry);
the limiter only slows the others down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("regsync.throttle")
WINDOW_S = 1.0  # how far back the rates sent and accepted are measured
DECREASE = 0.8  # the rate after a 429, as a share of the rate it refused
RECOVER_TO = 0.95  # after a cut, back quickly to this share of the lowest rate refused,
RECOVERY = 0.5  # closing this share of the gap a second,
INCREASE = 0.005  # then slowly above it: this share of the rate a second without a 429
LATENCY_RISE = 4.0  # latency above this multiple of the least seen (and 0.5 s more) shrinks the concurrency


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
        self._accepted: deque[float] = deque()  # when answers (not 429s) came
        self._admitted: deque[float] = deque()  # when calls were let through
        self._refused_at: float | None = None  # the lowest rate a 429 answered
        self._epoch_end = 0.0  # the next concurrency adjustment
        self._cut_until = 0.0  # 429s before this answer calls sent before the last cut
        self._last_increase = clock()
        self._least_latency: float | None = None
        self._latency: float | None = None  # moving average
        self._condition = threading.Condition()
        self._born = clock()
        self.rate_limited = 0  # 429s seen

    def acquire(self) -> float:
        """Wait for a free slot and the rate's next turn; returns the moment the call may start."""
        with self._condition:
            while self._in_flight >= self.concurrency:
                self._condition.wait()
            self._in_flight += 1
            now = self.clock()
            self._admitted.append(now)
            while self._admitted[0] < now - WINDOW_S:
                self._admitted.popleft()
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

    def _per_second(self, moments: deque[float], now: float) -> float | None:
        """Events a second over the last WINDOW_S (None with too few to tell)."""
        while moments and moments[0] < now - WINDOW_S:
            moments.popleft()
        span = min(WINDOW_S, now - self._born)  # a whole window once the run is that old
        if len(moments) < 5 or span < 0.2:
            return None
        return len(moments) / span

    def _on_rate_limited(self, now: float) -> None:
        if now < self._cut_until:
            return  # a call sent before the last cut
        sent = self._per_second(self._admitted, now)
        accepted = self._per_second(self._accepted, now)
        known = [r for r in (sent, accepted, self.rate) if r is not None]
        if not known:
            # Too few calls yet to tell what rate was refused: a guessed one (say 2/s) would pace the
            # whole run at it. Halve the calls in flight instead; the 429's own Retry-After is
            # honoured by the retry policy, and a later 429 with a measurable rate sets one.
            self.concurrency = max(1, self.concurrency // 2)
            self._cut_until = now + max(0.2, 2 * (self._latency or 0.1))
            log.info("Checkfront answered 429: at most %d calls in flight from now on", self.concurrency)
            return
        too_fast = min(known)  # a rate the server just refused
        self._refused_at = too_fast if self._refused_at is None else min(self._refused_at, too_fast)
        self.rate = max(0.5, DECREASE * too_fast)
        self._cut_until = now + max(0.2, 2 * (self._latency or 0.1))
        self._last_increase = now
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)
        log.info("Checkfront answered 429: at most %.1f requests/s from now on", self.rate)

    def _on_answer(self, now: float, latency: float) -> None:
        self._accepted.append(now)
        while self._accepted[0] < now - WINDOW_S:
            self._accepted.popleft()
        if self._least_latency is None or latency < self._least_latency:
            self._least_latency = latency
        self._latency = latency if self._latency is None else 0.9 * self._latency + 0.1 * latency
        if now >= self._epoch_end:
            self._epoch_end = now + max(0.1, 2 * self._latency)
            least = self._least_latency or latency
            if self._latency > LATENCY_RISE * least and self._latency > least + 0.5:
                self.concurrency = max(1, int(self.concurrency * 0.8))
            elif self.concurrency < self.max_concurrency:
                self.concurrency += 1
        if self.rate is not None and now - self._last_increase >= 1.0:
            seconds = now - self._last_increase
            self._last_increase = now
            near = RECOVER_TO * self._refused_at if self._refused_at is not None else None
            if near is not None and self.rate < near:
                grown = self.rate + (near - self.rate) * min(1.0, RECOVERY * seconds)  # back quickly
            else:
                grown = self.rate * (1 + INCREASE * seconds)  # then probe slowly
            self.rate = min(grown, self.max_rate) if self.max_rate is not None else grown

    def snapshot(self) -> dict[str, float | int | None]:
        with self._condition:
            rate = round(self.rate, 2) if self.rate is not None else None
            return {"rate": rate, "concurrency": self.concurrency, "rate_limited": self.rate_limited}
