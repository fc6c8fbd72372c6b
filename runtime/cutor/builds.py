"""Build requests and build results of Nix environments, as objects in the bucket."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from cutor import keys
from cutor.errors import PreconditionFailed
from cutor.limits import LimitName, PhaseLimits
from cutor.models import PhaseResult, utc_now
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)


class BuildRequest(BaseModel):
    environment_id: str
    cutor_nix: str
    limits: PhaseLimits
    requested_at: datetime
    # A new generation asks for a rebuild, after a cached failure expired.
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


class EnvironmentRecord(BaseModel):
    """A cached environment, as listed by ``GET /dependencies``."""

    id: str
    status: str
    packages: list[str] = []
    closure_size: int | None = None
    built_at: datetime | None = None
    last_used_at: datetime | None = None
    use_count: int = 0


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


def record_use(store: ObjectStore, environment_id: str) -> None:
    """Count one more use of an environment and stamp its last use, for LRU eviction."""
    for _ in range(5):
        stored = store.get(keys.environment_record(environment_id))
        if stored is None:
            return
        record = EnvironmentRecord.model_validate(stored.body)
        record.use_count += 1
        record.last_used_at = utc_now()
        try:
            store.put(keys.environment_record(environment_id), record.model_dump(mode="json"),
                      if_match=stored.etag)
            return
        except PreconditionFailed:
            continue
    logger.warning("could not record a use of environment %s: too many concurrent writers",
                   environment_id)
