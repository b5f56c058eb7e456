"""Systems with no API: the owner's mail, and confirming the task done by its link."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from privacy.context import PrivacyContext
from privacy.mail.mailer import OutgoingMail
from privacy.requests import records
from privacy.storage.repositories.requests import RequestRepository
from privacy.storage.repositories.tasks import TaskRecord
from privacy.tasks.outcomes import Attempt
from privacy.tasks.planning import open_call

ACTIONS = {"access": "send us a copy of everything you hold about",
           "erasure": "erase everything you hold about",
           "rectification": "correct what you hold about",
           "restriction": "stop processing (keep, but do not use) what you hold about"}


def done_link(ctx: PrivacyContext, task_id: str) -> str:
    return f"{ctx.public_url}/v1/tasks/{task_id}/done?token={ctx.crypto.link_token('task-done', task_id)}"


def ask_owner(session: Session, ctx: PrivacyContext, task: TaskRecord, attempt: Attempt, now: dt.datetime) -> None:
    """Mail the system's owner what to do, for whom, by when, and the link that confirms it;
    sealed under the request's key like every mail of the request."""
    request = RequestRepository(session).get(task.request_id or "")
    if request is None or attempt.mail_to is None:
        return
    call = open_call(ctx.crypto, task)
    lines = [f"Data-subject request {task.request_id} ({task.operation}) needs {task.system}.",
             f"Please {ACTIONS.get(task.operation, 'act on')} the person with the e-mail address {call.email}."]
    if call.changes:
        lines.append("Corrected values: " + ", ".join(f"{k}: {v}" for k, v in sorted(call.changes.items())))
    if attempt.instructions:
        lines.append(attempt.instructions)
    deadline = f"{task.deadline_at:%Y-%m-%d %H:%M} UTC" if task.deadline_at else "as soon as you can"
    lines += [f"Please do it by {deadline}.", f"When it is done, confirm here (once):\n{done_link(ctx, task.id)}",
              f"Task: {task.id}"]
    mail = OutgoingMail(to=attempt.mail_to, subject=f"Privacy task for {task.system}: {task.operation}",
                        text="\n\n".join(lines))
    records.queue_mail(session, ctx.crypto, ctx.crypto.request_key(request), request.id, mail, now)
