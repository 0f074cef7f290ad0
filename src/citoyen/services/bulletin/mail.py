"""E-mailing a made bulletin to its area's communal security council.

Recipients are the active accounts of the area's stakeholders of kind ``mayor_ccs`` (the
mayor's office and its CCS): stakeholders have no e-mail of their own, their staff have. Sent
through ``CITOYEN_SMTP_HOST`` with the standard library's smtplib, once per bulletin
(``emailed_at``); a failure is logged and tried again at the job's next firing.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from sqlmodel import Session, select

from citoyen.models import Area, Stakeholder, User


def recipients(session: Session, area_code: str) -> list[str]:
    area_id = session.exec(select(Area.id).where(Area.code == area_code)).first()
    if area_id is None:
        return []
    rows = session.exec(
        select(User.email)
        .join(Stakeholder, Stakeholder.id == User.stakeholder_id)
        .where(
            Stakeholder.area_id == area_id,
            Stakeholder.kind == "mayor_ccs",
            Stakeholder.active.is_(True),
            User.active.is_(True),
        )
    ).all()
    return sorted(set(rows))


def send(
    settings: Any, catalog: Any, to: list[str], area_name: str, month: str, pdf: bytes
) -> None:
    """One message (texts ``bulletin.mail_*`` of ``locales/``, French) with the PDF attached;
    raises smtplib's errors."""
    params = {"area": area_name, "month": month}
    message = EmailMessage()
    message["Subject"] = catalog.render("bulletin.mail_subject", "fr", params)
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message.set_content(catalog.render("bulletin.mail_body", "fr", params) + "\n")
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=f"bulletin-{month}.pdf"
    )
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)
