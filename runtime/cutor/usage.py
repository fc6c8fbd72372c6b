"""Environment use by submissions: markers in the bucket and GC roots on the host.

A submission waiting for a build has a waiting marker (it is queued). A submission that
runs in a built environment has a user marker and GC roots of its own under
``<gcroots>/submissions/<submission id>``. Eviction reads the markers and skips an
environment in use. The submission's own roots are what keeps its store paths alive:
even if the environment's roots go, Nix's garbage collector keeps every path that a
root reaches, and so cannot delete a store path that a running submission uses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from cutor import keys
from cutor.models import SubmissionState
from cutor.settings import Settings
from cutor.storage import ObjectStore

logger = logging.getLogger(__name__)

SUBMISSION_ROOTS = "submissions"


class WaitingMarker(BaseModel):
    submission_id: str
    # The build generation the submission waits for; an older result does not apply to it.
    generation: int = 1


class UserMarker(BaseModel):
    submission_id: str
    worker: str
    # A time.time() value; past it the marker belongs to a worker that stopped.
    expires_at: float


@dataclass(frozen=True)
class Occupancy:
    """The submissions that use an environment now."""

    running: list[str]
    queued: list[str]

    @property
    def in_use(self) -> bool:
        return bool(self.running or self.queued)


def environment_roots(settings: Settings, environment_id: str) -> Path:
    return settings.nix_gcroots_dir / environment_id


def submission_roots(settings: Settings, submission_id: str) -> Path:
    return settings.nix_gcroots_dir / SUBMISSION_ROOTS / submission_id


def mark_waiting(store: ObjectStore, environment_id: str, submission_id: str,
                 generation: int) -> None:
    marker = WaitingMarker(submission_id=submission_id, generation=generation)
    store.put(keys.waiting(environment_id, submission_id), marker.model_dump())


def waiting_generation(store: ObjectStore, environment_id: str, submission_id: str) -> int | None:
    stored = store.get(keys.waiting(environment_id, submission_id))
    return None if stored is None else WaitingMarker.model_validate(stored.body).generation


def acquire(
    store: ObjectStore, settings: Settings, environment_id: str, store_paths: list[str],
    *, submission_id: str, seconds: float,
) -> bool:
    """Mark the submission as a user of the environment and root its store paths.

    Return False, with nothing left behind, when a store path is gone because the
    environment was evicted and collected since it was built. The marker is written
    before the roots, so an eviction that misses the marker finds the paths rooted or
    makes this return False. Raise NixError or StorageError when the platform fails.
    """
    from cutor.nix.store import add_roots

    marker = UserMarker(submission_id=submission_id, worker=settings.worker_name(),
                        expires_at=time.time() + seconds)
    store.put(keys.user(environment_id, submission_id), marker.model_dump())
    try:
        rooted = add_roots(submission_roots(settings, submission_id), store_paths)
    except BaseException:
        store.delete(keys.user(environment_id, submission_id))
        raise
    if not rooted:
        # NOTE: this assumes one worker host. With several, a build result in the bucket
        # names store paths that exist only on the host that built them, so another host
        # lands here and requests a rebuild each time.
        store.delete(keys.user(environment_id, submission_id))
        return False
    # The submission now counts as running, so it need not count as queued.
    store.delete(keys.waiting(environment_id, submission_id))
    logger.info("submission %s rooted the store paths of environment %s", submission_id,
                environment_id)
    return True


def release(store: ObjectStore, settings: Settings, environment_id: str,
            submission_id: str) -> None:
    """Remove the submission's GC roots and then its user marker."""
    from cutor.nix.store import remove_roots

    remove_roots(submission_roots(settings, submission_id))
    store.delete(keys.user(environment_id, submission_id))
    logger.info("submission %s released environment %s", submission_id, environment_id)


def occupancy(store: ObjectStore, environment_id: str, *, remove_stale: bool = False) -> Occupancy:
    """Return the running and queued submissions of an environment.

    A user marker past its expiry, and a waiting marker of a submission that is final or
    missing, are stale: they are ignored, and deleted when ``remove_stale`` is set.
    """
    now = time.time()
    running: list[str] = []
    for key in store.list_keys(keys.users_prefix(environment_id)):
        stored = store.get(key)
        if stored is None:
            continue
        marker = UserMarker.model_validate(stored.body)
        if marker.expires_at > now:
            running.append(marker.submission_id)
        elif remove_stale:
            logger.warning("environment %s: removing expired user marker of submission %s "
                           "(worker %s)", environment_id, marker.submission_id, marker.worker)
            store.delete(key)
    queued: list[str] = []
    for key in store.list_keys(keys.waiting_prefix(environment_id)):
        submission_id = key.rsplit("/", 1)[1]
        if _is_unfinished(store, submission_id):
            queued.append(submission_id)
        elif remove_stale:
            logger.info("environment %s: removing waiting marker of finished submission %s",
                        environment_id, submission_id)
            store.delete(key)
    return Occupancy(running=sorted(running), queued=sorted(queued))


def _is_unfinished(store: ObjectStore, submission_id: str) -> bool:
    stored = store.get(keys.submission_state(submission_id))
    if stored is None:
        return False
    return not SubmissionState.model_validate(stored.body).status.is_final
