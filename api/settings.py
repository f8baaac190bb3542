"""Service settings, read from the environment (prefix ``FAKEGUARD_``) when create_app runs."""

from __future__ import annotations

from pathlib import Path

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
    match_distance: int = Field(default=10, ge=0, le=32)
    #: How often each worker applies catalog changes made by other workers, and how often it
    #: re-checks the whole catalog against the database.
    catalog_refresh_seconds: float = Field(default=2.0, gt=0)
    catalog_reconcile_seconds: float = Field(default=60.0, gt=0)

    #: Database connection pool size per worker (PostgreSQL).
    db_pool_size: int = Field(default=10, gt=0)
    #: Run migrations when the app starts (``fakeguard serve`` migrates before it listens).
    migrate_on_start: bool = False
    #: Log level of the fakeguard loggers.
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'fakeguard.db').resolve()}"
        if self.blob_dir is None:
            self.blob_dir = self.data_dir / "blobs"
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def blobs_path(self) -> Path:
        assert self.blob_dir is not None
        return self.blob_dir
