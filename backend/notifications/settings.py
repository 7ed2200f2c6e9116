"""The notifications feature's settings: defaults here, overridden from the environment (``CARNET_``)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Web Push (VAPID). The private key: CARNET_VAPID_PRIVATE_KEY (PEM or raw base64url), else the file
    # below (relative to the instance folder), written by `carnet push keys`.
    "VAPID_PRIVATE_KEY": None,
    "VAPID_PRIVATE_KEY_FILE": "vapid_private.pem",
    "VAPID_SUBJECT": "mailto:securite@carnet.example",
    "PUSH_TTL_SECONDS": 24 * 3600,       # how long a push service keeps a message for an offline device
    "PUSH_TIMEOUT_SECONDS": 10,
    "PUSH_MAX_ATTEMPTS": 8,
    "PUSH_BACKOFF_SECONDS": 60,          # 1, 2, 4, 8… minutes
    "PUSH_BACKOFF_MAX_SECONDS": 3600,
    "PUSH_ALLOW_HTTP": False,            # plain-http endpoints: only for a loopback service in tests/dev
    # A device whose session ran out (idle, or its 12 hours) still gets the content-free pushes this long, so
    # that tomorrow's reminder reaches the phone; a sign-out, a revocation or a password change ends it at once.
    "PUSH_DEVICE_DAYS": 30,
    # Email (the outbox is sent over SMTP; without a host, emails wait in the outbox)
    "SMTP_HOST": None,
    "SMTP_PORT": 587,
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_SECURITY": "starttls",        # starttls | ssl | none
    "SMTP_TIMEOUT_SECONDS": 15,
    "MAIL_FROM": "Carnet <ne-pas-repondre@carnet.example>",
    "EMAIL_MAX_ATTEMPTS": 8,
    "EMAIL_BACKOFF_SECONDS": 60,
    # Jobs
    "NOTIFY_BATCH_SIZE": 100,
    "NOTIFY_CLAIM_LEASE_SECONDS": 600,   # a claim older than this belonged to a worker that died
}


@dataclass(frozen=True)
class NotificationSettings:
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:securite@carnet.example"
    push_ttl: int = 24 * 3600
    push_timeout: float = 10
    push_max_attempts: int = 8
    push_backoff: dt.timedelta = dt.timedelta(seconds=60)
    push_backoff_max: dt.timedelta = dt.timedelta(seconds=3600)
    push_allow_http: bool = False
    push_device: dt.timedelta = dt.timedelta(days=30)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: str = "starttls"
    smtp_timeout: float = 15
    mail_from: str = "Carnet <ne-pas-repondre@carnet.example>"
    email_max_attempts: int = 8
    email_backoff: dt.timedelta = dt.timedelta(seconds=60)
    batch_size: int = 100
    claim_lease: dt.timedelta = dt.timedelta(seconds=600)

    @classmethod
    def from_config(cls, config: Any, instance_path: str | None = None) -> NotificationSettings:
        return cls(
            vapid_private_key=load_vapid_private_key(config, instance_path),
            vapid_subject=str(config["VAPID_SUBJECT"]),
            push_ttl=int(config["PUSH_TTL_SECONDS"]),
            push_timeout=float(config["PUSH_TIMEOUT_SECONDS"]),
            push_max_attempts=int(config["PUSH_MAX_ATTEMPTS"]),
            push_backoff=dt.timedelta(seconds=float(config["PUSH_BACKOFF_SECONDS"])),
            push_backoff_max=dt.timedelta(seconds=float(config["PUSH_BACKOFF_MAX_SECONDS"])),
            push_allow_http=bool(config["PUSH_ALLOW_HTTP"]),
            push_device=dt.timedelta(days=float(config["PUSH_DEVICE_DAYS"])),
            smtp_host=config["SMTP_HOST"] or None,
            smtp_port=int(config["SMTP_PORT"]),
            smtp_username=config["SMTP_USERNAME"] or None,
            smtp_password=config["SMTP_PASSWORD"] or None,
            smtp_security=str(config["SMTP_SECURITY"]).lower(),
            smtp_timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
            mail_from=str(config["MAIL_FROM"]),
            email_max_attempts=int(config["EMAIL_MAX_ATTEMPTS"]),
            email_backoff=dt.timedelta(seconds=float(config["EMAIL_BACKOFF_SECONDS"])),
            batch_size=int(config["NOTIFY_BATCH_SIZE"]),
            claim_lease=dt.timedelta(seconds=float(config["NOTIFY_CLAIM_LEASE_SECONDS"])),
        )


def vapid_key_path(config: Any, instance_path: str | None) -> Path:
    path = Path(str(config["VAPID_PRIVATE_KEY_FILE"]))
    if not path.is_absolute() and instance_path:
        path = Path(instance_path) / path
    return path


def load_vapid_private_key(config: Any, instance_path: str | None) -> str | None:
    """The key from the environment first, else from the key file; None when push is not set up."""
    if config.get("VAPID_PRIVATE_KEY"):
        return str(config["VAPID_PRIVATE_KEY"]).strip()
    path = vapid_key_path(config, instance_path)
    if path.is_file():
        return path.read_text().strip()
    return None


def check(config: Any) -> None:
    from backend.config import ConfigError

    if str(config["SMTP_SECURITY"]).lower() not in {"starttls", "ssl", "none"}:
        raise ConfigError("CARNET_SMTP_SECURITY must be one of starttls, ssl, none.")
    subject = str(config["VAPID_SUBJECT"])
    if not (subject.startswith("mailto:") or subject.startswith("https:")):
        raise ConfigError("CARNET_VAPID_SUBJECT must be a mailto: or https: URI (RFC 8292).")
