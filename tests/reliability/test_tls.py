"""TLS verification is always on: no setting turns it off, a CA file only replaces the trust store."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from regsync.clients.checkfront import _ssl_context
from regsync.clients.salesforce import make_http_session
from regsync.config import CheckfrontSettings, SalesforceSettings
from regsync.sandbox.tls import make_tls


def test_checkfront_context_verifies_without_and_with_a_ca_file(tmp_path: Path) -> None:
    ca = make_tls(tmp_path).ca_path
    for settings in (CheckfrontSettings(), CheckfrontSettings(ca_file=ca)):
        context = _ssl_context(settings)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True


def test_salesforce_session_verifies(tmp_path: Path) -> None:
    ca = make_tls(tmp_path).ca_path
    assert make_http_session(None, 5).verify is True
    pinned = make_http_session(ca, 5)
    assert pinned.verify == str(ca)  # a path: verification with that CA, never False
    assert pinned.trust_env is False  # REQUESTS_CA_BUNDLE cannot swap it behind our back


@pytest.mark.parametrize("field", ["verify", "insecure", "verify_ssl", "tls_verify"])
def test_there_is_no_setting_to_turn_verification_off(field: str) -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        CheckfrontSettings(**{field: False})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        SalesforceSettings(**{field: False})


@pytest.mark.parametrize("url", ["http://acme.checkfront.com", "ftp://x"])
def test_plain_http_hosts_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        CheckfrontSettings(base_url=url)
    with pytest.raises(ValueError, match="https"):
        SalesforceSettings(login_url=url)
