"""The executor: moves a submission from PENDING to a final status.

It runs twice per submission with a cutor.nix: when the submission is created (it
requests the environment from the cache builder, unless the cache has it) and when the
build result arrives (it runs the phases). Every entry is idempotent, because events
arrive at least once, and a claim with a lease makes sure one worker at a time runs a
submission.

A submission waits for a build through a waiting marker that names the build generation
it needs. The marker is written before the build result is read again, and the result
is written before the waiting markers are listed, so every waiting submission is either
seen by the listing or sees the result itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from cutor import builds, keys, leases, usage
from cutor.builds import BuildRequest, BuildResult
from cutor.errors import CutorError, PreconditionFailed, SandboxError, StorageError
from cutor.models import PhaseResult, Status, SubmissionRecord, utc_now
from cutor.nix import Environment, environment_id
from cutor.nix.client import nix_version
from cutor.phases import PhaseRunner
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.submissions import AlreadyFinal, StateHandle, SubmissionStore

logger = logging.getLogger(__name__)

# Seconds after which a submission with a state but no request object is failed: the API
# writes both within milliseconds, so by then the request will never come.
INCOMPLETE_GRACE_SECONDS = 60.0


def environment_id_of(record: SubmissionRecord, settings: Settings) -> str | None:
    text = record.request.cutor_nix
    if text is None:
        return None
    return environment_id(text, nix_version(), settings.nix_path)


class Executor:
    def __init__(
        self, settings: Settings, store: ObjectStore,
        phase_runner_factory: Callable[[Settings], PhaseRunner] = PhaseRunner,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.submissions = SubmissionStore(store, settings)
        self.phase_runner = phase_runner_factory(settings)
        self.worker_id = settings.worker_name()
        # Starts a task in another invocation, so the submissions that waited for one
        # build run side by side. Without one, they run one after another.
        self.spawn: Callable[[Callable[[], None]], None] = spawn or _run_now

    def on_submission_created(self, submission_id: str) -> None:
        record = self.submissions.load_record(submission_id)
        handle = self.submissions.load_state(submission_id)
        if record is None or handle is None:
            self._fail_incomplete(submission_id, handle)
            return
        if handle.state.status.is_final:
            return
        environment_id = environment_id_of(record, self.settings)
        if environment_id is None:
            self.run_submission(record, None)
            return
        build = builds.load_result(self.store, environment_id)
        reusable = build is not None and build.failure_applies_to(record.limits.dependencies)
        if build is not None and reusable and (
            not self._failure_expired(build) or self._waited_for(build, record.id)
        ):
            self.run_submission(record, build)
            return
        self._request_build(record, environment_id, build)

    def _waited_for(self, build: BuildResult, submission_id: str) -> bool:
        """Return True when the submission waited for this build, so the result applies to it.

        A failure that expired while the submission waited for it (and a sweep brought
        the submission back) must not start yet another build.
        """
        awaited = usage.waiting_generation(self.store, build.environment_id, submission_id)
        return awaited is not None and awaited <= build.generation

    def _fail_incomplete(self, submission_id: str, handle: StateHandle | None) -> None:
        """End a submission whose request object was never written (the API died midway)."""
        if handle is None or handle.state.status.is_final:
            logger.warning("submission %s has no state; ignoring its event", submission_id)
            return
        age = (utc_now() - handle.state.created_at).total_seconds()
        if age < INCOMPLETE_GRACE_SECONDS:
            return
        logger.error("submission %s has no request object after %.0fs", submission_id, age)
        self._fail(handle, "platform error: the submission was not stored completely; "
                           "submit it again")

    def _failure_expired(self, build: BuildResult) -> bool:
        if build.ok:
            return False
        age = utc_now() - build.finished_at
        return age > timedelta(seconds=self.settings.failed_build_ttl)

    def _request_build(
        self, record: SubmissionRecord, environment_id: str, previous: BuildResult | None
    ) -> None:
        generation = previous.generation + 1 if previous is not None else 1
        usage.mark_waiting(self.store, environment_id, record.id, generation)
        existing = builds.load_request(self.store, environment_id)
        if existing is None or existing.generation < generation:
            self._write_build_request(record, environment_id, generation, existing)
        # The build may have finished between the first look and the waiting marker, in
        # which case no build event will name this submission again.
        build = builds.load_result(self.store, environment_id)
        if build is not None and build.generation >= generation:
            self.on_build_finished(environment_id)

    def _write_build_request(
        self, record: SubmissionRecord, environment_id: str, generation: int,
        existing: BuildRequest | None,
    ) -> None:
        request = BuildRequest(
            environment_id=environment_id,
            cutor_nix=record.request.cutor_nix or "",
            limits=record.limits.dependencies,
            requested_at=utc_now(),
            generation=generation,
        )
        logger.info("submission %s requests build of environment %s (generation %d)",
                    record.id, environment_id, generation)
        # The record changes first: the request's event starts the builder, which then
        # sets the record to building.
        builds.update_record(self.store, environment_id, builds.mark_requested)
        try:
            self.store.put(keys.build_request(environment_id), request.model_dump(mode="json"),
                           create_only=existing is None)
        except PreconditionFailed:
            logger.info("environment %s was requested concurrently", environment_id)

    def on_build_finished(self, environment_id: str) -> None:
        """Start every submission that waits for this build generation or an older one."""
        build = builds.load_result(self.store, environment_id)
        if build is None:
            return
        for key in list(self.store.list_keys(keys.waiting_prefix(environment_id))):
            submission_id = key.rsplit("/", 1)[1]
            awaited = usage.waiting_generation(self.store, environment_id, submission_id)
            # A marker for a newer generation waits for a rebuild that has not finished.
            if awaited is not None and awaited <= build.generation:
                self.spawn(partial(self._run_waiting, submission_id, build))

    def _run_waiting(self, submission_id: str, build: BuildResult) -> None:
        try:
            self._start_waiting(submission_id, build)
        except CutorError as error:
            # The submission stays pending, and the next sweep brings it back.
            logger.error("submission %s: starting it after the build of environment %s "
                         "failed: %s", submission_id, build.environment_id, error)

    def _start_waiting(self, submission_id: str, build: BuildResult) -> None:
        record = self.submissions.load_record(submission_id)
        if record is None:
            logger.warning("submission %s waits for environment %s but has no request; "
                           "removing its waiting marker", submission_id, build.environment_id)
            self.store.delete(keys.waiting(build.environment_id, submission_id))
            return
        self.run_submission(record, build)

    def run_submission(self, record: SubmissionRecord, build: BuildResult | None) -> None:
        claim_key = keys.submission_claim(record.id)
        wall = record.limits.compile.wall_time + record.limits.run.wall_time
        seconds = wall + self.settings.claim_lease
        if not leases.acquire(self.store, claim_key, self.worker_id, seconds):
            logger.info("submission %s is claimed by another worker", record.id)
            return
        environment_gone = False
        try:
            # Read after claiming: a worker that finished and released the claim in
            # between has already written the final status.
            handle = self.submissions.load_state(record.id)
            if handle is None or handle.state.status.is_final:
                self._forget_waiting(record, build)
                return
            environment_gone = not self._run_claimed(record, build, handle, seconds)
        finally:
            leases.release(self.store, claim_key)
        if environment_gone and build is not None:
            # After releasing the claim, so that the rebuild's result can start this
            # submission in another invocation.
            logger.warning("submission %s: environment %s was evicted after its build; "
                           "requesting a rebuild", record.id, build.environment_id)
            self._request_build(record, build.environment_id, build)

    def _forget_waiting(self, record: SubmissionRecord, build: BuildResult | None) -> None:
        if build is not None:
            self.store.delete(keys.waiting(build.environment_id, record.id))

    def _run_claimed(
        self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle,
        seconds: float,
    ) -> bool:
        """Run the phases; return False when the environment's store paths are gone."""
        try:
            return self._run_phases(record, build, handle, seconds)
        except AlreadyFinal as finished:
            logger.info("submission %s: %s", record.id, finished)
        except (SandboxError, StorageError, CutorError) as error:
            logger.error("submission %s failed on the platform: %s", record.id, error)
            self._fail(handle, f"platform error: {error}")
        except Exception:
            logger.exception("submission %s: unexpected error", record.id)
            self._fail(handle, "platform error: unexpected failure; see the worker's log")
        self._forget_waiting(record, build)
        return True

    def _fail(self, handle: StateHandle, message: str) -> None:
        try:
            handle.update(status=Status.INTERNAL_ERROR, error=message)
        except (AlreadyFinal, StorageError) as error:
            logger.error("submission %s: could not record INTERNAL_ERROR: %s",
                         handle.state.id, error)

    def _run_phases(
        self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle,
        seconds: float,
    ) -> bool:
        if build is None:
            handle.update(status=Status.DEPENDENCIES_INSTALLED, dependencies=PhaseResult())
            self.phase_runner.run(record, None, handle)
            return True
        if not build.ok:
            status = Status.INTERNAL_ERROR if build.platform_error else Status.DEPENDENCIES_FAILED
            handle.update(status=status, dependencies=build.dependencies,
                          error=build.platform_error)
            self._forget_waiting(record, build)
            return True
        return self._run_in_environment(record, build, handle, seconds)

    def _run_in_environment(
        self, record: SubmissionRecord, build: BuildResult, handle: StateHandle, seconds: float
    ) -> bool:
        environment_id = build.environment_id
        store_paths = Environment.model_validate(build.environment).store_paths
        if not usage.acquire(self.store, self.settings, environment_id, store_paths,
                             submission_id=record.id, seconds=seconds):
            return False
        # PhaseRunner.run writes the final status before it returns. If anything raises
        # first, the roots still go here and the caller writes INTERNAL_ERROR.
        try:
            handle.update(status=Status.DEPENDENCIES_INSTALLED, dependencies=build.dependencies)
            builds.record_use(self.store, environment_id)
            self.phase_runner.run(record, build, handle)
        finally:
            usage.release(self.store, self.settings, environment_id, record.id)
        return True


def _run_now(task: Callable[[], None]) -> None:
    task()

