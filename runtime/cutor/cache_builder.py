"""The cache builder: realises a requested environment with Nix and writes the build result.

One build per environment: a lease on the environment's lock object lets one worker
build while the others return, and the result's generation shows a late duplicate event
that the work is done. The result is written before the lock is released, so a worker
that gets the lock afterwards always sees it.
"""

from __future__ import annotations

import logging

from cutor import builds, keys, leases
from cutor.builds import BuildRequest, BuildResult, EnvironmentRecord, EnvironmentStatus
from cutor.errors import CutorError, NixError
from cutor.eviction import Evictor
from cutor.models import PhaseResult, utc_now
from cutor.nix import BuildOutcome, build_environment
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 120.0


class CacheBuilder:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = settings.worker_name()
        self.evictor = Evictor(settings, store)

    def on_build_requested(self, environment_id: str) -> None:
        request = builds.load_request(self.store, environment_id)
        if request is None:
            return
        if self._already_built(request):
            return
        lock = keys.build_lock(environment_id)
        seconds = request.limits.wall_time + LOCK_MARGIN_SECONDS
        if not leases.acquire(self.store, lock, self.worker_id, seconds):
            logger.info("environment %s is being built by another worker", environment_id)
            return
        try:
            built = not self._already_built(request) and self._build(request)
        finally:
            leases.release(self.store, lock)
        if built:
            self._evict_if_over_budget(environment_id)

    def _already_built(self, request: BuildRequest) -> bool:
        result = builds.load_result(self.store, request.environment_id)
        return result is not None and result.generation >= request.generation

    def _build(self, request: BuildRequest) -> bool:
        """Build the environment and write its result; return True when the build succeeded."""
        environment_id = request.environment_id
        logger.info("building environment %s (generation %d)", environment_id, request.generation)
        builds.update_record(self.store, environment_id, _mark_building)
        try:
            outcome = build_environment(self.settings, request.cutor_nix, request.limits)
        except NixError as error:
            logger.error("environment %s: Nix is unavailable: %s", environment_id, error)
            result = builds.failed_result(
                environment_id, request.generation, f"Nix is unavailable: {error}", platform=True
            )
            builds.update_record(self.store, environment_id, _mark_failed)
            self._write(result)
            return False

        dependencies = PhaseResult.from_bytes(
            outcome.stdout, outcome.stderr, time=round(outcome.time, 4),
            cpu_time=round(outcome.cpu_time, 4), exit_code=0 if outcome.ok else 1,
            limit_exceeded=outcome.limit_exceeded,
        )
        environment = outcome.environment.model_dump(mode="json") if outcome.environment else None
        result = BuildResult(
            environment_id=environment_id, generation=request.generation, ok=outcome.ok,
            dependencies=dependencies, environment=environment, finished_at=utc_now(),
            limits=request.limits,
        )
        self._record_outcome(environment_id, outcome)
        self._write(result)
        logger.info("environment %s built: ok=%s in %.2fs",
                    environment_id, outcome.ok, outcome.time)
        return outcome.ok

    def _write(self, result: BuildResult) -> None:
        # Written last: its creation event brings the executor back for the waiting
        # submissions.
        self.store.put(keys.build_result(result.environment_id), result.model_dump(mode="json"))

    def _record_outcome(self, environment_id: str, outcome: BuildOutcome) -> None:
        built = outcome.environment
        if built is not None and built.id != environment_id:
            # The GC roots are under the builder's id, where eviction would never find them.
            logger.error("environment %s was built as %s: the executor and the builder "
                         "compute different ids", environment_id, built.id)
        if outcome.ok and built is not None:
            self._write_record(environment_id, built.store_paths, built.closure_size)
        else:
            builds.update_record(self.store, environment_id, _mark_failed)

    def _write_record(self, environment_id: str, store_paths: list[str], size: int) -> None:
        def mark_built(record: EnvironmentRecord) -> None:
            record.status = EnvironmentStatus.BUILT
            record.store_paths = store_paths
            record.closure_size = size
            record.built_at = utc_now()

        builds.update_record(self.store, environment_id, mark_built)

    def _evict_if_over_budget(self, environment_id: str) -> None:
        # The new environment's waiting markers keep it from being evicted here.
        try:
            self.evictor.evict_to_budget(f"after the build of environment {environment_id}")
        except CutorError as error:
            logger.error("eviction after the build of environment %s failed: %s",
                         environment_id, error)


def _mark_building(record: EnvironmentRecord) -> None:
    record.status = EnvironmentStatus.BUILDING
    record.build_started_at = utc_now()
    record.build_count += 1


def _mark_failed(record: EnvironmentRecord) -> None:
    record.status = EnvironmentStatus.FAILED
    record.store_paths = []
    record.closure_size = None
    record.built_at = utc_now()
