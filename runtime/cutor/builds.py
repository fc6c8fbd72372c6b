"""Build requests and build results of Nix environments, as objects in the bucket."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from cutor import keys
from cutor.errors import PreconditionFailed
from cutor.limits import LimitName, PhaseLimits
from cutor.models import PhaseResult, utc_now
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

EPOCH = datetime.fromtimestamp(0, UTC)
# Conditional writes of one record retried before giving up; each retry means another
# writer changed the record in between.
RECORD_WRITE_ATTEMPTS = 20
RECORD_SUFFIX = "/record.json"


class BuildRequest(BaseModel):
    environment_id: str
    cutor_nix: str
    limits: PhaseLimits
    requested_at: datetime
    # A new generation requests a rebuild, after a cached failure expired.
    generation: int = 1


class BuildResult(BaseModel):
    environment_id: str
    generation: int
    ok: bool
    dependencies: PhaseResult
    # The built environment (cutor.nix.Environment as JSON) when ok.
    environment: dict[str, Any] | None = None
    finished_at: datetime
    # Set when the platform failed rather than the cutor.nix.
    platform_error: str | None = None
    # The limits the build ran under. A failure at a limit does not apply to a request
    # that allows more.
    limits: PhaseLimits | None = None

    def failure_applies_to(self, limits: PhaseLimits) -> bool:
        """Return whether this failed build also fails a request with ``limits``."""
        exceeded = self.dependencies.limit_exceeded
        if self.ok or exceeded is None or self.limits is None:
            return True
        allowed: float = getattr(limits, exceeded.value)
        used: float = getattr(self.limits, exceeded.value)
        return allowed <= used


class EnvironmentStatus(StrEnum):
    REQUESTED = "requested"
    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"
    EVICTED = "evicted"


class EnvironmentRecord(BaseModel):
    """A cached environment as the executor, the cache builder, eviction and the API see it."""

    id: str
    status: EnvironmentStatus
    # Realised store paths of the requested inputs; empty unless the last build succeeded.
    store_paths: list[str] = []
    # NAR bytes of the closure of store_paths, measured when the build finished.
    closure_size: int | None = None
    requested_at: datetime | None = None
    build_started_at: datetime | None = None
    # When the last build finished, whether it succeeded or failed.
    built_at: datetime | None = None
    last_used_at: datetime | None = None
    use_count: int = 0
    # Nix builds started for this environment over its whole life, rebuilds included.
    build_count: int = 0
    evicted_at: datetime | None = None

    def last_activity(self) -> datetime:
        """Return the latest of request, build and use: the order of LRU eviction."""
        stamps = [self.requested_at, self.built_at, self.last_used_at]
        return max((stamp for stamp in stamps if stamp is not None), default=EPOCH)


def load_request(store: ObjectStore, environment_id: str) -> BuildRequest | None:
    stored = store.get(keys.build_request(environment_id))
    return None if stored is None else BuildRequest.model_validate(stored.body)


def load_result(store: ObjectStore, environment_id: str) -> BuildResult | None:
    stored = store.get(keys.build_result(environment_id))
    return None if stored is None else BuildResult.model_validate(stored.body)


def failed_result(
    environment_id: str, generation: int, message: str, *, platform: bool,
    limit: LimitName | None = None,
) -> BuildResult:
    return BuildResult(
        environment_id=environment_id,
        generation=generation,
        ok=False,
        dependencies=PhaseResult.from_bytes(b"", message.encode(), limit_exceeded=limit),
        finished_at=utc_now(),
        platform_error=message if platform else None,
    )


def load_record(store: ObjectStore, environment_id: str) -> EnvironmentRecord | None:
    stored = store.get(keys.environment_record(environment_id))
    return None if stored is None else EnvironmentRecord.model_validate(stored.body)


def list_records(store: ObjectStore) -> Iterator[EnvironmentRecord]:
    """Yield every environment record in the bucket, evicted ones included."""
    for key in store.list_keys(keys.ENVIRONMENTS_PREFIX):
        if key.endswith(RECORD_SUFFIX):
            stored = store.get(key)
            if stored is not None:
                yield EnvironmentRecord.model_validate(stored.body)


def update_record(
    store: ObjectStore, environment_id: str, change: Callable[[EnvironmentRecord], None],
    *, create: bool = True,
) -> EnvironmentRecord | None:
    """Apply ``change`` to the environment's record and save it without losing other writes.

    A missing record is created with status ``requested`` first, unless ``create`` is
    False, in which case nothing is written and None is returned. Raise
    PreconditionFailed when other writers keep changing the record.
    """
    key = keys.environment_record(environment_id)
    for attempt in range(RECORD_WRITE_ATTEMPTS):
        stored = store.get(key)
        if stored is None and not create:
            return None
        record = (
            EnvironmentRecord.model_validate(stored.body) if stored is not None
            else EnvironmentRecord(id=environment_id, status=EnvironmentStatus.REQUESTED)
        )
        change(record)
        try:
            store.put(key, record.model_dump(mode="json"), create_only=stored is None,
                      if_match=None if stored is None else stored.etag)
            return record
        except PreconditionFailed:
            # Spread the retries of writers that collided, so they do not collide again.
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    raise PreconditionFailed(
        f"record of environment {environment_id} kept changing during {RECORD_WRITE_ATTEMPTS} "
        "attempts to update it"
    )


def mark_requested(record: EnvironmentRecord) -> None:
    # A request written just after another one must not hide the build that it started.
    if record.status is not EnvironmentStatus.BUILDING:
        record.status = EnvironmentStatus.REQUESTED
    record.requested_at = utc_now()


def record_use(store: ObjectStore, environment_id: str) -> None:
    """Count one more use of an environment and stamp its last use, for LRU eviction."""

    def count(record: EnvironmentRecord) -> None:
        record.use_count += 1
        record.last_used_at = utc_now()

    try:
        update_record(store, environment_id, count, create=False)
    except PreconditionFailed as error:
        logger.warning("environment %s: use not recorded: %s", environment_id, error)
