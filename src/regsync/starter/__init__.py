"""A first run for a pip user: the documented example config and the job examples, shipped in the wheel.

The files in this package are the repository's own (config/regsync.example.toml, jobs/*), linked
here so there is one copy to edit; the wheel carries their content. `regsync config init PATH`
writes them out, and `regsync config check` refuses a config that could not possibly log in
(`incomplete`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from regsync.config import ENV_PREFIX, write_private_file

if TYPE_CHECKING:
    from regsync.config import Settings

CONFIG = "regsync.example.toml"
JOB_FILES = ("crontab.example", "regsync.service", "regsync.timer")
SCHEDULE = ("regsync.settings", "default_schedule.toml")  # shipped beside the [jobs] settings model


def starter_text(name: str) -> str:
    """One shipped starter file's text (importlib.resources: works from a wheel or a zip)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def schedule_text() -> str:
    package, name = SCHEDULE
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Written:
    """What `config init` wrote."""

    config: Path
    jobs: tuple[Path, ...]


class ExistsError(FileExistsError):
    """`config init` never overwrites a file unless told to (--force)."""


def init_config(path: Path, *, jobs: bool = True, force: bool = False) -> Written:
    """Write the example config at `path` and, with jobs, the cron/systemd examples and the daemon's
    schedule in a `jobs/` folder beside it. Nothing is overwritten unless `force`; all or nothing."""
    folder = path.parent / "jobs"
    targets = {path: starter_text(CONFIG)}
    if jobs:
        targets |= {folder / name: starter_text(name) for name in JOB_FILES}
        targets[folder / "schedule.toml"] = schedule_text()
    existing = [str(target) for target in targets if target.exists()]
    if existing and not force:
        raise ExistsError(f"will not overwrite {', '.join(existing)} (pass --force to replace)")
    for target, text in targets.items():
        write_private_file(target, text)
    return Written(path, tuple(t for t in targets if t != path))


# Which secrets each way of logging in needs (env var names as the example config documents them).
SALESFORCE_SECRETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "password": (("password",), ("consumer_secret",)),
    "client_credentials": (("consumer_secret",),),
    "jwt": (("private_key_file",),),
    "session": (("session_id",),),
}
CHECKFRONT_SECRETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "token": (("api_key",), ("api_secret",)),
    "bearer": (("token",),),
}
PLACEHOLDERS = {
    ("checkfront", "base_url"): "https://your-company.checkfront.com",
    ("salesforce", "username"): "integration@example.org",
}


def _env(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


def incomplete(settings: Settings, config_path: Path | None) -> list[str]:
    """Why this configuration cannot work as it stands ([] = nothing obvious): no file given or an
    empty one, a secret the chosen login needs that is not set, a placeholder left from the example.
    """
    problems: list[str] = []
    if config_path is None:
        problems.append(
            "no config file: pass --config FILE or set REGSYNC_CONFIG (`regsync config init FILE`)"
        )
    elif config_path.is_file() and not config_path.read_text(encoding="utf-8", errors="replace").strip():
        problems.append(f"{config_path} is empty: every setting would be a default (`regsync config init`)")
    sf, cf = settings.salesforce, settings.checkfront
    for section, auth, table in (
        ("salesforce", sf.auth, SALESFORCE_SECRETS),
        ("checkfront", cf.auth, CHECKFRONT_SECRETS),
    ):
        block = getattr(settings, section)
        for (key,) in table[auth]:
            secret = getattr(block, key)
            if secret is None or not secret.get_secret_value():
                problems.append(
                    f"{section}.auth = {auth!r} needs the secret {section}.{key}: set {_env(section, key)} "
                    "in the environment or the env file"
                )
    if sf.auth in ("password", "jwt") and not sf.username:
        problems.append(f"salesforce.auth = {sf.auth!r} needs salesforce.username")
    if sf.auth in ("password", "client_credentials", "jwt") and not sf.consumer_key:
        problems.append(f"salesforce.auth = {sf.auth!r} needs salesforce.consumer_key (the connected app's)")
    if sf.auth == "session" and not sf.instance_url:
        problems.append("salesforce.auth = 'session' needs salesforce.instance_url")
    for (section, key), placeholder in PLACEHOLDERS.items():
        if getattr(getattr(settings, section), key) == placeholder:
            problems.append(f"{section}.{key} is still the example's placeholder {placeholder!r}")
    return problems
