"""Settings: one TOML file for what an org looks like, the environment for secrets.

Every org names its Blackthorn fields a little differently and hosts Checkfront on its own
sub-domain, so object and field API names and hosts are configuration, not constants.
Secrets are read only from ``REGSYNC_*`` environment variables (or an env file the operator
points at); a secret written into the TOML file is refused so it never lands in a repository.

The section models live in regsync.settings (at the bottom of the import graph, so that a stage
can import its section without loading the others); this module assembles and loads them, and
re-exports them under their old names.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from regsync.errors import ConfigError
from regsync.settings.actions import ActionSettings as ActionSettings
from regsync.settings.checkfront import CheckfrontSettings as CheckfrontSettings
from regsync.settings.common import check_ca_file as check_ca_file
from regsync.settings.common import why_unreadable
from regsync.settings.jobs import JobSettings as JobSettings
from regsync.settings.metrics import MetricsSettings as MetricsSettings
from regsync.settings.reconcile import ReconcileSettings as ReconcileSettings
from regsync.settings.rules import SHARED_RULES as SHARED_RULES
from regsync.settings.rules import RuleSettings as RuleSettings
from regsync.settings.salesforce import RegistrationFields as RegistrationFields
from regsync.settings.salesforce import SalesforceObjects as SalesforceObjects
from regsync.settings.salesforce import SalesforceSettings as SalesforceSettings
from regsync.settings.salesforce import SessionFields as SessionFields
from regsync.settings.sync import QuotaSettings as QuotaSettings
from regsync.settings.sync import RetrySettings as RetrySettings
from regsync.settings.sync import SyncSettings as SyncSettings
from regsync.settings.warehouse import WarehouseSettings as WarehouseSettings

ENV_PREFIX = "REGSYNC_"
CONFIG_ENV_VAR = "REGSYNC_CONFIG"
ENV_FILE_VAR = "REGSYNC_ENV_FILE"

# (section, key) pairs that may only come from the environment.
SECRET_KEYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("salesforce", "password"),
        ("salesforce", "security_token"),
        ("salesforce", "consumer_secret"),
        ("salesforce", "private_key_file"),
        ("salesforce", "session_id"),
        ("checkfront", "api_key"),
        ("checkfront", "api_secret"),
        ("checkfront", "token"),
    }
)


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("regsync_environ", default=None)


class _ChosenEnvSource(EnvSettingsSource):
    """Reads the REGSYNC_* variables load_settings chose (real env over env file)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        chosen = _ENVIRON.get()
        if chosen is None:
            return super()._load_env_vars()
        return {key.lower(): value for key, value in chosen.items()}


class Settings(BaseSettings):
    """All of regsync's settings, validated."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    salesforce: SalesforceSettings = SalesforceSettings()
    checkfront: CheckfrontSettings = CheckfrontSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    sync: SyncSettings = SyncSettings()
    quota: QuotaSettings = QuotaSettings()
    retry: RetrySettings = RetrySettings()
    rules: RuleSettings = RuleSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    actions: ActionSettings = ActionSettings()
    jobs: JobSettings = JobSettings.model_validate({})  # every key from the packaged defaults
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the TOML file (passed as init kwargs).
        return (_ChosenEnvSource(settings_cls), init_settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"config file {path} {why_unreadable(exc, 'a TOML file')}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"config file {path} is not a text file (not UTF-8): is it the right file?"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _refuse_secrets(data: Mapping[str, Any], path: Path) -> None:
    for section, key in sorted(SECRET_KEYS):
        block = data.get(section)
        if isinstance(block, Mapping) and key in block:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(
                f"{section}.{key} is a secret and may not be written in {path}; "
                f"remove it and set the environment variable {env} instead"
            )
    warehouse = data.get("warehouse")
    url = warehouse.get("url") if isinstance(warehouse, Mapping) else None
    if isinstance(url, str) and _url_password(url):
        raise ConfigError(
            f"warehouse.url in {path} carries a password, a secret that may not be written there; "
            f"remove it and set the whole URL in {ENV_PREFIX}WAREHOUSE__URL, or the password in "
            "PGPASSWORD or ~/.pgpass"
        )


def _url_password(url: str) -> str | None:
    """The password in a database URL, if it has one."""
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def mask_url(url: str) -> str:
    """A database URL with its password (if any) shown as ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url
    if not parsed.password:
        return url
    return parsed.render_as_string(hide_password=True)


