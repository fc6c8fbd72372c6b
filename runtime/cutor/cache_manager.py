"""The cache manager: responds to listing and deletion requests on a worker that owns the Nix store.

The API writes a request object and polls for the response (see cache_requests). This
function checks each environment against the store (its GC roots, the validity of its
paths and the size of its closure) and carries out deletions through eviction.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import TypeVar

from pydantic import BaseModel

from cutor import builds, keys, usage
from cutor.builds import EnvironmentRecord, EnvironmentStatus
from cutor.cache_requests import (
    CacheRequest,
    DeletionOutcome,
    DeletionRequest,
    DeletionResponse,
    EnvironmentListing,
    ListingRequest,
    ListingResponse,
    is_expired,
)
from cutor.errors import PreconditionFailed
from cutor.eviction import EvictionOutcome, Evictor
from cutor.nix.store import closure_sizes, invalid_paths, rooted_paths
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

# A store path's base name is a 32-character hash, a dash and the name.
HASH_PREFIX_LENGTH = 33

RequestType = TypeVar("RequestType", bound=CacheRequest)


class CacheManager:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.evictor = Evictor(settings, store)

    def on_listing_requested(self, request_id: str) -> None:
        request_key = keys.listing_request(request_id)
        request = self._load_request(request_key, ListingRequest)
        if request is None or self.store.get(keys.listing_response(request_id)) is not None:
            return
        environments = self.list_environments(request.environment_id)
        response = ListingResponse(environments=environments)
        self._answer(request_key, keys.listing_response(request_id), response)
        logger.info("listing request %s: responded with %d environments", request_id,
                    len(environments))

    def on_deletion_requested(self, request_id: str) -> None:
        request_key = keys.deletion_request(request_id)
        request = self._load_request(request_key, DeletionRequest)
        if request is None or self.store.get(keys.deletion_response(request_id)) is not None:
            return
        response = self.delete_environment(request.environment_id)
        self._answer(request_key, keys.deletion_response(request_id), response)

    def list_environments(self, environment_id: str | None) -> list[EnvironmentListing]:
        """List one environment in any status, or every environment that is not evicted."""
        if environment_id is not None:
            record = builds.load_record(self.store, environment_id)
            records = [] if record is None else [record]
        else:
            records = [record for record in builds.list_records(self.store)
                       if record.status is not EnvironmentStatus.EVICTED]
        return [self._check(record) for record in records]

    def delete_environment(self, environment_id: str) -> DeletionResponse:
        """Evict one environment and collect garbage, unless it is in use or being built."""
        result = self.evictor.evict(environment_id, "deleted through the API")
        occupancy = result.occupancy
        response = DeletionResponse(
            environment_id=environment_id, outcome=DeletionOutcome.DELETED, message="",
            running=occupancy.running, queued=occupancy.queued,
        )
        if result.outcome is EvictionOutcome.NOT_CACHED:
            response.outcome = DeletionOutcome.NOT_FOUND
            response.message = f"environment {environment_id} is not in the cache"
        elif result.outcome is EvictionOutcome.BUSY:
            response.outcome = DeletionOutcome.BUSY
            response.message = (f"environment {environment_id} is being built or evicted; "
                                "retry when that has finished")
        elif result.outcome is EvictionOutcome.IN_USE:
            response.outcome = DeletionOutcome.IN_USE
            response.message = (
                f"environment {environment_id} is in use by {len(occupancy.running)} running "
                f"and {len(occupancy.queued)} queued submissions; retry when they have finished"
            )
        elif result.evicted is not None:
            self.evictor.collect([result.evicted], f"deletion of environment {environment_id}")
            response.freed_bytes = result.evicted.freed_bytes
            response.message = f"environment {environment_id} was deleted"
        return response

    def _check(self, record: EnvironmentRecord) -> EnvironmentListing:
        occupancy = usage.occupancy(self.store, record.id)
        closure_size, problem = self._verify(record)
        return EnvironmentListing(
            id=record.id,
            status=record.status,
            packages=[_package_name(path) for path in record.store_paths],
            store_paths=record.store_paths,
            closure_size=closure_size,
            verified=problem is None and record.status is EnvironmentStatus.BUILT,
            problem=problem,
            requested_at=record.requested_at,
            build_started_at=record.build_started_at,
            built_at=record.built_at,
            last_used_at=record.last_used_at,
            use_count=record.use_count,
            build_count=record.build_count,
            running=len(occupancy.running),
            queued=len(occupancy.queued),
        )

    def _verify(self, record: EnvironmentRecord) -> tuple[int | None, str | None]:
        """Return the closure size measured now, and what is wrong with the environment."""
        if record.status is not EnvironmentStatus.BUILT:
            return None, None
        missing = invalid_paths(record.store_paths)
        if missing:
            return None, f"store paths are missing: {' '.join(missing)}"
        size = sum(closure_sizes(record.store_paths).values())
        rooted = set(rooted_paths(usage.environment_roots(self.settings, record.id)))
        unrooted = [path for path in record.store_paths if path not in rooted]
        if unrooted:
            return size, (f"store paths have no GC root, so the next garbage collection "
                          f"deletes them: {' '.join(unrooted)}")
        return size, None

    def _load_request(self, key: str, model: type[RequestType]) -> RequestType | None:
        stored = self.store.get(key)
        if stored is None:
            return None
        request = model.model_validate(stored.body)
        if is_expired(request.expires_at):
            logger.info("request %s expired before a cache manager took it; deleting it", key)
            self.store.delete(key)
            return None
        return request

    def _answer(self, request_key: str, response_key: str, response: BaseModel) -> None:
        try:
            self.store.put(response_key, response.model_dump(mode="json"), create_only=True)
        except PreconditionFailed:
            logger.info("request %s already has a response from another worker", request_key)
            return
        # The API deletes the request when it stops waiting; a response written after
        # that would stay forever.
        if self.store.get(request_key) is None:
            logger.warning("request %s timed out before its response was written; deleting "
                           "the response", request_key)
            self.store.delete(response_key)


def _package_name(store_path: str) -> str:
    return PurePosixPath(store_path).name[HASH_PREFIX_LENGTH:]
