"""Case-store settings from the environment (``STREETWATCH_*``) or a ``.env`` file; never from the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IMAGE_MAX_PIXELS = 12_000_000  # a 4K frame is 8.3 MP; a decoded 12 MP image takes 36 MB
IMAGE_DECODES_MAX = 2


def is_email_address(text: str) -> bool:
    """A plausible single address (local@domain.tld, no spaces or display name): enough to catch typos."""
    local, at, domain = text.partition("@")
    if not (at and local and "." in domain.strip(".")):
        return False
    return not any(c in text for c in " <>,;\t\n") and "@" not in domain


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="SQLite database and (blob_store=local) the images.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default SQLite in data_dir.",
    )
    blob_store: Literal["local", "database"] = Field(
        "local",
        description="Where evidence, clips, snapshots and zone references are kept: files in data_dir, or "
        "PostgreSQL tables, so that several API hosts share them (api.storage).",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs the console's CSRF tokens; at least 32 characters (64 hex digits are used as "
        "32 bytes). Unset: generated once into the database and shared by every host (api.secret_key).",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    evidence_max_bytes: int = Field(5 * 1024 * 1024, gt=0)
    clip_max_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Largest evidence clip (MP4 from an edge box, kind clip)."
    )
    clip_max_s: float = Field(300.0, gt=0, description="Longest evidence clip accepted, in seconds.")
    model_max_bytes: int = Field(
        200 * 1024 * 1024,
        gt=0,
        description="Largest ONNX file the model registry accepts.",
    )
    # Request bodies (api.body_limits): refused with 413 from Content-Length or while they stream in.
    body_max_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest body of a route that takes no file (JSON, forms)."
    )
    multipart_overhead_bytes: int = Field(
        64 * 1024, ge=0, description="Allowed beside the image on upload routes: form fields, boundaries."
    )
    body_idle_timeout_s: float = Field(
        30.0, gt=0, description="A body that sends nothing for this long is refused with 408."
    )
    body_total_timeout_s: float = Field(
        300.0, gt=0, description="A body not complete after this long is refused with 408."
    )
    uploads_per_client: int = Field(
        2, ge=1, description="Concurrent uploads per credential (device key or token); more get 429."
    )
    uploads_total: int = Field(8, ge=1, description="Concurrent uploads per process; more get 429.")
    image_max_pixels: int = Field(
        IMAGE_MAX_PIXELS, gt=0, description="Largest image (width x height) decoded; a 4K frame is 8.3 MP."
    )
    image_decodes_max: int = Field(IMAGE_DECODES_MAX, ge=1, description="Images decoded at once per process.")
    recurrence_window_hours: float = Field(
        72.0, ge=0, description="复发: same place+violation after closing."
    )
    token_ttl_hours: float = Field(12.0, gt=0)
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins of one account before each further one waits 2^(n-max) s."
    )
    login_address_max_failures: int = Field(
        20, ge=1, description="Failed logins from one client address (any account) before back-off."
    )
    device_key_max_failures: int = Field(
        10, ge=1, description="Invalid device keys from one client address before back-off."
    )
    login_failure_window_s: float = Field(
        900.0, gt=0, description="Failures are forgotten this long after the last one (or the lock's end)."
    )
    login_max_lockout_s: float = Field(900.0, gt=0, description="The longest wait the back-off imposes.")
    login_hash_concurrency: int = Field(
        2, ge=1, description="Password checks (argon2, 64 MiB each) run at once per worker process."
    )
    login_hash_wait_s: float = Field(
        2.0, ge=0, description="How long a login waits for a password-check slot before a 503."
    )
    run_jobs: bool = Field(
        True,
        description="Run the overdue checker, notification sender, retention and pushed-reports jobs "
        "in this process.",
    )
    overdue_check_interval_s: float = Field(60.0, gt=0)
    delivery_interval_s: float = Field(2.0, gt=0)
    delivery_max_attempts: int = Field(8, ge=1)
    retention_days: float = Field(
        180.0,
        gt=0,
        description="Evidence of a closed or voided case is deleted this many days after it ended.",
    )
    retention_days_by_violation: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description='Retention per violation code instead of retention_days, e.g. {"0505": 90} (JSON).',
    )
    retention_interval_s: float = Field(3600.0, gt=0, description="How often the retention job runs.")
    suppress_days: float = Field(
        30.0,
        gt=0,
        description="A false alarm voided as false_positive is suppressed on its camera this long.",
    )
    suppress_days_by_type: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Days per pipeline violation type instead of suppress_days, "
        'e.g. {"unknown_object": 7} (JSON).',
    )
    mqtt_host: str | None = Field(None, description="MQTT broker for unit notifications (e.g. 127.0.0.1).")
    mqtt_port: int = 1883
    mqtt_topic_prefix: str = "streetwatch/units"
    webhook_timeout_s: float = Field(5.0, gt=0)
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL used in links (Open311 media_url)."
    )
    ranking_min_cases: int = Field(5, ge=1, description="Units with fewer cases are left out of the ranking.")
    map_tile_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+/\S*\{z\}\S*$",
        description="The city's map tile server, e.g. https://tiles.example.gov.cn/{z}/{x}/{y}.png; "
        "unset: the console map draws its points on a plain background.",
    )
    map_tile_attribution: str = Field("", max_length=200, description="Credit shown under the map tiles.")
    cookie_secure: bool = Field(
        False,
        description="Mark every cookie Secure even on plain-HTTP requests: set it behind a TLS-terminating "
        "proxy (cookies on HTTPS requests are always Secure).",
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="Proxy addresses (comma-separated, or *) whose X-Forwarded-Proto/-For "
        "`streetwatch api serve` trusts; unset: the headers are ignored.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that may read /metrics (besides logged-in admins); never logged.",
    )
    metrics_token_file: Path | None = Field(
        None, description="File holding the /metrics bearer token (instead of metrics_token)."
    )

    # Pushed reports (api.pushed_reports): 日督促 to units, 周检查 and 月通报 to leaders, deadline warnings.
    push_reports: bool = Field(True, description="Run the pushed-reports job (with run_jobs).")
    report_interval_s: float = Field(60.0, gt=0, description="How often the pushed-reports job looks.")
    report_daily_time: str = Field(
        "08:00", description="Local time (calendar time zone) from which each working day's digest is sent."
    )
    report_weekly_weekday: int = Field(
        1, ge=1, le=7, description="ISO weekday (1 = Monday) on which last week's check (周检查) is sent."
    )
    report_monthly_day: int = Field(
        1, ge=1, le=28, description="Day of the month on which last month's bulletin (月通报) is sent."
    )
    report_leaders: list[str] = Field(
        default_factory=list,
        description='Who gets 周检查 and 月通报: e-mail addresses and/or "unit:<code>" (JSON list).',
    )
    deadline_warning_share: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="A unit is warned once when a case has used this share of its working-hours deadline.",
    )
    smtp_host: str | None = Field(None, description="SMTP server for e-mailed reports; unset: no e-mail.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS before login.")
    smtp_ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the SMTP server's certificate (a city's own CA)."
    )
    smtp_user: str | None = Field(None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password; never logged.")
    smtp_password_file: Path | None = Field(None, description="File holding the SMTP password instead.")
    smtp_from: str | None = Field(None, description="The From address of e-mailed reports.")
    smtp_timeout_s: float = Field(10.0, gt=0)

    @field_validator("report_daily_time")
    @classmethod
    def _daily_time(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"report_daily_time {value!r}: expected a local time HH:MM such as 08:00")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("report_leaders")
    @classmethod
    def _leaders(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry.startswith("unit:") and len(entry) > len("unit:"):
                continue
            if not is_email_address(entry):
                raise ValueError(
                    f"report_leaders entry {entry!r}: expected an e-mail address or unit:<unit code>"
                )
        return value

    @model_validator(mode="after")
    def _smtp(self) -> Settings:
        if self.smtp_host is None:
            addresses = [entry for entry in self.report_leaders if not entry.startswith("unit:")]
            if addresses:
                raise ValueError(
                    f"report_leaders has e-mail addresses ({', '.join(addresses)}) but smtp_host is not set "
                    "(STREETWATCH_SMTP_HOST, STREETWATCH_SMTP_FROM)"
                )
            return self
        if not self.smtp_from or not is_email_address(self.smtp_from):
            raise ValueError(
                f"smtp_host is set but smtp_from {self.smtp_from!r} is not an e-mail address "
                "(STREETWATCH_SMTP_FROM, e.g. streetwatch@city.example)"
            )
        if (self.smtp_password is not None or self.smtp_password_file is not None) and not self.smtp_user:
            raise ValueError("an SMTP password is set but smtp_user is not (STREETWATCH_SMTP_USER)")
        return self

    def smtp_secret(self) -> str | None:
        """The SMTP password from ``smtp_password`` or ``smtp_password_file``; None if neither.

        Raises ValueError naming the setting (never the password) when the file cannot be read or is empty."""
        if self.smtp_password is not None:
            return self.smtp_password.get_secret_value()
        if self.smtp_password_file is None:
            return None
        where = f"STREETWATCH_SMTP_PASSWORD_FILE {self.smtp_password_file}"
        try:
            password = self.smtp_password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: cannot be read: {exc.__class__.__name__}") from exc
        if not password:
            raise ValueError(f"{where}: the file is empty")
        return password

    @model_validator(mode="after")
    def _blob_store_needs_postgresql(self) -> Self:
        if self.blob_store == "database" and not self.sqlalchemy_url.startswith("postgresql"):
            raise ValueError(
                "STREETWATCH_BLOB_STORE=database keeps the images in PostgreSQL, but the database is "
                f"{self.sqlalchemy_url.split(':', 1)[0]}: set STREETWATCH_DATABASE_URL=postgresql+psycopg://"
                "... or use STREETWATCH_BLOB_STORE=local"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'streetwatch.sqlite').resolve()}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    def metrics_bearer(self) -> str | None:
        """The /metrics bearer token from ``metrics_token`` or ``metrics_token_file``; None if neither.

        Raises ValueError naming the setting when the file cannot be read or is empty."""
        if self.metrics_token is not None:
            token = self.metrics_token.get_secret_value().strip()
            if not token:
                raise ValueError("STREETWATCH_METRICS_TOKEN is set but empty")
            return token
        if self.metrics_token_file is None:
            return None
        where = f"STREETWATCH_METRICS_TOKEN_FILE {self.metrics_token_file}"
        try:
            token = self.metrics_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: cannot be read: {exc.__class__.__name__}") from exc
        if not token:
            raise ValueError(f"{where}: the file is empty")
        return token