def _resolve_relative(data: dict[str, Any], folder: Path) -> None:
    """Relative file paths written in the TOML mean: beside the config file, whatever the working
    directory (cron's is $HOME or /): the SQLite warehouse and the CA files."""
    warehouse = data.get("warehouse")
    if not isinstance(warehouse, dict):
        warehouse = {}
    url = warehouse.get("url")
    if isinstance(url, str) and url.startswith("sqlite:"):
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            parsed = None  # validation names it
        database = parsed.database if parsed is not None else None
        if parsed is not None and database and database != ":memory:" and not Path(database).is_absolute():
            resolved = parsed.set(database=str((folder / database).resolve()))
            warehouse["url"] = resolved.render_as_string(hide_password=False)
    for section in ("salesforce", "checkfront"):
        block = data.get(section)
        if not isinstance(block, dict):
            continue
        ca = block.get("ca_file")
        if isinstance(ca, str) and ca and not Path(ca).expanduser().is_absolute():
            block["ca_file"] = str((folder / ca).resolve())


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE env file (the form `regsync sandbox --write-config` writes)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"env file {path} {why_unreadable(exc, 'a KEY=VALUE file')}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"env file {path} is not a text file (not UTF-8)") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check its spelling and section)"
        lines.append(f"{key}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    config_path: Path | None = None,
    *,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load the TOML file (if any), overlay REGSYNC_* environment variables, validate.

    ``config_path`` defaults to $REGSYNC_CONFIG; ``env_file`` to $REGSYNC_ENV_FILE, else to the
    config file's name with suffix ``.env`` when that exists. Values in the real environment win
    over the env file. Raises ConfigError with one readable message.
    """
    env = dict(os.environ if environ is None else environ)
    if config_path is None and env.get(CONFIG_ENV_VAR):
        config_path = Path(env[CONFIG_ENV_VAR])
    if env_file is None and env.get(ENV_FILE_VAR):
        env_file = Path(env[ENV_FILE_VAR])
    if (
        env_file is None
        and config_path is not None
        and config_path.name
        and config_path.with_suffix(".env").is_file()
    ):
        env_file = config_path.with_suffix(".env")  # what `regsync sandbox --write-config` writes
    data: dict[str, Any] = {}
    if config_path is not None:
        data = _read_toml(config_path)
        _refuse_secrets(data, config_path)
        _resolve_relative(data, config_path.resolve().parent)
    if env_file is not None:
        env = {**read_env_file(env_file), **env}
    ours = {
        k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and k not in (CONFIG_ENV_VAR, ENV_FILE_VAR)
    }
    try:
        return _settings_from(data, ours)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def _settings_from(data: dict[str, Any], env: dict[str, str]) -> Settings:
    token = _ENVIRON.set(env)
    try:
        return harmonise_rules(Settings(**data))
    finally:
        _ENVIRON.reset(token)


def harmonise_rules(settings: Settings) -> Settings:
    """One value for each threshold [actions] and [reconcile] share (SHARED_RULES).

    A threshold is set in [rules]; a value set in [actions] or [reconcile] (older configs) counts
    for both, as long as no other section sets it differently: a planner and a reconciliation that
    disagree on, say, when a booking is confirmed would submit what the report calls unpaid.
    """
    sections = {"rules": settings.rules, "actions": settings.actions, "reconcile": settings.reconcile}
    effective: dict[str, Any] = {}
    for key in SHARED_RULES:
        given = {
            name: getattr(section, key)
            for name, section in sections.items()
            if key in section.model_fields_set
        }
        if len(set(given.values())) > 1:
            where = ", ".join(f"{name}.{key} = {value!r}" for name, value in given.items())
            raise ConfigError(
                f"{where}: the write-back planner and the reconciliation must use one value "
                f"(docs/rules.md); set {key} once, in [rules]"
            )
        effective[key] = next(iter(given.values()), getattr(settings.rules, key))
    return settings.model_copy(
        update={
            "rules": settings.rules.model_copy(update=effective),
            "actions": settings.actions.model_copy(update=effective),
            "reconcile": settings.reconcile.model_copy(update=effective),
        }
    )


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, every secret shown as '********' or unset."""
    data = settings.model_dump(mode="json")  # SecretStr dumps as '**********'
    data["warehouse"]["url"] = mask_url(settings.warehouse.url)  # a password from the environment
    return data


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret in clear, for scrubbers that must keep them out of output."""
    found: list[str] = []
    for section, key in SECRET_KEYS:
        value = getattr(getattr(settings, section), key)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append(value.get_secret_value())
    password = _url_password(settings.warehouse.url)
    if password:
        found.append(password)
    return found


def write_private_file(path: Path, text: str) -> None:
    """Write a file readable by its owner only (config, env files, databases hold secrets or PII),
    whole or not at all (see open_private_file)."""
    with open_private_file(path) as handle:
        handle.write(text)


@contextmanager
def open_private_file(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file opened for writing, readable by its owner only, for writing in parts.

    Written to a temporary file beside `path` and renamed over it only once complete and on disk:
    a failure on the way (a full disk, a crash) leaves the previous file as it stood, never a
    truncated one. An OSError names `path`, whatever the failing call knew.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a directory it creates too
        # mkstemp: O_EXCL, mode 0600 from the first byte, a name no one else holds.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
