"""Make vcrpy's replay safe for regsync's threads: keep httpx patched while vcrpy rebuilds a connection.

vcrpy's http.client stub (simple-salesforce's `requests` path) builds each real connection inside
`vcr.patch.force_reset()`, which puts back *every* library's real classes for a moment — httpx's
transport included, and globally, not for the calling thread. A Checkfront read on another thread
in that moment bypasses the cassette and goes to the network (on replay: a DNS error, a retry and
one API call more than recorded). Building a urllib3 connection needs only http.client and urllib3
reset, so the httpx patchers are left out of the reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import vcr.patch

_MARK = "_regsync_keeps_httpx"


def keep_httpx_patched_during_force_reset() -> None:
    """Drop httpx's classes from what `force_reset()` un-patches (idempotent)."""
    original = vcr.patch.reset_patchers
    if getattr(original, _MARK, False):
        return

    def reset_patchers() -> Iterator[Any]:
        for patcher in original():
            if _patches_httpx(patcher):
                continue
            yield patcher

    setattr(reset_patchers, _MARK, True)
    vcr.patch.reset_patchers = reset_patchers


def _patches_httpx(patcher: Any) -> bool:
    target = patcher.getter()
    module = target.__name__ if isinstance(target, type(vcr)) else getattr(target, "__module__", "")
    return module == "httpx" or module.startswith(("httpx.", "httpx_", "httpx2"))
