"""Settings of the web page (GRIDRISK_WEB_* variables), built when the app first serves a page."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDRISK_WEB_", extra="ignore")

    session_secret: SecretStr | None = Field(
        default=None,
        description="signs session cookies; set the same value on every replica. Default: a random secret "
        "kept in $GRIDRISK_HOME/web-session.secret (shared by the workers of one machine)",
    )
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="sign-in lifetime")
    cookie_secure: bool = Field(
        default=False, description="mark cookies Secure (set it when the page is served over HTTPS)"
    )
    page_size: int = Field(default=50, ge=5, le=500, description="customers per page of the risk list")
    export_max_rows: int = Field(default=100_000, ge=1, description="most rows in one XLSX/CSV export")
