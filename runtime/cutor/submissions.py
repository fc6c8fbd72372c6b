"""Submissions in the bucket: creating them, and lost-update-free status writes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cutor import keys
from cutor.errors import CutorError, InvalidRequest, PreconditionFailed
from cutor.limits import PhaseLimitTable
from cutor.models import (
    COMPILE_SCRIPT,
    PhaseResult,
    Status,
    SubmissionRecord,
    SubmissionRequest,
    SubmissionState,
    utc_now,
)
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)


class AlreadyFinal(CutorError):
    """Another writer already gave the submission a final status; this writer must stop."""


class SubmissionStore:
    def __init__(
        self, store: ObjectStore, settings: Settings, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def create(self, request: SubmissionRequest, owner: str | None = None) -> SubmissionState:
        """Store a new submission. The request object is written last: its creation event
        starts the executor, and by then the state and the pending index exist."""
        limits = self.settings.default_limits.merged(request.limits)
        limits.check_within(self.settings.maximum_limits, "limits")
        _check_workspace_fits(request, limits)
        now = self.clock()
        submission_id = uuid.uuid4().hex
        record = SubmissionRecord(
            id=submission_id, created_at=now, request=request, limits=limits, owner=owner
        )
        state = SubmissionState(id=submission_id, created_at=now, updated_at=now, owner=owner)
        self.store.put(keys.submission_state(submission_id), _dump(state), create_only=True)
        self.store.put(keys.pending(submission_id), {"created_at": now.isoformat()})
        if owner is not None:
            self.store.put(keys.active(owner, submission_id), {})
        self.store.put(keys.submission_request(submission_id), _dump(record), create_only=True)
        logger.info("created submission %s with %d files", submission_id, len(request.files))
        return state

    def load_record(self, submission_id: str) -> SubmissionRecord | None:
        stored = self.store.get(keys.submission_request(submission_id))
        return None if stored is None else SubmissionRecord.model_validate(stored.body)

    def load_state(self, submission_id: str) -> StateHandle | None:
        stored = self.store.get(keys.submission_state(submission_id))
        if stored is None:
            return None
        state = SubmissionState.model_validate(stored.body)
        return StateHandle(self, state, stored.etag)


class StateHandle:
    """A submission's state plus the ETag it was read at; every save is conditional."""

    def __init__(self, owner: SubmissionStore, state: SubmissionState, etag: str) -> None:
        self.owner = owner
        self.state = state
        self.etag = etag

    def update(
        self, *, status: Status | None = None, error: str | None = None,
        phases: dict[str, PhaseResult] | None = None, **named: PhaseResult | None,
    ) -> None:
        """Apply changes and save them; raise AlreadyFinal if another writer finished it."""
        for _ in range(10):
            if self.state.status.is_final:
                raise AlreadyFinal(f"submission {self.state.id} is already {self.state.status}")
            changes = _changes(status, error, {**named, **(phases or {})})
            changed = self.state.model_copy(update=changes)
            changed.updated_at = self.owner.clock()
            try:
                self.etag = self.owner.store.put(
                    keys.submission_state(changed.id), _dump(changed), if_match=self.etag
                )
            except PreconditionFailed:
                logger.info("state of submission %s changed concurrently; reloading",
                            self.state.id)
                self._reload()
                continue
            self.state = changed
            if changed.status.is_final:
                self.owner.store.delete(keys.pending(changed.id))
                if changed.owner is not None:
                    self.owner.store.delete(keys.active(changed.owner, changed.id))
                logger.info("submission %s is %s", changed.id, changed.status)
            return
        raise PreconditionFailed(f"state of submission {self.state.id} kept changing")

    def _reload(self) -> None:
        stored = self.owner.store.get(keys.submission_state(self.state.id))
        if stored is None:
            raise AlreadyFinal(f"state of submission {self.state.id} disappeared")
        self.state = SubmissionState.model_validate(stored.body)
        self.etag = stored.etag


def _check_workspace_fits(request: SubmissionRequest, limits: PhaseLimitTable) -> None:
    # The files are written into /work before any phase runs, so they must fit the
    # tmpfs that the sandbox gets: the larger disk limit of the phases that run.
    disk = limits.run.disk
    if request.file(COMPILE_SCRIPT) is not None:
        disk = max(disk, limits.compile.disk)
    size = request.workspace_bytes()
    if size > disk:
        raise InvalidRequest(
            "files", f"the files add up to {size} bytes, more than the {disk}-byte disk "
            "limit of the workspace; raise limits.run.disk or send smaller files",
        )


def _changes(
    status: Status | None, error: str | None, phases: dict[str, PhaseResult | None]
) -> dict[str, Any]:
    changes: dict[str, Any] = dict(phases)
    if status is not None:
        changes["status"] = status
    if error is not None:
        changes["error"] = error
    return changes


def _dump(model: SubmissionState | SubmissionRecord) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped
