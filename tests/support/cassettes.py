"""Recorded HTTP (vcrpy cassettes) for regsync's tests: scrub secrets on the way in, match by content.

Reusable by every suite that records the Salesforce or Checkfront APIs (the pull, write-backs):

    scrubber = Scrubber(secrets=[...], origins=[sandbox.base_url])
    config = vcr_config(scrubber)          # pytest-recording's `vcr_config` fixture returns this
    register(vcr)                           # in the `pytest_recording_configure` hook

Scrubbing (what never reaches a cassette): Authorization / Cookie headers, secret form and JSON
fields of requests (password, client_secret, assertion, ...), access/refresh tokens and the
signature of token answers (each real token becomes ``REDACTED-<n>``, consistently in the answer
and in every later ``Authorization: Bearer`` header, so a re-authentication stays visible),
Set-Cookie values, every literal secret handed in, and the host:port the sandbox listened on
(replaced by FAKE_BASE_URL). ``Sforce-*`` headers are kept: the quota governor reads
Sforce-Limit-Info on replay.

Matching (see docs/cassettes.md): method + path + query string, with ISO datetime literals and
epoch-second values normalised (queries are built from the clock), host and port ignored.
Interactions that normalise equal are replayed in recorded order, each once; requests that differ
(a Checkfront ``session_id``, a booking code) match by content whatever order threads send them in.
Write-backs also match bodies (``vcr_config(scrubber, match_bodies=True)``): their POSTs share a path.

Reading back: ``recorded(cassette)`` (every interaction, bodies included) and, around one run of
several, ``start = mark(cassette)`` ... ``since(cassette, start)`` (what that run asked for).

This module imports neither vcrpy nor pytest: it only duck-types their objects.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from regsync.config import Settings, load_settings

FAKE_BASE_URL = "https://sandbox.regsync.invalid"  # .invalid never resolves (RFC 2606)
REDACTED = "REDACTED"
MATCHER_NAME = "regsync_request"
BODY_MATCHER_NAME = "regsync_body"  # opt-in (vcr_config(match_bodies=True)): write-backs
MIN_SECRET_LEN = 6  # shorter "secrets" would redact ordinary text

# -- what scrubbing removes -------------------------------------------------------------------------

AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "x-sfdc-session"})
DROP_REQUEST_HEADERS = frozenset(
    {"cookie", "user-agent", "accept-encoding", "connection", "host", "content-length"}
)
DROP_RESPONSE_HEADERS = frozenset({"date", "server", "connection", "keep-alive"})
SECRET_FIELDS = frozenset(
    {
        "password",
        "client_secret",
        "client_id",
        "username",
        "assertion",
        "client_assertion",
        "refresh_token",
        "api_key",
        "api_secret",
        "token",
    }
)
TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})
OPAQUE_FIELDS = frozenset({"signature"})
_PLACEHOLDER = re.compile(r"REDACTED(?:-\d+)?")


class Scrubber:
    """vcrpy's before_record_request / before_record_response hooks for one cassette.

    One instance per cassette: it numbers the tokens it has seen (``REDACTED-1``, ``REDACTED-2``...).
    The hooks also run on requests being matched on replay; they are idempotent.
    """

    def __init__(
        self,
        *,
        base_url: str = FAKE_BASE_URL,
        secrets: Iterable[str] = (),
        origins: Iterable[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secrets: list[str] = []
        self._origins: list[str] = []
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.add_secrets(secrets)
        for origin in origins:
            self.add_origin(origin)

    # -- configuration ------------------------------------------------------------------------
    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Literal values to replace by REDACTED wherever they appear (uri, headers, bodies).

        Their URL-encoded forms too (a password in a form body or a query string).
        """
        with self._lock:
            found = set(self._secrets) | set(secret_variants(secrets))
            # Longest first: a secret that contains another is replaced whole.
            self._secrets = sorted(found, key=len, reverse=True)

    def add_origin(self, origin: str) -> None:
        """A scheme://host:port whose occurrences in bodies and headers become `base_url`."""
        origin = origin.rstrip("/")
        with self._lock:
            if origin and origin != self.base_url and origin not in self._origins:
                self._origins.append(origin)

    def token_placeholder(self, token: str) -> str:
        """The stable stand-in of one real token (placeholders map to themselves)."""
        if _PLACEHOLDER.fullmatch(token):
            return token
        with self._lock:
            if token not in self._tokens:
                self._tokens[token] = f"{REDACTED}-{len(self._tokens) + 1}"
            return self._tokens[token]

    def __deepcopy__(self, memo: dict[int, Any]) -> Scrubber:
        # pytest-recording deep-copies the vcr config (and so the bound hooks): the copy must be this
        # very scrubber, or origins added after set-up and the token numbering would be lost.
        return self

    def vcr_hooks(self) -> dict[str, Any]:
        return {"before_record_request": self.request, "before_record_response": self.response}

    # -- the hooks ----------------------------------------------------------------------------
    def request(self, request: Any) -> Any:
        """Scrub a vcr Request (vcrpy hands the hook a deep copy)."""
        request.uri = self._scrub_uri(request.uri)
        content_type = ""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            lower = name.lower()
            if lower == "content-type":
                content_type = str(value)
            if lower in DROP_REQUEST_HEADERS:
                continue
            headers[name] = self._auth_value(str(value)) if lower in AUTH_HEADERS else self.text(str(value))
        request.headers = headers
        body = request.body
        if body:
            raw = body if isinstance(body, bytes) else str(body).encode()
            request.body = self._scrub_request_body(raw, content_type)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """Scrub a vcr response dict: {"status", "headers": {name: [values]}, "body": {"string"}}."""
        body = response.get("body") or {}
        raw = body.get("string")
        changed_body = False
        if raw:
            data = raw if isinstance(raw, bytes) else str(raw).encode()
            scrubbed = self._scrub_response_body(data)
            if scrubbed != data:
                body["string"] = scrubbed if isinstance(raw, bytes) else scrubbed.decode("utf-8", "replace")
                changed_body = True
        headers: dict[str, list[str]] = {}
        for name, values in (response.get("headers") or {}).items():
            lower = name.lower()
            if lower in DROP_RESPONSE_HEADERS:
                continue
            if lower == "content-length" and changed_body:
                values = [str(len(_as_bytes(body["string"])))]
            elif lower == "set-cookie":
                values = [_redact_cookie(v) for v in values]
            elif lower in AUTH_HEADERS:
                values = [self._auth_value(v) for v in values]
            else:
                values = [self.text(v) for v in values]
            headers[name] = list(values)
        response["headers"] = headers
        return response

    # -- pieces -------------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Literal secrets and recorded origins replaced in a piece of text."""
        for origin in self._origins:
            value = value.replace(origin, self.base_url)
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return value

    def _bytes(self, value: bytes) -> bytes:
        for origin in self._origins:
            value = value.replace(origin.encode(), self.base_url.encode())
        for secret in self._secrets:
            value = value.replace(secret.encode(), REDACTED.encode())
        return value

    def _scrub_uri(self, uri: str) -> str:
        parts = urlsplit(self.text(uri))
        base = urlsplit(self.base_url)
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in SECRET_FIELDS or k.lower() in TOKEN_FIELDS for k, _ in pairs):
                query = urlencode([(k, _scrub_field(k, v, self, form=True)) for k, v in pairs])
        return urlunsplit((base.scheme, base.netloc, parts.path, query, parts.fragment))

    def _auth_value(self, value: str) -> str:
        scheme, _, credential = value.strip().partition(" ")
        if not credential:
            return self.token_placeholder(scheme) if scheme else value
        if scheme.lower() in ("bearer", "oauth"):
            return f"{scheme} {self.token_placeholder(credential.strip())}"
        return f"{scheme} {REDACTED}"

    def _scrub_request_body(self, raw: bytes, content_type: str) -> bytes:
        if "x-www-form-urlencoded" in content_type.lower():
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return self._bytes(raw)
            raw = urlencode([(k, _scrub_field(k, v, self, form=True)) for k, v in pairs]).encode()
        elif "json" in content_type.lower():
            raw = self._scrub_json(raw, request=True)
        return self._bytes(raw)

    def _scrub_response_body(self, raw: bytes) -> bytes:
        stripped = raw.lstrip()
        if stripped[:1] in (b"{", b"["):
            raw = self._scrub_json(raw, request=False)
        return self._bytes(raw)

    def _scrub_json(self, raw: bytes, *, request: bool) -> bytes:
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return raw
        scrubbed, changed = _scrub_tree(payload, self, request=request)
        if not changed:
            return raw
        return json.dumps(scrubbed, separators=(",", ":"), ensure_ascii=False).encode()


def _scrub_field(key: str, value: str, scrubber: Scrubber, *, form: bool = False) -> str:
    """A secret field's value removed: `REDACTED` in JSON, empty in a form body or query string.

    In a form the field keeps its name with an empty value (vcrpy's filter_post_data convention):
    a placeholder would be percent-encoded into something a scanner reads as a credential.
    """
    lower = key.lower()
    if lower in TOKEN_FIELDS:
        return scrubber.token_placeholder(value) if value else value
    if lower in SECRET_FIELDS or lower in OPAQUE_FIELDS:
        return ("" if form else REDACTED) if value else value
    return value


def _scrub_tree(node: Any, scrubber: Scrubber, *, request: bool) -> tuple[Any, bool]:
    """Secret fields of a JSON document replaced (requests: every secret field; answers: tokens).

    A token answer (an object with access_token) also loses its signature, and its instance_url
    moves to the fake host. Answers keep fields such as `code` or `username`: they are data there.
    """
    if isinstance(node, list):
        out, changed = [], False
        for item in node:
            scrubbed, hit = _scrub_tree(item, scrubber, request=request)
            out.append(scrubbed)
            changed |= hit
        return out, changed
    if not isinstance(node, dict):
        return node, False
    result: dict[str, Any] = {}
    changed = False
    token_answer = not request and "access_token" in node
    secret_keys = (
        TOKEN_FIELDS
        | (SECRET_FIELDS if request else frozenset())
        | (OPAQUE_FIELDS if token_answer else frozenset())
    )
    for key, value in node.items():
        lower = str(key).lower()
        if isinstance(value, str) and lower in secret_keys:
            new: Any = _scrub_field(lower, value, scrubber)
        elif token_answer and lower == "instance_url" and isinstance(value, str):
            new = scrubber.base_url
        else:
            new, hit = _scrub_tree(value, scrubber, request=request)
            changed |= hit
            result[key] = new
            continue
        changed |= new != value
        result[key] = new
    return result, changed


def _redact_cookie(value: str) -> str:
    """`name=value; attrs` -> `name=REDACTED; attrs` (a session cookie is a credential)."""
    pair, sep, attributes = value.partition(";")
    name, eq, _ = pair.partition("=")
    return f"{name.strip()}={REDACTED}{sep}{attributes}" if eq else value


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# -- matching ---------------------------------------------------------------------------------------

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_EPOCH = re.compile(r"(?<![\w.])\d{10}(?:\.\d+)?(?![\w.])")  # unix seconds, 2001..2286


def normalise(value: str) -> str:
    """A query value with the clock taken out: ISO datetimes and epoch seconds become placeholders."""
    return _EPOCH.sub("<epoch>", _DATETIME.sub("<datetime>", value))


RequestKey = tuple[str, str, tuple[tuple[str, str], ...]]


@functools.lru_cache(maxsize=8192)
def request_key(method: str, uri: str) -> RequestKey:
    """What replay matches on: (METHOD, path, sorted query pairs with times normalised)."""
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return method.upper(), parts.path or "/", tuple(sorted((k, normalise(v)) for k, v in pairs))


def match_request(r1: Any, r2: Any) -> None:
    """vcrpy matcher: raises AssertionError (with the difference) when two requests do not match."""
    k1, k2 = request_key(r1.method, r1.uri), request_key(r2.method, r2.uri)
    if k1 != k2:
        raise AssertionError(f"{_describe(k1)} != {_describe(k2)}")


def _describe(key: RequestKey) -> str:
    method, path, query = key
    return f"{method} {path}" + (f"?{urlencode(query)}"[:300] if query else "")


def body_key(request: Any) -> tuple[str, Any]:
    """What the body matcher compares: a JSON body as parsed, a form body as sorted pairs, else the bytes.

    Requests are compared as the scrubber left them, so secret fields read REDACTED on both sides.
    """
    raw = _body_bytes(getattr(request, "body", None))
    if not raw:
        return ("empty", None)
    content_type = ""
    for name, value in (getattr(request, "headers", None) or {}).items():
        if str(name).lower() == "content-type":
            content_type = str(value).lower()
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return ("json", json.dumps(json.loads(text), sort_keys=True))
        except ValueError:
            pass
    elif "x-www-form-urlencoded" in content_type:
        return ("form", tuple(sorted(parse_qsl(text, keep_blank_values=True))))
    return ("raw", text)


