"""The cache builder: realises a requested environment with Nix and writes the build result.

One build per environment: a lease on the environment's lock object lets one worker
build while the others return, and the result's generation tells a late duplicate event
that the work is done.
"""

from __future__ import annotations

import logging

from cutor import builds, keys, leases
from cutor.builds import BuildRequest, BuildResult, EnvironmentRecord
from cutor.errors import NixError
from cutor.models import PhaseResult, utc_now
from cutor.nix import build_environment
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 120.0


class CacheBuilder:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = settings.worker_name()

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
            if not self._already_built(request):
                self._build(request)
        finally:
            leases.release(self.store, lock)

    def _already_built(self, request: BuildRequest) -> bool:
        result = builds.load_result(self.store, request.environment_id)
        return result is not None and result.generation >= request.generation

    def _build(self, request: BuildRequest) -> None:
        environment_id = request.environment_id
        logger.info("building environment %s (generation %d)", environment_id, request.generation)
        try:
            outcome = build_environment(self.settings, request.cutor_nix, request.limits)
        except NixError as error:
            logger.error("environment %s: Nix is unavailable: %s", environment_id, error)
            result = builds.failed_result(
                environment_id, request.generation, f"Nix is unavailable: {error}", platform=True
            )
            self._write(result)
            return
        dependencies = PhaseResult.from_bytes(
            outcome.stdout, outcome.stderr, time=outcome.time, cpu_time=outcome.cpu_time,
            exit_code=0 if outcome.ok else 1, limit_exceeded=outcome.limit_exceeded,
        )
        environment = outcome.environment.model_dump(mode="json") if outcome.environment else None
        result = BuildResult(
            environment_id=environment_id, generation=request.generation, ok=outcome.ok,
            dependencies=dependencies, environment=environment, finished_at=utc_now(),
        )
        if outcome.ok and outcome.environment is not None:
            self._write_record(environment_id, outcome.environment.store_paths,
                               outcome.environment.closure_size)
        self._write(result)
        logger.info("environment %s built: ok=%s in %.2fs",
                    environment_id, outcome.ok, outcome.time)

    def _write(self, result: BuildResult) -> None:
        # Written last: its creation event brings the executor back for the waiting
        # submissions.
        self.store.put(keys.build_result(result.environment_id), result.model_dump(mode="json"))

    def _write_record(self, environment_id: str, packages: list[str], size: int | None) -> None:
        stored = self.store.get(keys.environment_record(environment_id))
        record = (
            EnvironmentRecord.model_validate(stored.body) if stored
            else EnvironmentRecord(id=environment_id, status="built")
        )
        record.status = "built"
        record.packages = packages
        record.closure_size = size
        record.built_at = utc_now()
        self.store.put(keys.environment_record(environment_id), record.model_dump(mode="json"))
