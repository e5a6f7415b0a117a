"""What every native route shares: the JSON body parser, the visible-job lookup, the caller's
owner id."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request

from ..auth.identity import identity_of
from ..exceptions import BadRequest, JobNotFound


async def body(request: Request, model: type[BaseModel]) -> Any:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    return model.model_validate(data)


def job_or_404(request: Request, job_id: str) -> Any:
    """The job, if the caller may see it: another user's job is as absent as a missing one."""
    job = request.app.state.jobs.store.get(job_id)
    if job is None or not identity_of(request.scope).may_see(job.owner):
        raise JobNotFound(f"job not found: {job_id}")
    return job


def owner_of(request: Request) -> str | None:
    return identity_of(request.scope).job_owner