def match_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher for write-backs: the same JSON document or the same form fields, whatever their order."""
    k1, k2 = body_key(r1), body_key(r2)
    if k1 != k2:
        raise AssertionError(f"body {str(k1[1])[:300]} != {str(k2[1])[:300]}")


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if hasattr(body, "getvalue"):  # vcrpy hands file bodies back as BytesIO
        return bytes(body.getvalue())
    return _as_bytes(body)


def register(vcr: Any) -> None:
    """Register the matchers on a vcr.VCR (call from the `pytest_recording_configure` hook)."""
    vcr.register_matcher(MATCHER_NAME, match_request)
    vcr.register_matcher(BODY_MATCHER_NAME, match_body)


def vcr_config(scrubber: Scrubber, *, match_bodies: bool = False) -> dict[str, Any]:
    """Keyword arguments for `use_cassette` (pytest-recording's `vcr_config` fixture).

    `match_bodies`: requests must also send the same body (`match_body`) — for write-backs, whose
    Apex POSTs and Checkfront session ends differ only by their bodies.
    """
    return {
        "match_on": [MATCHER_NAME, BODY_MATCHER_NAME] if match_bodies else [MATCHER_NAME],
        "allow_playback_repeats": False,  # identical requests replay their recordings in order, once each
        "decode_compressed_response": True,  # readable bodies, scrubbable
        "record_on_exception": False,  # a failed recording leaves no half cassette behind
        **scrubber.vcr_hooks(),
    }


# -- replay-side settings ---------------------------------------------------------------------------

REPLAY_SECRETS: dict[str, str] = {
    "REGSYNC_SALESFORCE__PASSWORD": "replay-password",
    "REGSYNC_SALESFORCE__CONSUMER_SECRET": "replay-consumer-secret",
    "REGSYNC_CHECKFRONT__API_KEY": "replay-api-key",
    "REGSYNC_CHECKFRONT__API_SECRET": "replay-api-secret",
}


def replay_settings(
    warehouse_url: str,
    base_url: str = FAKE_BASE_URL,
    **overrides: Mapping[str, Any],
) -> Settings:
    """Settings for replay: both services at `base_url`, system CA (verification on), dummy secrets.

    `overrides` are sections as for `Sandbox.settings` (e.g. ``sync={"window_days": 30}``); only
    scalar values. The real environment is not read.
    """
    env = {
        "REGSYNC_SALESFORCE__AUTH": "password",
        "REGSYNC_SALESFORCE__LOGIN_URL": base_url,
        "REGSYNC_SALESFORCE__USERNAME": "replay@regsync.invalid",
        "REGSYNC_SALESFORCE__CONSUMER_KEY": "replay-consumer-key",
        "REGSYNC_CHECKFRONT__BASE_URL": base_url,
        "REGSYNC_CHECKFRONT__AUTH": "token",
        "REGSYNC_WAREHOUSE__URL": warehouse_url,
        **REPLAY_SECRETS,
    }
    for section, block in overrides.items():
        for key, value in block.items():
            if isinstance(value, Mapping | list | tuple):
                raise ValueError(f"replay_settings: {section}.{key} must be a scalar")
            env[f"REGSYNC_{section.upper()}__{key.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return load_settings(environ=env)


# -- what tests read back from a cassette -----------------------------------------------------------


AUTH_PATHS = ("/services/oauth2/", "/services/Soap/")  # logins: POSTs that change nothing remote
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Recorded:
    """One interaction of a cassette, flattened for assertions."""

    method: str
    uri: str
    path: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    request_body: str = ""
    response_body: str = ""

    @property
    def service(self) -> str:
        return "checkfront" if self.path.startswith("/api/") else "salesforce"

    @property
    def is_write(self) -> bool:
        """A request that may change remote state: not a read, not a login."""
        return self.method.upper() not in READ_METHODS and not self.path.startswith(AUTH_PATHS)

    @property
    def query(self) -> dict[str, str]:
        """The query string (last value of each name), decoded."""
        return dict(parse_qsl(urlsplit(self.uri).query, keep_blank_values=True))

    def form(self) -> dict[str, str]:
        """The request body as form fields (last value of each name)."""
        return dict(parse_qsl(self.request_body, keep_blank_values=True))

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.request_body)

    def response_json(self) -> Any:
        return json.loads(self.response_body)


def _recorded(request: Any, response: Mapping[str, Any]) -> Recorded:
    body = (response.get("body") or {}).get("string")
    return Recorded(
        method=request.method,
        uri=request.uri,
        path=urlsplit(request.uri).path,
        status=int(response["status"]["code"]),
        request_headers={k.lower(): str(v) for k, v in request.headers.items()},
        response_headers={k.lower(): ", ".join(v) for k, v in response.get("headers", {}).items()},
        request_body=_body_bytes(request.body).decode("utf-8", "replace"),
        response_body=_body_bytes(body).decode("utf-8", "replace"),
    )


def recorded(cassette: Any) -> list[Recorded]:
    """The interactions of a loaded or just-recorded vcr Cassette, in recorded order."""
    return [_recorded(request, response) for request, response in cassette.data]


@dataclass(frozen=True)
class Mark:
    """A point in a cassette's life: how many interactions it held and which were played."""

    length: int
    played: Mapping[int, int]


def mark(cassette: Any) -> Mark:
    """Remember where a cassette stands (before one of several runs a test makes)."""
    return Mark(len(cassette.data), dict(cassette.play_counts))


def since(cassette: Any, start: Mark) -> list[Recorded]:
    """The interactions a test's code asked for after `start`, in recorded order.

    Recording: those appended since. Replay: those played since (each interaction plays once).
    """
    if len(cassette.data) > start.length:
        indexes: Iterable[int] = range(start.length, len(cassette.data))
    else:
        counts = cassette.play_counts
        indexes = [i for i in range(len(cassette.data)) if counts[i] > start.played.get(i, 0)]
    return [_recorded(*cassette.data[i]) for i in indexes]


def assert_fully_played(cassette: Any) -> None:
    """On replay: every recorded interaction was asked for exactly once (none missing, none left)."""
    unplayed = [i for i in range(len(cassette.data)) if cassette.play_counts[i] == 0]
    if unplayed:
        first = cassette.data[unplayed[0]][0]
        raise AssertionError(
            f"{len(unplayed)} of {len(cassette.data)} recorded interaction(s) were not replayed; "
            f"first: {first.method} {first.uri[:200]}"
        )


# -- expectations saved beside a cassette -----------------------------------------------------------


def expected_path(cassette_dir: Path, name: str) -> Path:
    return cassette_dir / f"{name}.expected.json"


def load_expected(path: Path) -> dict[str, Any]:
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


def save_expected(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# -- golden snapshots: their own files, written by a recording, compared by a replay ----------------
# A golden value (row counts, API call counts, waits) has no oracle but the run that produced it:
# comparing it while recording would compare a value with itself. So a recording only writes it, to
# a file of its own that a review reads in the diff, and only a replay compares.

SNAPSHOT_DIR = "snapshots"


def snapshot_path(cassette_dir: Path, name: str) -> Path:
    """Where a scenario's golden snapshots live: `<cassette dir>/snapshots/<name>.json`."""
    return cassette_dir / SNAPSHOT_DIR / f"{name}.json"


def load_snapshots(path: Path) -> dict[str, Any]:
    """A scenario's snapshots ({} when it records none: no file)."""
    return load_expected(path) if path.exists() else {}


def save_snapshots(path: Path, snapshots: Mapping[str, Any]) -> None:
    """Write the snapshots a recording produced (none: remove the file)."""
    if snapshots:
        save_expected(path, snapshots)
    else:
        path.unlink(missing_ok=True)


# -- leak scanning ----------------------------------------------------------------------------------

LEAK_PATTERNS: dict[str, re.Pattern[str]] = {
    "bearer token": re.compile(r"Bearer\s+(?!REDACTED)[A-Za-z0-9!._~+/=\-]{20,}"),
    "access_token value": re.compile(r"[\"']?access_token[\"']?\s*[:=]\s*[\"']?(?!REDACTED)[^\s\"',&]{12,}"),
    "salesforce session id": re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]{20,}"),
    "signature value": re.compile(r"[\"']?signature[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/]{20,}"),
}


def secret_variants(secrets: Iterable[str]) -> list[str]:
    """Each secret (at least MIN_SECRET_LEN long) and its URL-encoded form.

    Basic auth carries `key:secret` base64-encoded: pass `basic_auth_value(key, secret)` as a secret
    too (find_leaks also flags any Basic credential it can decode).
    """
    values = [s for s in secrets if s and len(s) >= MIN_SECRET_LEN]
    out = set(values)
    for value in values:
        out.add(urlencode({"x": value})[2:])
    return sorted(out)


def basic_auth_value(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


_BASIC = re.compile(r"Basic\s+([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])")


def _is_basic_credential(candidate: str) -> bool:
    """True when `candidate` is base64 of `user:password` (not a word such as 'Basic Admission')."""
    try:
        decoded = base64.b64decode(candidate, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in decoded and decoded.isprintable()


def find_leaks(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """Descriptions of every secret or secret-shaped value in `text` (empty: clean)."""
    leaks = [f"literal secret {s[:4]}…" for s in secret_variants(secrets) if s in text]
    for name, pattern in LEAK_PATTERNS.items():
        leaks += [f"{name}: {m.group(0)[:40]}…" for m in pattern.finditer(text)]
    leaks += [
        f"basic credentials: {m.group(0)[:16]}…"
        for m in _BASIC.finditer(text)
        if _is_basic_credential(m.group(1))
    ]
    return leaks
