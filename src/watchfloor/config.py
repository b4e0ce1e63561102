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
        default=0.0,
        ge=0,
        le=1_000,
        description="Group commit: how long to wait for more events before writing (0: write "
        "at once; what arrives meanwhile forms the next batch).",
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
    gc_tuning: bool = Field(
        default=True,
        description="Once the runtime has started, collect garbage once and freeze what is "
        "left (gc.freeze: the app, its routes, SQLAlchemy's metadata are never scanned again), "
        "and collect the youngest generation every gc_young_threshold allocations instead of "
        "Python's 700: the collector's pauses and its share of ingest time shrink. The test "
        "suite turns it off (it builds many apps in one process).",
    )
    gc_young_threshold: int = Field(
        default=20_000,
        ge=100,
        le=1_000_000,
        description="Allocations between collections of the youngest generation (gc_tuning).",
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
    doors_driver: str = Field(
        default="osdp",
        pattern="^(osdp|memory)$",
        description="Door controller driver: 'osdp' (OSDP over TCP to the controllers) or "
        "'memory' (in-process stand-in for tests; commands no real door).",
    )
    doors_fleet_url: str = Field(
        default="tcp://127.0.0.1:4601",
        max_length=300,
        description="Where the OSDP controllers are reached: tcp://host:port of a gateway (or "
        "the simulated fleet of `watchfloor simulate doors`) that carries every controller; "
        "each connection names its facility and controller first. See docs/doors.md.",
    )
    doors_osdp_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Per-controller endpoints that override doors_fleet_url: "
        "'FACILITY/osdp://controller-N' (or 'FACILITY' for a whole facility) -> tcp://host:port.",
    )
    doors_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=120,
        description="How long one door command waits for the controller's confirmation before "
        "the door is reported as timed out.",
    )
    doors_connect_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long to wait for a controller's TCP connection and OSDP link to come up.",
    )
    doors_outputs_per_pd: int = Field(
        default=16,
        ge=1,
        le=64,
        description="Doors (OSDP outputs) per OSDP peripheral device: door K of a controller is "
        "output (K-1) mod N of the PD at address (K-1) div N; controllers and Watchfloor must "
        "agree.",
    )
    doors_osdp_scbk: str = Field(
        default="",
        max_length=32,
        pattern="^([0-9a-fA-F]{32})?$",
        description="OSDP secure channel base key (32 hex digits) shared with the controllers; "
        "unset = secure channel off.",
    )

    @field_validator("doors_fleet_url")
    @classmethod
    def _doors_endpoint(cls, value: str) -> str:
        return cls._doors_tcp_url(value)

    @field_validator("doors_osdp_endpoints")
    @classmethod
    def _doors_endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for url in value.values():
            cls._doors_tcp_url(url)
        return value

    @staticmethod
    def _doors_tcp_url(value: str) -> str:
        """Door controller endpoints are tcp://host:port."""
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "tcp" or not parts.hostname or not port:
            raise ValueError(f"'{value}' is not tcp://host:port")
        return value

    # --- lockdown: settings named lockdown_*
    lockdown_max_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Lockdown: commands sent to a door (first try and retries) before it is "
        "flagged as failed and a P1 'door failed to lock' alarm is raised.",
    )
    lockdown_retry_base_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Lockdown: wait before the first retry of doors that did not confirm; "
        "doubles with each retry (exponential backoff).",
    )
    lockdown_retry_max_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="Lockdown: the longest wait between two retries.",
    )
    lockdown_lift_requires_approval: bool = Field(
        default=True,
        description="Lifting a lockdown needs a second, different person with the lockdown:lift "
        "permission to approve it (organisation-wide; drills too).",
    )

    # --- notifications (notify): settings named notify_*
    notify_smtp_host: str = Field(
        default="127.0.0.1", max_length=200, description="SMTP server alerts are e-mailed through."
    )
    notify_smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    notify_smtp_security: str = Field(
        default="none",
        pattern="^(none|starttls|tls)$",
        description="SMTP transport security: none, starttls or tls (implicit TLS, port 465).",
    )
    notify_smtp_username: str = Field(default="", max_length=200, description="SMTP login.")
    notify_smtp_password: str = Field(default="", max_length=200, description="SMTP password.")
    notify_smtp_from: str = Field(
        default="Watchfloor Alerts <alerts@watchfloor.invalid>",
        max_length=200,
        description="From: address of alert e-mails.",
    )
    notify_smtp_connections: int = Field(
        default=4, ge=1, le=64, description="Pooled SMTP connections kept open by the sender."
    )
    notify_smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="SMTP connect / command timeout."
    )
    notify_sms_url: str = Field(
        default="",
        max_length=400,
        description="Apprise URL of the SMS gateway with '{number}' where the phone number goes "
        "(e.g. 'twilio://SID:TOKEN@+15550001111/{number}', or for a local test carrier "
        "'json://127.0.0.1:8099/sms?:to={number}'); unset = SMS channel off.",
    )
    notify_sms_reply_token: str = Field(
        default="",
        max_length=200,
        description="Shared secret the SMS gateway sends (header X-Webhook-Token) when it posts "
        "a reply to /api/v1/notify/sms-reply; unset = the webhook refuses every call.",
    )
    notify_max_attempts: int = Field(
        default=4, ge=1, le=20, description="Attempts per channel before falling back."
    )
    notify_retry_base_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Retry back-off: attempt n waits base * 2**(n-1) seconds (capped at 15 min).",
    )
    notify_rate_limits: dict[str, float] = Field(
        default_factory=lambda: {"email": 0.0, "sms": 20.0, "default": 10.0},
        description="Messages per second per provider (channel name: email, sms, slack, teams, "
        "push, webhook, apprise; 'default' for the rest); 0 = no limit (e-mail is bounded by "
        "notify_smtp_connections).",
    )
    notify_batch: int = Field(
        default=200, ge=1, le=5000, description="Deliveries one sender pass claims at once."
    )
    notify_ack_link_hours: float = Field(
        default=72.0, gt=0, le=24 * 30, description="How long an acknowledgement link works."
    )
    notify_claim_lease_seconds: float = Field(
        default=120.0,
        ge=5,
        le=3600,
        description="A delivery claimed by a sender that has not recorded the outcome after "
        "this long (or whose process is gone) is sent again with the same Message-ID.",
    )

    # --- roll call (rollcall): settings named rollcall_*
    rollcall_link_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 14,
        description="How long a roll-call answer link (the signed one-tap link sent to each "
        "person) stays valid after the roll call started.",
    )
    rollcall_on_lockdown: bool = Field(
        default=True,
        description="Start a roll call of the facility automatically when a lockdown starts "
        "(an EXERCISE roll call for a drill lockdown), unless one is already open.",
    )

    # --- assessments: settings named assessments_*
    assessments_attachments_dir: str = Field(
        default="",
        max_length=500,
        description="Folder where assessment evidence (photos, documents) is stored; "
        "unset = the 'attachments' folder under var_dir.",
    )
    assessments_attachment_max_bytes: int = Field(
        default=20_000_000,
        ge=1024,
        le=200 * 1024 * 1024,
        description="Largest evidence file accepted, in bytes (a phone's photo is 2-8 MB); the "
        "evidence upload routes take a body this large, every other request max_body_bytes.",
    )
    assessments_due_soon_days: int = Field(
        default=60,
        ge=0,
        le=365,
        description="A facility's next assessment counts as 'due soon' this many days ahead.",
    )

    # --- rollout and scorecards: settings named rollout_*
    rollout_due_soon_days: float = Field(
        default=3.0,
        ge=0,
        le=90,
        description="A rollout task not done whose due date is this many days away or less "
        "counts as 'due soon' on the rollout board.",
    )
    rollout_max_directive_tasks: int = Field(
        default=500_000,
        ge=1,
        description="The most tasks one directive may generate (facilities × measures).",
    )

    # --- drills: settings named drills_*
    drills_due_soon_days: float = Field(
        default=14.0,
        ge=0,
        le=180,
        description="A required drill whose next due date is this many days away or less "
        "counts as 'due soon' on the drills compliance view and the preparedness scorecard.",
    )

    # --- training: settings named training_*
    training_due_soon_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="A required course whose completion expires within this many days counts "
        "as 'due soon'.",
    )
    training_gap_share: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Scorecard: a facility is a 'gap' when more than this share of its required "
        "(person, course) pairs are overdue or never done.",
    )
    training_reminder_hour: int = Field(
        default=7,
        ge=0,
        le=23,
        description="Hour of the day (facility-local) from which the daily reminder digest goes "
        "to each facility's security managers (turn it off with training_reminders).",
    )
    training_reminders: bool = Field(
        default=True,
        description="Send the daily reminder digest of overdue and due-soon training.",
    )
    training_reminder_check_seconds: float = Field(
        default=300,
        ge=5,
        le=3600,
        description="How often the reminder loop looks whether a facility's digest is due.",
    )
    training_import_max_bytes: int = Field(
        default=10_000_000,
        ge=1024,
        le=200 * 1024 * 1024,
        description="Largest LMS export accepted, in bytes (the import routes take a body this "
        "large, every other request max_body_bytes; the CLI import has no request limit).",
    )
    training_import_max_rows: int = Field(
        default=50_000,
        ge=1,
        le=5_000_000,
        description="Most data rows one LMS export may have.",
    )

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
