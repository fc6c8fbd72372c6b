"""Listing and deletion requests: how the API reaches the cache manager, which owns the Nix store.

The API has no Nix access. It writes a request object, whose creation event starts the
cache manager on a worker that owns the store, and polls for the response object next
to it. Both objects are deleted once the response is read or the wait times out.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from cutor import keys
from cutor.builds import EnvironmentStatus
from cutor.errors import CutorError
from cutor.models import utc_now
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.1


class NoCacheManager(CutorError):
    """No cache manager responded to a request in time; the API returns 504."""


class EnvironmentListing(BaseModel):
    """One environment of ``GET /dependencies``, checked against the Nix store."""

    id: str
    status: EnvironmentStatus
    # Store path names without the hash, such as "python3-3.11.2".
    packages: list[str]
    store_paths: list[str]
    # NAR bytes of the whole closure of store_paths, measured now; None when a path is missing.
    closure_size: int | None
    # True when every store path is valid and rooted by the environment's GC roots.
    verified: bool
    # What the check found wrong, or None.
    problem: str | None = None
    requested_at: datetime | None
    build_started_at: datetime | None
    # When the last build finished, whether it succeeded or failed.
    built_at: datetime | None
    last_used_at: datetime | None
    use_count: int
    build_count: int
    # Submissions running in the environment now, and submissions waiting for it.
    running: int
    queued: int


class CacheRequest(BaseModel):
    # The API stops waiting at this time, so a cache manager that comes later ignores it.
    expires_at: datetime


class ListingRequest(CacheRequest):
    # None lists every environment that is not evicted; an id lists that one, in any status.
    environment_id: str | None = None


class ListingResponse(BaseModel):
    environments: list[EnvironmentListing]


class DeletionRequest(CacheRequest):
    environment_id: str


class DeletionOutcome(StrEnum):
    DELETED = "deleted"
    IN_USE = "in_use"
    BUSY = "busy"
    NOT_FOUND = "not_found"


class DeletionResponse(BaseModel):
    environment_id: str
    outcome: DeletionOutcome
    message: str
    running: list[str] = []
    queued: list[str] = []
    # NAR bytes of the environment's closure that nix-store --gc deleted after it; paths
    # that other environments or running submissions share stay.
    freed_bytes: int | None = None


async def ask_for_listing(
    store: ObjectStore, environment_id: str | None, timeout: float
) -> ListingResponse:
    request_id = uuid.uuid4().hex
    request = ListingRequest(environment_id=environment_id, expires_at=_expiry(timeout))
    body = await _ask(store, keys.listing_request(request_id), keys.listing_response(request_id),
                      request.model_dump(mode="json"), timeout=timeout, what="listing")
    return ListingResponse.model_validate(body)


async def ask_for_deletion(
    store: ObjectStore, environment_id: str, timeout: float
) -> DeletionResponse:
    request_id = uuid.uuid4().hex
    request = DeletionRequest(environment_id=environment_id, expires_at=_expiry(timeout))
    body = await _ask(store, keys.deletion_request(request_id),
                      keys.deletion_response(request_id), request.model_dump(mode="json"),
                      timeout=timeout, what=f"deletion of environment {environment_id}")
    return DeletionResponse.model_validate(body)


def is_expired(expires_at: datetime) -> bool:
    return utc_now() > expires_at


def _expiry(timeout: float) -> datetime:
    return utc_now() + timedelta(seconds=timeout)


async def _ask(
    store: ObjectStore, request_key: str, response_key: str, body: dict[str, Any],
    *, timeout: float, what: str,
) -> dict[str, Any]:
    store.put(request_key, body, create_only=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            stored = store.get(response_key)
            if stored is not None:
                return stored.body
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        # The request goes first: a cache manager that responds later finds no request
        # and deletes its own response.
        store.delete(request_key)
        store.delete(response_key)
    logger.error("%s request %s timed out: no cache manager responded within %.1f s",
                 what, request_key, timeout)
    raise NoCacheManager(
        f"the {what} request timed out: no cache manager responded within {timeout:g} s; "
        "check that the function runner ('cutor up' starts it) is running and receives "
        "bucket events"
    )
