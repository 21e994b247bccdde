"""The sandbox: local emulators of the Salesforce REST API and the Checkfront API 3.0 over HTTPS."""

from regsync.sandbox.server import DEMO, DemoCredentials, Sandbox

__all__ = ["DEMO", "DemoCredentials", "Sandbox"]
