"""Case-store settings from the environment (``STREETWATCH_*``) or a ``.env`` file; never from the repo."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

IMAGE_MAX_PIXELS = 12_000_000  # a 4K frame is 8.3 MP; a decoded 12 MP image takes 36 MB
IMAGE_DECODES_MAX = 2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="SQLite database, evidence images and the secret key.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default SQLite in data_dir.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    evidence_max_bytes: int = Field(5 * 1024 * 1024, gt=0)
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
        True, description="Run the overdue checker, notification sender and retention job in this process."
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

    def secret_key(self) -> bytes:
        """A per-installation secret kept in the data directory (created on first use, mode 0600)."""
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())
