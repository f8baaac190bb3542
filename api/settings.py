"""Service settings, read from the environment (prefix ``FAKEGUARD_``) when create_app runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAKEGUARD_", extra="ignore")

    #: Where the embedded database, blobs and other local state live.
    data_dir: Path = Path("data")
    #: SQLAlchemy URL. Default: SQLite file ``<data_dir>/fakeguard.db``. PostgreSQL:
    #: ``postgresql://user:pass@host:5432/db`` (psycopg 3).
    database_url: str | None = None
    #: Directory of the content-addressed blob store. Default: ``<data_dir>/blobs``.
    blob_dir: Path | None = None
    #: When set at start, an admin key with exactly this value is made to exist.
    bootstrap_admin_key: SecretStr | None = None

    #: Upload limits.
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    max_files_per_upload: int = Field(default=100, gt=0)
    max_request_bytes: int = Field(default=256 * 1024 * 1024, gt=0)

    #: Image matching: Hamming distance (of 64) at or under which a stored reference hash is a
    #: candidate; brands can override it (``match_distance``).
    match_distance: int = Field(default=12, ge=0, le=32)
    #: How often each worker applies catalog changes made by other workers, and how often it
    #: re-checks the whole catalog against the database.
    catalog_refresh_seconds: float = Field(default=2.0, gt=0)
    catalog_reconcile_seconds: float = Field(default=60.0, gt=0)

    #: Scoring.
    models_dir: Path = Path("models")
    model_poll_seconds: float = Field(default=5.0, gt=0)
    review_threshold: float = Field(default=0.5, ge=0, le=1)
    block_threshold: float = Field(default=0.85, ge=0, le=1)
    max_images_per_listing: int = Field(default=10, ge=0)
    max_batch_listings: int = Field(default=500, gt=0)
    #: Single-listing requests a worker receives while it is scoring are scored together, in
    #: one text-model call and one unit of work, each still answered on its own
    #: (api.ingest.coalesce); the window, when above 0, also waits that long after the first.
    score_coalescing: bool = True
    score_coalescing_window_ms: float = Field(default=0.0, ge=0, le=100)
    #: Exchange rates, units per 1 USD, as JSON ({"EUR": 0.92, ...}); default: a built-in,
    #: dated illustrative table.
    fx_rates: dict[str, float] | None = None
    fx_rates_as_of: str = "configured"
    #: Threads for image decoding, hashing and verification per worker (default: CPU count).
    image_threads: int | None = Field(default=None, gt=0)
    #: Prepared reference images kept in memory for verification, per worker.
    reference_view_cache: int = Field(default=500, gt=0)
    #: Candidates verified per listing image.
    max_candidates: int = Field(default=5, gt=0, le=50)
    #: Fetching listing images by URL (off by default; see README for the SSRF defences).
    image_fetch_enabled: bool = False
    image_fetch_allowed_hosts: list[str] = Field(default_factory=list)
    image_fetch_allow_http: bool = False
    image_fetch_timeout_seconds: float = Field(default=5.0, gt=0)

    #: Review queue: how long a reviewer's claim on an item lasts (a lease; claiming again extends
    #: it), and the most confirmed listings one evidence export (/v1/cases) considers.
    review_lease_seconds: float = Field(default=300.0, gt=0, le=86_400)
    cases_max_listings: int = Field(default=5000, gt=0, le=100_000)

    #: Review pages (/review): how long a sign-in lasts before the reviewer signs in again.
    review_session_seconds: float = Field(default=12 * 3600.0, gt=0, le=30 * 86_400)

    #: How long each worker remembers a valid API key instead of looking it up again (0: never).
    #: A key revoked through another worker (or replica) stops working there within this time.
    auth_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    #: Database connection pool size per worker (PostgreSQL).
    db_pool_size: int = Field(default=10, gt=0)
    #: PostgreSQL client bounds (store.db.PgTimeouts): opening a connection, noticing a
    #: connection whose server is gone (about 4x this), and the server-side statement timeout
    #: (0: none). Whatever exceeds them answers 503 with Retry-After.
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=600)
    db_keepalive_seconds: int = Field(default=10, ge=1, le=3600)
    db_statement_timeout_seconds: float = Field(default=30.0, ge=0, le=86_400)
    #: Run migrations when the app starts (``fakeguard serve`` migrates before it listens).
    migrate_on_start: bool = False
    #: Log level of the fakeguard loggers.
    log_level: str = "INFO"
    #: Log lines as JSON objects (with the request id) or as plain text.
    log_format: Literal["json", "text"] = "json"
    #: When set, GET /metrics needs ``Authorization: Bearer <this value>``; unset, it is open
    #: like /healthz (counts and latencies only; brand ids appear as labels).
    metrics_key: SecretStr | None = None

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'fakeguard.db').resolve()}"
        if self.blob_dir is None:
            self.blob_dir = self.data_dir / "blobs"
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if self.review_threshold > self.block_threshold:
            raise ValueError("review_threshold must not exceed block_threshold")
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def blobs_path(self) -> Path:
        assert self.blob_dir is not None
        return self.blob_dir
