"""The platform's mail relay, emulated: an SMTP server on loopback that keeps every message it receives."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _text(part: Any) -> str | None:
    """An attachment's content as text (markdown, CSV), None for binary content."""
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Keep:
    """aiosmtpd handler: parse and keep each message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = message.get_body(preferencelist=("html", "plain"))
        with self.lock:
            self.messages.append(
                {
                    "received_at": dt.datetime.now(dt.UTC).isoformat(),
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "subject": str(message.get("Subject", "")),
                    "body": body.get_content() if body is not None else "",
                    # Attached files (a SAML renewal runbook, say): name, type and text when it is text.
                    "attachments": [
                        {
                            "filename": part.get_filename(),
                            "content_type": part.get_content_type(),
                            "text": _text(part),
                        }
                        for part in message.iter_attachments()
                    ],
                }
            )
        return "250 Message accepted for delivery"


class MailSink:
    """Accepts mail on 127.0.0.1 and delivers it nowhere but :attr:`messages`."""

    def __init__(self, port: int = 0) -> None:
        self.handler = _Keep()
        self.port = port or free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self.handler.lock:
            return list(self.handler.messages)
