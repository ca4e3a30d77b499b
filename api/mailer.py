"""E-mail deliveries over SMTP: one connection per batch, STARTTLS and login as configured.

A queued e-mail delivery's payload holds ``subject``, ``text`` and ``html``; the message goes out as
``multipart/alternative`` (plain text first, then the simple HTML) in UTF-8. Its ``Message-ID`` is
derived from the delivery id, so a retried delivery carries the same id and mail clients can drop the
duplicate (delivery is at least once, like the other channels).

The password (``smtp_password`` / ``smtp_password_file``) is given only to ``SMTP.login``: it is never
part of a log line or of a delivery's ``last_error``.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from api.settings import Settings


class MailError(Exception):
    """Sending one message failed; the message says why (stored as the delivery's last_error)."""


def build_message(*, sender: str, recipient: str, delivery_id: int, payload: dict[str, Any]) -> EmailMessage:
    """The e-mail for one delivery: subject and bodies from the queued payload."""
    missing = [k for k in ("subject", "text", "html") if not isinstance(payload.get(k), str)]
    if missing:
        raise MailError(f"e-mail delivery {delivery_id} has no {', '.join(missing)} in its payload")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<streetwatch-delivery-{delivery_id}@{sender.rpartition('@')[2]}>"
    message["X-Streetwatch-Event"] = str(payload.get("event", ""))
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


class SmtpMailer:
    """One SMTP session for a batch; the first failure to connect is kept and reported per message."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.error: str | None = None
        self._smtp: smtplib.SMTP | None = None
        if not settings.smtp_host or not settings.smtp_from:
            self.error = "smtp_host is not configured (STREETWATCH_SMTP_HOST, STREETWATCH_SMTP_FROM)"
            return
        where = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
        try:
            password = settings.smtp_secret()
        except ValueError as exc:
            self.error = str(exc)
            return
        try:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            self.error = f"cannot connect to {where}: {type(exc).__name__}: {exc}"
            return
        self._smtp = smtp
        try:
            if settings.smtp_starttls:
                # Certificate and host name checked against the system's CAs or smtp_ca_file.
                smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
            if settings.smtp_user:
                smtp.login(settings.smtp_user, password or "")
        except smtplib.SMTPNotSupportedError:
            self.error = (
                f"{where} does not offer STARTTLS "
                "(set STREETWATCH_SMTP_STARTTLS=false only on a trusted link)"
            )
        except smtplib.SMTPAuthenticationError as exc:
            # The server's answer, never the password.
            self.error = f"{where} refused the login of {settings.smtp_user!r}: {exc.smtp_code}"
        except (OSError, smtplib.SMTPException) as exc:
            self.error = f"{where}: {type(exc).__name__}: {exc}"

    def send(self, *, delivery_id: int, recipient: str | None, payload: dict[str, Any]) -> None:
        if self.error or self._smtp is None:
            raise MailError(self.error or "no SMTP connection")
        if not recipient:
            raise MailError(f"e-mail delivery {delivery_id} has no recipient address")
        sender = self.settings.smtp_from or ""
        message = build_message(sender=sender, recipient=recipient, delivery_id=delivery_id, payload=payload)
        try:
            refused = self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"the SMTP server refused the recipient {recipient}: {exc.recipients}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"sending to {recipient} failed: {type(exc).__name__}: {exc}") from exc
        if refused:
            raise MailError(f"the SMTP server refused the recipient {recipient}: {refused}")

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
