"""Configuration: defaults here, overridden from the environment (``CARNET_`` prefix).

Every duration that the domain marks *(config)* is a setting with the domain's default.
"""
from __future__ import annotations

import os
from pathlib import Path


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration cannot be used safely."""


DEFAULTS: dict[str, object] = {
    # Database: a SQLite file in the instance folder unless CARNET_DATABASE_URL says otherwise.
    "DATABASE_URL": None,
    "SQL_ECHO": False,
    # Connections kept per web/worker process (keep >= gunicorn threads) and extra ones opened under bursts.
    "DB_POOL_SIZE": 10,
    "DB_MAX_OVERFLOW": 10,
    # Check each pooled connection before use (one round trip per request); see docs/deploy.md.
    "DB_POOL_PRE_PING": True,
    # Task queue: "sqlite" (embedded, no server), "redis" (production) or "immediate" (tests).
    "TASK_QUEUE": "sqlite",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # Account lifecycle (domain.md)
    "ACTIVATION_CODE_VALIDITY_DAYS": 42,
    "ACTIVATION_CODE_MAX_ATTEMPTS": 5,
    "RETENTION_YEARS": 10,
    "PASSWORD_MIN_LENGTH": 9,
    # Family space (domain.md, "Children, legal representatives and carers")
    "FAMILY_MAX_CARERS_PER_PATIENT": 3,
    "FAMILY_MAX_PATIENTS_PER_CARER": 5,
    "FAMILY_MAX_REPRESENTATIVES": 2,
    "FAMILY_INVITATION_VALIDITY_DAYS": 14,
    "FAMILY_MAJORITY_AGE": 18,
    # Tokens. A device session ends after SESSION_IDLE_MINUTES without a request, and in any case
    # ACCESS_TOKEN_TTL_HOURS after the sign-in (README, "Security choices").
    "ACCESS_TOKEN_TTL_HOURS": 12,
    "SESSION_IDLE_MINUTES": 30,
    "MFA_TOKEN_TTL_MINUTES": 10,
    "ENROLMENT_TOKEN_TTL_MINUTES": 30,
    "EMAIL_OTP_TTL_MINUTES": 10,
    # Throttling of failed attempts, counted in the database (every worker shares them): "<count> per <window>"
    "LOGIN_FAILURES_PER_ACCOUNT": "5 per 15 minutes",
    "LOGIN_FAILURES_PER_ADDRESS": "30 per 15 minutes",
    "MAX_CONTENT_LENGTH": 12 * 1024 * 1024,
    "TOTP_ISSUER": "Carnet",
    "DEFAULT_LANGUAGE": "fr",
    # Encryption at rest: base64 of 32 bytes (or CARNET_MASTER_KEY_FILE); older keys stay readable until
    # `carnet keys rotate` re-wraps every patient's data key.
    "MASTER_KEY": None,
    "MASTER_KEYS_PREVIOUS": "",
    # The address clients reach this server at (scheme, host, port, no trailing slash): every absolute link
    # the server writes (FHIR fullUrl, Bundle.link, Location) starts with it, never with the request's Host.
    # The default is what `make run` serves; set it in production (docs/deploy.md).
    "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
}

MIN_SECRET_LENGTH = 16


def add_defaults(config: dict, defaults: dict[str, object]) -> None:
    """A feature's own settings, each with the domain's default, under what the environment (``CARNET_``)
    or the caller already set: the core's are :data:`DEFAULTS` above; each feature passes its table here
    from its ``init_app`` (the one way a default enters the configuration)."""
    for key, value in defaults.items():
        config.setdefault(key, value)


def database_url(config: dict, instance_path: str) -> str:
    url = config.get("DATABASE_URL")
    if url:
        url = str(url)
        # Accept the usual libpq-style URL and pick the psycopg 3 driver.
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'carnet.db'}"


def check(config: dict) -> None:
    """Fail fast: outside tests a real secret is mandatory."""
    secret = config.get("SECRET_KEY")
    if config.get("TESTING"):
        return
    if not secret:
        secret_file = os.environ.get("CARNET_SECRET_KEY_FILE")
        if secret_file and Path(secret_file).is_file():
            secret = Path(secret_file).read_text().strip()
            config["SECRET_KEY"] = secret
    if not secret:
        raise ConfigError(
            "CARNET_SECRET_KEY is not set: refusing to start without a secret "
            "(set CARNET_SECRET_KEY or CARNET_SECRET_KEY_FILE)."
        )
    if not config.get("MASTER_KEY"):
        key_file = os.environ.get("CARNET_MASTER_KEY_FILE")
        if key_file and Path(key_file).is_file():
            config["MASTER_KEY"] = Path(key_file).read_text().strip()
    if not config.get("MASTER_KEY"):
        raise ConfigError("CARNET_MASTER_KEY is not set: refusing to store health data without a master key "
                          "(set CARNET_MASTER_KEY or CARNET_MASTER_KEY_FILE; `carnet keys new` makes one).")
    if len(str(secret)) < MIN_SECRET_LENGTH:
        raise ConfigError(f"CARNET_SECRET_KEY is too short (at least {MIN_SECRET_LENGTH} characters).")
    if config["TASK_QUEUE"] not in {"sqlite", "redis", "immediate"}:
        raise ConfigError("CARNET_TASK_QUEUE must be one of sqlite, redis, immediate.")
