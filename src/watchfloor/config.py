"""Settings from WATCHFLOOR_* environment variables, or an optional watchfloor.toml."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHFLOOR_",
        toml_file=os.environ.get("WATCHFLOOR_CONFIG", "watchfloor.toml"),
        extra="ignore",
    )

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; SQLite under ./var/ when unset. "
        "postgresql://user:pass@host/db is accepted and uses asyncpg.",
    )
    var_dir: Path = DEFAULT_VAR_DIR
    secret_key: str = Field(
        default="",
        description="Signs session and CSRF values; generated into var/secret_key when unset.",
    )
    cookie_secure: bool = Field(
        default=False, description="Set the Secure flag on cookies (enable behind HTTPS)."
    )
    session_hours: float = 12.0
    max_body_bytes: int = 1_048_576
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    login_throttle_per_minute: int = 10
    db_echo: bool = False
    heartbeat_url: str = Field(
        default="",
        description="Pinged by the escalation engine after each healthy tick (e.g. a dead-man's "
        "switch); pings stop when the scheduler stalls or the system is unhealthy.",
    )
    panic_cancel_window_seconds: int = Field(
        default=30, ge=1, le=600, description="How long a staff panic press can be cancelled."
    )
    # --- the alarm pipeline (bus, MQTT, correlation, supervision, group commit) ---
    bus_url: str = Field(
        default="",
        description="Message bus: unset = in-process memory bus (one process); "
        "nats://host:4222 = NATS JetStream (several API and worker processes).",
    )
    bus_stream: str = Field(
        default="WATCHFLOOR", description="JetStream stream name (NATS bus only)."
    )
    bus_prefix: str = Field(
        default="",
        description="Prefix put before every subject on NATS (e.g. 'site1.'), so several "
        "installations or test runs can share one NATS server.",
    )
    mqtt_url: str = Field(
        default="",
        description="MQTT broker for device ingest, e.g. mqtt://127.0.0.1:1883; unset = off.",
    )
    correlation_window_seconds: int = Field(
        default=600, ge=0, le=86_400, description="Alarms fold into an open incident this long."
    )
    supervision_default_seconds: int = Field(
        default=200, ge=10, le=604_800, description="Device supervision interval when unset."
    )
    ingest_batch_max: int = Field(
        default=500, ge=1, le=10_000, description="Group commit: most events in one transaction."
    )
    ingest_batch_wait_ms: float = Field(
        default=2.0, ge=0, le=1_000, description="Group commit: how long to gather a batch."
    )
    test_signal_minutes: float = Field(
        default=15,
        ge=0,
        le=1440,
        description="Every N minutes each facility gets an end-to-end test signal through the "
        "real ingest path; 0 = off.",
    )
    test_signal_grace_seconds: int = Field(
        default=120,
        ge=1,
        le=86_400,
        description="A test signal not processed this long after it was stored raises a P3 "
        "'test_signal_missing' trouble alarm.",
    )
    mqtt_client_id: str = Field(
        default="",
        max_length=200,
        description="MQTT client id of this process (persistent session); unset = "
        "'watchfloor-<host>-<pid>', so two processes never share a session.",
    )
    outbox_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="Published outbox rows and consumer dedupe records are kept this long.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        max_length=300,
        description="The address people reach this Watchfloor at (links in alerts and "
        "roll-call messages).",
    )

    # --- door controllers (lockdown/drivers): settings named doors_*

    # --- lockdown: settings named lockdown_*

    # --- notifications (notify): settings named notify_*

    # --- roll call (rollcall): settings named rollcall_*

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / 'watchfloor.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept (mode 0600) under var/."""
        if self.secret_key:
            return self.secret_key
        import secrets

        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
