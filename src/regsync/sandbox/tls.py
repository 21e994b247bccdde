"""A throwaway certificate authority for the sandbox, so clients keep TLS verification on.

The real services are https-only and simple-salesforce builds only https URLs; rather than
turning verification off, the sandbox mints its own CA and clients trust that CA explicitly.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class SandboxTls:
    """The server's SSL context and the CA file clients must trust."""

    context: ssl.SSLContext
    ca_path: Path


def make_tls(directory: Path) -> SandboxTls:
    """Create a CA and a server certificate for 127.0.0.1/localhost; write the CA to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="regsync sandbox")
    server_cert = authority.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca_path = directory / "sandbox-ca.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    return SandboxTls(context=context, ca_path=ca_path)
