"""The "plain RQ" baseline job: send one mail over a fresh SMTP connection, nothing else.

It is what a project gets with ``Queue.enqueue_at(due, send_one, ...)`` and the stock forking
``rq worker --with-scheduler``: no database, no per-recipient records, no claim. It renders a
message of the same size as the newsletter template with the standard library only, so the
baseline is not slowed by importing Django in every forked work-horse.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

BODY = "{title}\n\n{body}\n\nYou receive this because {to} is subscribed.\n"
HTML = '<!doctype html><html><body><h1>{title}</h1><div><p>{body}</p></div><p style="color:#777">{to}</p></body></html>'


def send_one(host: str, port: int, to: str, message_id: str, title: str, body: str) -> None:
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = "reservemail <noreply@localhost>"
    message["To"] = to
    message["Message-ID"] = message_id
    message.set_content(BODY.format(title=title, body=body, to=to))
    message.add_alternative(HTML.format(title=title, body=body, to=to), subtype="html")
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.send_message(message)
