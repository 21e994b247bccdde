from __future__ import annotations

import pytest

from regsync.clients.usage import ApiUsage, parse_limit_info
from regsync.errors import QuotaExhaustedError


def test_plain_form() -> None:
    info = parse_limit_info("api-usage=18/5000")
    assert info.org is not None
    assert (info.org.used, info.org.max) == (18, 5000)


def test_per_app_form() -> None:
    info = parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)")
    assert info.per_app["sample-connected-app"].used == 17
    tightest = info.tightest()
    assert tightest is not None
    assert tightest[0] == "per-app-api-usage(sample-connected-app)"


def test_bursts_form_is_parsed_not_ignored() -> None:
    info = parse_limit_info("api-usage=10018/100000; api-bursts=1/750")
    assert info.org is not None
    assert info.org.used == 10018
    assert info.bursts is not None
    assert (info.bursts.used, info.bursts.max) == (1, 750)
    assert info.unparsed == ()


def test_unknown_parts_are_kept() -> None:
    info = parse_limit_info("api-usage=1/10; something-new=abc")
    assert info.unparsed == ("something-new=abc",)


def test_governor_stops_at_share() -> None:
    usage = ApiUsage(max_share=0.5)
    usage.count("salesforce", "api-usage=49/100")
    usage.check()
    usage.count("salesforce", "api-usage=50/100; api-bursts=3/750")
    with pytest.raises(QuotaExhaustedError, match="50/100"):
        usage.check()
    assert usage.calls["salesforce"] == 2


def test_governor_watches_the_per_app_limit() -> None:
    usage = ApiUsage(max_share=0.8)
    usage.count("salesforce", "api-usage=10/1000; per-app-api-usage=90/100(appName=regsync)")
    with pytest.raises(QuotaExhaustedError, match="per-app"):
        usage.check()


def test_calls_in_flight_count_as_made() -> None:
    """Slices read at once: each call is checked with the others still in flight counted as used."""
    usage = ApiUsage(max_share=0.5)
    usage.count("salesforce", "api-usage=48/100")
    first, second, third = usage.in_flight(), usage.in_flight(), usage.in_flight()
    first.__enter__()  # 48 used
    second.__enter__()  # 48 used + 1 in flight: 49 %
    with pytest.raises(QuotaExhaustedError, match="50/100"):
        third.__enter__()  # 48 + 2 in flight: the share is reached before a third goes out
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    usage.check()  # answered (or failed) calls leave the count: 48 % again
