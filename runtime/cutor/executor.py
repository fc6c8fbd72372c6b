"""The executor: moves a submission from PENDING to a final status.

It runs twice per submission with a cutor.nix: when the submission is created (it asks
the cache builder for the environment, unless the cache has it) and when the build result
arrives (it runs the phases). Every entry is idempotent: events arrive at least once, and
a claim with a lease makes sure one worker at a time runs a submission.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from datetime import timedelta
from functools import cache

from cutor import builds, keys, leases
from cutor.builds import BuildRequest, BuildResult
from cutor.errors import CutorError, PreconditionFailed, SandboxError, StorageError
from cutor.models import PhaseResult, Status, SubmissionRecord, utc_now
from cutor.nix import environment_id
from cutor.phases import PhaseRunner
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.submissions import AlreadyFinal, StateHandle, SubmissionStore

logger = logging.getLogger(__name__)


@cache
def nix_version() -> str:
    try:
        completed = subprocess.run(
            ["nix", "--version"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as error:
        message = f"cannot read the Nix version ('nix --version' failed: {error})"
        raise CutorError(message) from error
    return completed.stdout.strip()


def environment_id_of(record: SubmissionRecord, settings: Settings) -> str | None:
    text = record.request.cutor_nix
    if text is None:
        return None
    return environment_id(text, nix_version(), settings.nix_path)


class Executor:
    def __init__(
        self, settings: Settings, store: ObjectStore,
        phase_runner_factory: Callable[[Settings], PhaseRunner] = PhaseRunner,
    ) -> None:
        self.settings = settings
        self.store = store
        self.submissions = SubmissionStore(store, settings)
        self.phase_runner = phase_runner_factory(settings)
        self.worker_id = settings.worker_name()

    def on_submission_created(self, submission_id: str) -> None:
        record = self.submissions.load_record(submission_id)
        handle = self.submissions.load_state(submission_id)
        if record is None or handle is None:
            logger.warning("submission %s has no request or no state; ignoring", submission_id)
            return
        if handle.state.status.is_final:
            return
        environment_id = environment_id_of(record, self.settings)
        if environment_id is None:
            self.run_submission(record, None)
            return
        build = builds.load_result(self.store, environment_id)
        if build is not None and not self._failure_expired(build):
            self.run_submission(record, build)
            return
        self._request_build(record, environment_id, build)

    def _failure_expired(self, build: BuildResult) -> bool:
        if build.ok:
            return False
        age = utc_now() - build.finished_at
        return age > timedelta(seconds=self.settings.failed_build_ttl)

    def _request_build(
        self, record: SubmissionRecord, environment_id: str, previous: BuildResult | None
    ) -> None:
        self.store.put(keys.waiting(environment_id, record.id), {"submission_id": record.id})
        generation = previous.generation + 1 if previous is not None else 1
        request = BuildRequest(
            environment_id=environment_id,
            cutor_nix=record.request.cutor_nix or "",
            limits=record.limits.dependencies,
            requested_at=utc_now(),
            generation=generation,
        )
        existing = builds.load_request(self.store, environment_id)
        if existing is None or existing.generation < generation:
            logger.info("submission %s requests build of environment %s (generation %d)",
                        record.id, environment_id, generation)
            try:
                self.store.put(keys.build_request(environment_id), request.model_dump(mode="json"),
                               create_only=existing is None)
            except PreconditionFailed:
                logger.info("environment %s was requested concurrently", environment_id)
        # The build may have finished between the first look and the waiting marker, in
        # which case no build event will name this submission again.
        build = builds.load_result(self.store, environment_id)
        if build is not None and build.generation >= generation:
            self.on_build_finished(environment_id)

    def on_build_finished(self, environment_id: str) -> None:
        build = builds.load_result(self.store, environment_id)
        if build is None:
            return
        for key in list(self.store.list_keys(keys.waiting_prefix(environment_id))):
            submission_id = key.rsplit("/", 1)[1]
            record = self.submissions.load_record(submission_id)
            if record is not None:
                self.run_submission(record, build)
            self.store.delete(key)

    def run_submission(self, record: SubmissionRecord, build: BuildResult | None) -> None:
        claim_key = keys.submission_claim(record.id)
        wall = record.limits.compile.wall_time + record.limits.run.wall_time
        seconds = wall + self.settings.claim_lease
        if not leases.acquire(self.store, claim_key, self.worker_id, seconds):
            logger.info("submission %s is claimed by another worker", record.id)
            return
        try:
            # Read after claiming: a worker that finished and released the claim in
            # between has already written the final status.
            handle = self.submissions.load_state(record.id)
            if handle is None or handle.state.status.is_final:
                return
            self._run_claimed(record, build, handle)
        finally:
            leases.release(self.store, claim_key)

    def _run_claimed(
        self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle
    ) -> None:
        try:
            self._run_phases(record, build, handle)
        except AlreadyFinal as finished:
            logger.info("submission %s: %s", record.id, finished)
        except (SandboxError, StorageError, CutorError) as error:
            logger.error("submission %s failed on the platform: %s", record.id, error)
            self._fail(handle, f"platform error: {error}")
        except Exception:
            logger.exception("submission %s: unexpected error", record.id)
            self._fail(handle, "platform error: unexpected failure; see the worker's log")

    def _fail(self, handle: StateHandle, message: str) -> None:
        try:
            handle.update(status=Status.INTERNAL_ERROR, error=message)
        except (AlreadyFinal, StorageError) as error:
            logger.error("submission %s: could not record INTERNAL_ERROR: %s",
                         handle.state.id, error)

    def _run_phases(
        self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle
    ) -> None:
        if build is not None and not build.ok:
            status = Status.INTERNAL_ERROR if build.platform_error else Status.DEPENDENCIES_FAILED
            handle.update(status=status, dependencies=build.dependencies,
                          error=build.platform_error)
            return
        dependencies = build.dependencies if build is not None else PhaseResult()
        handle.update(status=Status.DEPENDENCIES_INSTALLED, dependencies=dependencies)
        if build is not None:
            builds.record_use(self.store, build.environment_id)
        self.phase_runner.run(record, build, handle)
