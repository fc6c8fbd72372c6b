"""At-least-once delivery: duplicate events, missed events, and a worker that died.

These tests use their own bucket on the session's MinIO, with no notifications, and call
the functions or a fresh runner directly, so that they control every event.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import pytest
from cutor import keys, leases
from cutor.builds import BuildResult
from cutor.executor import Executor
from cutor.models import Status, SubmissionRecord, SubmissionRequest
from cutor.phases import PhaseRunner
from cutor.runner import LocalRunner
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.submissions import StateHandle, SubmissionStore

from tests.conftest import Stack, free_address

REQUEST = SubmissionRequest.model_validate(
    {"files": [{"name": "run.sh", "content": "sleep 1; cat /proc/sys/kernel/random/uuid"}]}
)


@dataclass
class Quiet:
    settings: Settings
    store: ObjectStore
    submissions: SubmissionStore


@pytest.fixture
def quiet(stack: Stack) -> Quiet:
    settings = stack.settings.model_copy(update={
        "bucket": f"quiet-{secrets.token_hex(4)}",
        "worker_id": f"quiet-{secrets.token_hex(4)}",
        "webhook_address": free_address(),
        "sweep_interval": 0.5,
    })
    store = ObjectStore(settings)
    store.ensure_bucket()
    return Quiet(settings, store, SubmissionStore(store, settings))


class CountingRunner(PhaseRunner):
    runs = 0
    lock = threading.Lock()

    def run(
        self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle
    ) -> None:
        with CountingRunner.lock:
            CountingRunner.runs += 1
        super().run(record, build, handle)


def final_state(quiet: Quiet, submission_id: str, timeout: float = 60) -> Status:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handle = quiet.submissions.load_state(submission_id)
        assert handle is not None
        if handle.state.status.is_final:
            return handle.state.status
        time.sleep(0.1)
    raise AssertionError(f"submission {submission_id} did not finish in {timeout}s")


def test_duplicate_events_run_once(quiet: Quiet) -> None:
    CountingRunner.runs = 0
    executor = Executor(quiet.settings, quiet.store, phase_runner_factory=CountingRunner)
    state = quiet.submissions.create(REQUEST)
    threads = [threading.Thread(target=executor.on_submission_created, args=(state.id,))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    executor.on_submission_created(state.id)
    assert CountingRunner.runs == 1
    assert final_state(quiet, state.id) is Status.FINISHED


def test_runner_start_picks_up_missed_work(quiet: Quiet) -> None:
    missed = [quiet.submissions.create(REQUEST).id for _ in range(2)]
    runner = LocalRunner(quiet.settings, quiet.store)
    runner.start()
    try:
        for submission_id in missed:
            assert final_state(quiet, submission_id) is Status.FINISHED
        assert list(quiet.store.list_keys(keys.PENDING_PREFIX)) == []
    finally:
        runner.stop()


def test_dead_worker_claim_is_taken_over(quiet: Quiet) -> None:
    state = quiet.submissions.create(REQUEST)
    # A worker claimed the submission and died: its lease ran out ten seconds ago.
    expired = {"holder": "dead-worker", "expires_at": time.time() - 10}
    quiet.store.put(keys.submission_claim(state.id), expired)
    Executor(quiet.settings, quiet.store).on_submission_created(state.id)
    assert final_state(quiet, state.id, timeout=5) is Status.FINISHED


def test_live_claim_blocks_second_worker(quiet: Quiet) -> None:
    state = quiet.submissions.create(REQUEST)
    assert leases.acquire(quiet.store, keys.submission_claim(state.id), "other-worker", 300)
    Executor(quiet.settings, quiet.store).on_submission_created(state.id)
    handle = quiet.submissions.load_state(state.id)
    assert handle is not None
    assert handle.state.status is Status.PENDING


def test_final_status_is_never_overwritten(quiet: Quiet) -> None:
    state = quiet.submissions.create(REQUEST)
    executor = Executor(quiet.settings, quiet.store)
    executor.on_submission_created(state.id)
    first = quiet.submissions.load_state(state.id)
    assert first is not None
    assert first.state.status is Status.FINISHED
    executor.on_submission_created(state.id)
    again = quiet.submissions.load_state(state.id)
    assert again is not None
    assert again.state.run == first.state.run
    assert again.etag == first.etag


def test_missing_request_object_ends_in_internal_error(quiet: Quiet) -> None:
    state = quiet.submissions.create(REQUEST)
    quiet.store.delete(keys.submission_request(state.id))
    handle = quiet.submissions.load_state(state.id)
    assert handle is not None
    created = handle.state.created_at.replace(year=2020)
    old = handle.state.model_copy(update={"created_at": created})
    quiet.store.put(keys.submission_state(state.id), old.model_dump(mode="json"))
    Executor(quiet.settings, quiet.store).on_submission_created(state.id)
    final = quiet.submissions.load_state(state.id)
    assert final is not None
    assert final.state.status is Status.INTERNAL_ERROR
    assert "not stored completely" in (final.state.error or "")
