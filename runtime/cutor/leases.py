"""Leases on object keys: one worker at a time runs a step, and a dead worker's lease expires.

A lease is a JSON object created with ``If-None-Match: *``. An expired lease is taken
over with ``If-Match`` on the ETag that was read, so of two workers that both saw it
expire, exactly one wins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cutor.errors import PreconditionFailed
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)


def acquire(
    store: ObjectStore, key: str, holder: str, seconds: float,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Take the lease at ``key`` for ``seconds``; return False if someone else holds it."""
    body = {"holder": holder, "expires_at": clock() + seconds}
    try:
        store.put(key, body, create_only=True)
        return True
    except PreconditionFailed:
        pass
    current = store.get(key)
    if current is None:
        return acquire_once_more(store, key, body)
    if float(current.body.get("expires_at", 0)) > clock():
        return False
    try:
        store.put(key, body, if_match=current.etag)
    except PreconditionFailed:
        return False
    logger.warning("took over expired lease %s from %s", key, current.body.get("holder"))
    return True


def acquire_once_more(store: ObjectStore, key: str, body: dict[str, object]) -> bool:
    # The lease was released between the failed create and the read.
    try:
        store.put(key, body, create_only=True)
        return True
    except PreconditionFailed:
        return False


def release(store: ObjectStore, key: str) -> None:
    store.delete(key)
