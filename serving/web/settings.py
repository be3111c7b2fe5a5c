"""Settings of the web page (GRIDRISK_WEB_* variables), built when the app first serves a page; `gridrisk
serve` builds them once before it starts, so a bad value is refused in one line (exit 2), not a 500 on every
page."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_BYTES = 16  # the least a session secret may hold (serving/web/session.py signs with it)


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

    @field_validator("session_secret")
    @classmethod
    def _secret_long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode()) < SECRET_BYTES:
            raise ValueError(
                f"the session secret must be at least {SECRET_BYTES} bytes; set a long random value "
                "(python -c 'import secrets; print(secrets.token_hex(32))'), or unset it to use the one kept "
                "in the home"
            )
        return v
