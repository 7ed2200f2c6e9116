"""Sending outbox emails over SMTP (smtplib): one connection per batch, STARTTLS or TLS as configured."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from types import TracebackType

from backend.db import utcnow
from backend.notifications.models import OutboxEmail
from backend.notifications.settings import NotificationSettings


class SmtpConnection:
    """A context manager around smtplib; ``send`` classifies the outcome of one message."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpConnection:
        s = self.settings
        assert s.smtp_host
        if s.smtp_security == "ssl":
            self.smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                                         context=ssl.create_default_context())
        else:
            self.smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            if s.smtp_security == "starttls":
                self.smtp.starttls(context=ssl.create_default_context())
        if s.smtp_username:
            self.smtp.login(s.smtp_username, s.smtp_password or "")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()

    def send(self, row: OutboxEmail) -> str:
        """Returns "sent", "failed" (refused for good: bad address) or "retry" (a temporary refusal)."""
        assert self.smtp is not None
        if not row.recipient or "@" not in row.recipient:
            return "failed"
        message = build_message(self.settings.mail_from, row)
        try:
            refused = self.smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return "retry" if codes and all(400 <= c < 500 for c in codes) else "failed"
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                return "retry"
            return "failed"
        return "failed" if refused else "sent"


def build_message(sender: str, row: OutboxEmail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">") or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(row.body)
    return message
