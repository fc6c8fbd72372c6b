"""Object keys of the bucket, and the routing of created objects to functions.

submissions/{id}/request.json   the immutable submission; its creation starts the executor
submissions/{id}/state.json     status and phase results, written after every phase
submissions/{id}/claim.json     which worker runs the submission, until when
pending/{id}                    index of submissions not yet final, for the sweep
active/{key id}/{id}            index of a key's unfinished submissions, for its limit
apikeys/{key id}.json           an API key: its name, limits and the SHA-256 of its secret
environments/{env}/request.json a build request; its creation starts the cache builder
environments/{env}/build.json   a build result; its creation brings the executor back
environments/{env}/lock.json    which worker builds the environment, until when
environments/{env}/waiting/{id} a submission waiting for that build (queued)
environments/{env}/users/{id}   a submission running in that environment, until when
environments/{env}/record.json  the cached environment, for listings and eviction
cache/eviction-lock.json        which worker runs an eviction pass, until when
listings/{id}/request.json      a listing request; its creation starts the cache manager
listings/{id}/response.json     the cache manager's answer to it
deletions/{id}/request.json     a deletion request; its creation starts the cache manager
deletions/{id}/response.json    the cache manager's answer to it
"""

from __future__ import annotations

import re
from enum import Enum

SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")
API_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
ENVIRONMENT_ID = re.compile(r"^[0-9a-f]{64}$")


def submission_request(submission_id: str) -> str:
    return f"submissions/{submission_id}/request.json"


def submission_state(submission_id: str) -> str:
    return f"submissions/{submission_id}/state.json"


def submission_claim(submission_id: str) -> str:
    return f"submissions/{submission_id}/claim.json"


def pending(submission_id: str) -> str:
    return f"pending/{submission_id}"


PENDING_PREFIX = "pending/"
API_KEYS_PREFIX = "apikeys/"


def api_key(key_id: str) -> str:
    return f"{API_KEYS_PREFIX}{key_id}.json"


def active_prefix(owner: str) -> str:
    return f"active/{owner}/"


def active(owner: str, submission_id: str) -> str:
    return f"{active_prefix(owner)}{submission_id}"
ENVIRONMENTS_PREFIX = "environments/"


def build_request(environment_id: str) -> str:
    return f"environments/{environment_id}/request.json"


def build_result(environment_id: str) -> str:
    return f"environments/{environment_id}/build.json"


def build_lock(environment_id: str) -> str:
    return f"environments/{environment_id}/lock.json"


def waiting_prefix(environment_id: str) -> str:
    return f"environments/{environment_id}/waiting/"


def waiting(environment_id: str, submission_id: str) -> str:
    return f"{waiting_prefix(environment_id)}{submission_id}"


def users_prefix(environment_id: str) -> str:
    return f"environments/{environment_id}/users/"


def user(environment_id: str, submission_id: str) -> str:
    return f"{users_prefix(environment_id)}{submission_id}"


def environment_record(environment_id: str) -> str:
    return f"environments/{environment_id}/record.json"


EVICTION_LOCK = "cache/eviction-lock.json"
LISTINGS_PREFIX = "listings/"
DELETIONS_PREFIX = "deletions/"


def listing_request(request_id: str) -> str:
    return f"{LISTINGS_PREFIX}{request_id}/request.json"


def listing_response(request_id: str) -> str:
    return f"{LISTINGS_PREFIX}{request_id}/response.json"


def deletion_request(request_id: str) -> str:
    return f"{DELETIONS_PREFIX}{request_id}/request.json"


def deletion_response(request_id: str) -> str:
    return f"{DELETIONS_PREFIX}{request_id}/response.json"


class Route(Enum):
    SUBMISSION_CREATED = "submission-created"
    BUILD_REQUESTED = "build-requested"
    BUILD_FINISHED = "build-finished"
    LISTING_REQUESTED = "listing-requested"
    DELETION_REQUESTED = "deletion-requested"


_ROUTES = [
    (re.compile(r"^submissions/([0-9a-f]{32})/request\.json$"), Route.SUBMISSION_CREATED),
    (re.compile(r"^environments/([0-9a-f]{64})/request\.json$"), Route.BUILD_REQUESTED),
    (re.compile(r"^environments/([0-9a-f]{64})/build\.json$"), Route.BUILD_FINISHED),
    (re.compile(r"^listings/([0-9a-f]{32})/request\.json$"), Route.LISTING_REQUESTED),
    (re.compile(r"^deletions/([0-9a-f]{32})/request\.json$"), Route.DELETION_REQUESTED),
]


def route(key: str) -> tuple[Route, str] | None:
    """Return which step a created object starts and the id in its key, or None."""
    for pattern, kind in _ROUTES:
        match = pattern.match(key)
        if match:
            return kind, match.group(1)
    return None
