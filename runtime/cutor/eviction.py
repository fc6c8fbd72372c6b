"""Eviction: remove least recently used environments until the cache fits its budget.

Evicting an environment deletes its build request and result, so the next submission
that needs it rebuilds it, marks its record ``evicted`` and removes its GC roots. Then
``nix-store --gc`` deletes what no root keeps any more. Eviction only ever removes roots,
so Nix's collector keeps every store path that a kept environment or a running
submission (which has roots of its own) still reaches.

The cache size is the NAR size of the union of the closures of all built environments,
measured in the store at each pass, so a path that several environments share counts once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from cutor import builds, keys, leases, usage
from cutor.builds import BuildRequest, EnvironmentRecord, EnvironmentStatus
from cutor.errors import PreconditionFailed
from cutor.models import SubmissionState, utc_now
from cutor.nix.store import (
    GC_TIMEOUT,
    GarbageReport,
    closure_sizes,
    collect_garbage,
    invalid_paths,
    remove_roots,
)
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

# A pass that outlives this lease belongs to a worker that stopped; the next pass may
# take over. A pass ends with a collection, which may take up to GC_TIMEOUT.
PASS_LEASE_SECONDS = GC_TIMEOUT + 600.0
# Eviction holds the environment's build lock for a few bucket writes and one rmtree.
ENVIRONMENT_LEASE_SECONDS = 120.0


class EvictionOutcome(StrEnum):
    EVICTED = "evicted"
    # A submission runs in the environment or waits for it.
    IN_USE = "in_use"
    # A worker holds the build lock: the environment is being built or evicted.
    BUSY = "busy"
    # No record, or the environment was already evicted.
    NOT_CACHED = "not_cached"


@dataclass
class EvictedEnvironment:
    environment_id: str
    reason: str
    store_paths: list[str]
    # NAR bytes of every path of its closure, measured just before its roots went.
    closure: dict[str, int]
    # NAR bytes of the paths of that closure that the collection after it deleted. Paths
    # that a kept environment or a running submission shares are not deleted.
    freed_bytes: int | None = None


@dataclass(frozen=True)
class EvictionResult:
    outcome: EvictionOutcome
    occupancy: usage.Occupancy = field(default_factory=lambda: usage.Occupancy([], []))
    evicted: EvictedEnvironment | None = None


@dataclass
class PassReport:
    trigger: str
    cache_bytes_before: int
    cache_bytes_after: int
    evicted: list[EvictedEnvironment] = field(default_factory=list)
    garbage: GarbageReport | None = None


class Evictor:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = settings.worker_name()

    def evict_to_budget(self, trigger: str) -> PassReport | None:
        """Evict LRU environments not in use until the cache fits ``cache_max_bytes``.

        Return None when the budget is unlimited or another pass is running.
        """
        budget = self.settings.cache_max_bytes
        if budget <= 0:
            return None
        if not leases.acquire(self.store, keys.EVICTION_LOCK, self.worker_id,
                              PASS_LEASE_SECONDS):
            logger.info("eviction pass (%s) skipped: another pass is running", trigger)
            return None
        try:
            self._remove_finished_submission_roots()
            return self._evict_to(budget, trigger)
        finally:
            leases.release(self.store, keys.EVICTION_LOCK)

    def evict(self, environment_id: str, reason: str) -> EvictionResult:
        """Evict one environment unless it is in use or being built; collect no garbage."""
        lock = keys.build_lock(environment_id)
        if not leases.acquire(self.store, lock, self.worker_id, ENVIRONMENT_LEASE_SECONDS):
            return EvictionResult(EvictionOutcome.BUSY)
        try:
            result, request = self._evict_locked(environment_id, reason)
        finally:
            leases.release(self.store, lock)
        if result.outcome is EvictionOutcome.EVICTED:
            self._restart_requests(environment_id, request)
        return result

    def _evict_locked(
        self, environment_id: str, reason: str
    ) -> tuple[EvictionResult, BuildRequest | None]:
        record = builds.load_record(self.store, environment_id)
        if record is None or record.status is EnvironmentStatus.EVICTED:
            return EvictionResult(EvictionOutcome.NOT_CACHED), None
        # Holding the build lock means no build runs, whatever status the record shows.
        occupancy = usage.occupancy(self.store, environment_id, remove_stale=True)
        if occupancy.in_use:
            return EvictionResult(EvictionOutcome.IN_USE, occupancy), None
        evicted = EvictedEnvironment(environment_id, reason, record.store_paths,
                                     _closure_of(record.store_paths))
        request = builds.load_request(self.store, environment_id)
        self.store.delete(keys.build_result(environment_id))
        self.store.delete(keys.build_request(environment_id))
        remove_roots(usage.environment_roots(self.settings, environment_id))
        builds.update_record(self.store, environment_id, _mark_evicted)
        logger.info("evicted environment %s (%s; last active %s): removed the GC roots of %s",
                    environment_id, reason, record.last_activity().isoformat(),
                    " ".join(record.store_paths) or "no store paths")
        return EvictionResult(EvictionOutcome.EVICTED, occupancy, evicted), request

    def collect(self, evicted: list[EvictedEnvironment], trigger: str) -> GarbageReport:
        """Run nix-store --gc after evictions, and log what each eviction freed."""
        garbage = collect_garbage()
        measured = sorted({path for environment in evicted for path in environment.closure})
        deleted = set(invalid_paths(measured))
        for environment in evicted:
            environment.freed_bytes = sum(
                size for path, size in environment.closure.items() if path in deleted
            )
            logger.info("environment %s (%s): the collection freed %d of the %d bytes of its "
                        "closure", environment.environment_id, environment.reason,
                        environment.freed_bytes, sum(environment.closure.values()))
        logger.info("%s: nix-store --gc deleted %d store paths (Nix reports %d bytes freed)",
                    trigger, garbage.deleted_paths, garbage.freed_bytes)
        return garbage

    def _restart_requests(self, environment_id: str, request: BuildRequest | None) -> None:
        """Make sure a build request written during the eviction reaches a builder.

        A builder that got the request's event while eviction held the build lock gave
        up, so the request is written again for a new event. A submission that saw the
        old request just before it was deleted wrote a waiting marker but no request, so
        the deleted request is written again with the next generation.
        """
        key = keys.build_request(environment_id)
        stored = self.store.get(key)
        try:
            if stored is not None:
                logger.info("environment %s was requested during its eviction; "
                            "restarting its build", environment_id)
                self.store.put(key, stored.body, if_match=stored.etag)
            elif request is not None and usage.occupancy(self.store, environment_id).queued:
                logger.info("environment %s has queued submissions after its eviction; "
                            "requesting a rebuild", environment_id)
                renewed = request.model_copy(
                    update={"generation": request.generation + 1, "requested_at": utc_now()}
                )
                builds.update_record(self.store, environment_id, builds.mark_requested)
                self.store.put(key, renewed.model_dump(mode="json"), create_only=True)
        except PreconditionFailed:
            # Another writer changed the request, and its write sent an event of its own.
            pass

    def _evict_to(self, budget: int, trigger: str) -> PassReport:
        records = sorted(self._built_records(), key=EnvironmentRecord.last_activity)
        closures = self._closures(records)
        total = _union_size(closures.values())
        report = PassReport(trigger, cache_bytes_before=total, cache_bytes_after=total)
        if total <= budget:
            logger.debug("eviction pass (%s): cache of %d bytes fits the budget of %d bytes",
                         trigger, total, budget)
            return report
        logger.info("eviction pass (%s): cache of %d bytes exceeds the budget of %d bytes",
                    trigger, total, budget)
        for record in records:
            if total <= budget:
                break
            reason = f"LRU eviction: cache of {total} bytes exceeds {budget} bytes"
            result = self.evict(record.id, reason)
            if result.evicted is None:
                logger.info("environment %s not evicted: %s", record.id, result.outcome.value)
                continue
            report.evicted.append(result.evicted)
            closures.pop(record.id, None)
            total = _union_size(closures.values())
        report.cache_bytes_after = total
        if report.evicted:
            report.garbage = self.collect(report.evicted, f"eviction pass ({trigger})")
        if total > budget:
            logger.warning("eviction pass (%s): cache of %d bytes still exceeds the budget of "
                           "%d bytes; the rest is in use", trigger, total, budget)
        return report

    def _built_records(self) -> list[EnvironmentRecord]:
        return [record for record in builds.list_records(self.store)
                if record.status is EnvironmentStatus.BUILT]

    def _closures(self, records: list[EnvironmentRecord]) -> dict[str, dict[str, int]]:
        """Return each environment's closure, path to NAR bytes, from the store."""
        return {record.id: _closure_of(record.store_paths) for record in records}

    def _remove_finished_submission_roots(self) -> None:
        """Remove GC roots that a worker left behind when it stopped after a final status.

        Roots of submissions unknown to this bucket are left alone.
        """
        folder = self.settings.nix_gcroots_dir / usage.SUBMISSION_ROOTS
        try:
            rooted_submissions = [entry.name for entry in folder.iterdir()]
        except FileNotFoundError:
            return
        for submission_id in rooted_submissions:
            if not keys.SUBMISSION_ID.match(submission_id):
                continue
            stored = self.store.get(keys.submission_state(submission_id))
            if stored is not None and SubmissionState.model_validate(stored.body).status.is_final:
                logger.warning("submission %s is final but still had GC roots; removing them",
                               submission_id)
                remove_roots(folder / submission_id)


def _union_size(closures: Iterable[dict[str, int]]) -> int:
    union: dict[str, int] = {}
    for closure in closures:
        union.update(closure)
    return sum(union.values())


def _closure_of(store_paths: list[str]) -> dict[str, int]:
    invalid = set(invalid_paths(store_paths))
    return closure_sizes([path for path in store_paths if path not in invalid])


def _mark_evicted(record: EnvironmentRecord) -> None:
    record.status = EnvironmentStatus.EVICTED
    record.evicted_at = utc_now()
