"""Core settings from HUDDLE_* environment variables and `.env` (pydantic-settings).

Each plugin and channel keeps its own settings class with the same prefix, so this file only
knows what the core needs. Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

import socket
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HuddleSettings(BaseSettings):
    """Base for every Huddle settings class: HUDDLE_ prefix, `.env`, unknown keys ignored."""

    model_config = SettingsConfigDict(env_prefix="HUDDLE_", env_file=".env", extra="ignore")


class CoreSettings(HuddleSettings):
    database_url: str = Field("huddle.db", description="SQLite file path or postgresql:// URL")
    durable_commits: bool = Field(True, description="fsync every commit (SQLite synchronous=FULL)")
    config: Path | None = Field(None, description="TOML file with people, stores, teams, shifts, schedules")
    demo: bool = Field(True, description="seed demo data into an empty database on first start")
    console: bool = Field(True, description="run the console channel when stdin is a terminal")

    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    admin_token: SecretStr | None = Field(None, description="admin sign-in (/admin) and bearer token for /api")
    metrics_token: SecretStr | None = Field(None, description="bearer token that may only scrape /metrics")

    log_format: Literal["kv", "json"] = "kv"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    default_timezone: str = Field("UTC", description="IANA zone of people and stores that name none")
    default_region: str = Field("US", description="country whose national phone numbers are read (ISO 3166)")
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)

    worker_id: str = Field(default_factory=lambda: default_process_id(),
                           description="this process's unique name in `processes` (default host-pid-random)")
    outbox_max_attempts: int = Field(8, ge=1)
    outbox_backoff_base: float = Field(2.0, gt=0, description="seconds before the first retry")
    outbox_backoff_max: float = Field(600.0, gt=0)
    outbox_poll_interval: float = Field(5.0, gt=0, description="seconds between sweeps for work of other processes")
    heartbeat_interval: float = Field(2.0, gt=0, description="seconds between this process's heartbeats")
    process_lease: float = Field(
        15.0, gt=0, description="seconds without a heartbeat before other processes take over this one's work")
    claim_batch: int = Field(20, ge=1, description="inbound messages a worker claims at a time")
    gateway_channels: list[str] | None = Field(
        None, description="channels whose adapters run in `gateway` (default: those that need local hardware)")
    shutdown_grace: float = Field(10.0, ge=0)

    scheduler_misfire_grace: int = Field(3600, ge=1, description="seconds a late job may still run")

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        """A URL SQLAlchemy cannot read, or another engine than ours, fails here with its reason."""
        from sqlalchemy.exc import ArgumentError

        from storage.db import normalize_url

        if not value.strip():
            raise ValueError("empty: give a SQLite file path or a postgresql:// URL")
        try:
            normalize_url(value)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(str(exc) if "unsupported" in str(exc) else f"not a valid database URL ({exc})") from None
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        from bot.phones import check_region

        return check_region(value)


def default_process_id() -> str:
    """host-pid-random: unique even for two processes on one host, or a pid reused after a restart."""
    import os
    import secrets

    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def check_timezone(value: str) -> str:
    """A validator for IANA zone names: a clear ValueError instead of zoneinfo's KeyError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name like America/New_York)") from None
    return value
