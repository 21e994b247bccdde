"""vcrpy's replay stays on the cassette when another thread connects through `requests`."""

from __future__ import annotations

from pathlib import Path

import httpx
import vcr
import vcr.patch

from tests.support.vcr_threads import keep_httpx_patched_during_force_reset


def test_force_reset_leaves_httpx_on_the_cassette(tmp_path: Path) -> None:
    keep_httpx_patched_during_force_reset()
    keep_httpx_patched_during_force_reset()  # idempotent: one wrapper, not two
    real = httpx.HTTPTransport.handle_request
    recorder = vcr.VCR(cassette_library_dir=str(tmp_path), record_mode="none")
    with recorder.use_cassette("empty.yaml"):
        patched = httpx.HTTPTransport.handle_request
        assert patched is not real
        with vcr.patch.force_reset():  # what vcrpy does while it builds a urllib3 connection
            assert httpx.HTTPTransport.handle_request is patched
            import http.client

            assert "vcr" not in http.client.HTTPConnection.__module__  # the reset itself still works
    assert httpx.HTTPTransport.handle_request is real
