"""The Checkfront limiter: a 429 cuts the rate once per epoch, the rate climbs back under the refused
one, a configured maximum is never passed, a rising latency shrinks the concurrency."""

from __future__ import annotations

from regsync.clients.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_calls(
    throttle: Throttle, clock: FakeClock, count: int, latency: float, limited: bool = False
) -> None:
    for _ in range(count):
        started = throttle.acquire()
        clock.now += latency
        throttle.release(started, rate_limited=limited)


def test_a_429_cuts_the_rate_once_per_epoch_and_it_climbs_back_below_the_refused_rate() -> None:
    clock = FakeClock()
    throttle = Throttle(8, clock=clock, sleep=clock.sleep)
    run_calls(throttle, clock, 200, 0.01)  # 100 calls/s, no limit learned
    assert throttle.rate is None
    run_calls(throttle, clock, 3, 0.001, limited=True)  # three 429s of one epoch
    assert throttle.rate_limited == 3
    first_cut = throttle.rate
    assert first_cut is not None
    assert first_cut < 100
    run_calls(throttle, clock, 1, 0.001, limited=True)
    assert throttle.rate == first_cut  # still the same epoch: not cut again
    run_calls(throttle, clock, 3000, 0.001)  # a long quiet stretch at the limiter's pace
    assert throttle.rate is not None
    assert first_cut < throttle.rate
    refused = first_cut / 0.8
    assert throttle.rate < refused * 1.2  # probing above 95 % of the refused rate is slow


def test_a_configured_maximum_paces_calls_and_is_never_passed() -> None:
    clock = FakeClock()
    throttle = Throttle(8, max_rate=20.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    run_calls(throttle, clock, 200, 0.0)
    assert clock.now - start >= 200 / 20.0 - 0.1
    assert throttle.rate == 20.0


def test_a_rising_latency_shrinks_the_concurrency() -> None:
    clock = FakeClock()
    throttle = Throttle(8, clock=clock, sleep=clock.sleep)
    run_calls(throttle, clock, 50, 0.05)
    assert throttle.concurrency == 8
    run_calls(throttle, clock, 200, 2.0)
    assert throttle.concurrency < 8


def test_a_429_before_any_rate_can_be_measured_learns_no_guessed_rate() -> None:
    """A 429 on the first calls of a run (say, a previous run's burst still counted by the server)
    must not pace the whole run at a guessed rate: it halves the concurrency instead."""
    clock = FakeClock()
    throttle = Throttle(8, clock=clock, sleep=clock.sleep)
    run_calls(throttle, clock, 1, 0.01, limited=True)
    assert throttle.rate is None
    assert throttle.concurrency == 4
    start = clock.now
    run_calls(throttle, clock, 500, 0.01)
    assert clock.now - start < 500 * 0.01 + 0.5  # no pacing: only the calls' own time passed
    assert throttle.concurrency == 8  # and the concurrency grew back
