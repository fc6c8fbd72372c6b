"""Object keys of the bucket, and the routing of created objects to functions.

submissions/{id}/request.json   the immutable submission; its creation starts the executor
submissions/{id}/state.json     status and phase results, written after every phase
submissions/{id}/claim.json     which worker runs the submission, until when
pending/{id}                    index of submissions not yet final, for the sweep
environments/{env}/request.json a build request; its creation starts the cache builder
environments/{env}/build.json   a build result; its creation brings the executor back
environments/{env}/lock.json    which worker builds the environment, until when
environments/{env}/waiting/{id} a submission waiting for that build
environments/{env}/record.json  the cached environment, for listings and eviction
"""

from __future__ import annotations

import re
from enum import Enum

SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")
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


def environment_record(environment_id: str) -> str:
    return f"environments/{environment_id}/record.json"


class Route(Enum):
    SUBMISSION_CREATED = "submission-created"
    BUILD_REQUESTED = "build-requested"
    BUILD_FINISHED = "build-finished"


_ROUTES = [
    (re.compile(r"^submissions/([0-9a-f]{32})/request\.json$"), Route.SUBMISSION_CREATED),
    (re.compile(r"^environments/([0-9a-f]{64})/request\.json$"), Route.BUILD_REQUESTED),
    (re.compile(r"^environments/([0-9a-f]{64})/build\.json$"), Route.BUILD_FINISHED),
]


def route(key: str) -> tuple[Route, str] | None:
    """Return which step a created object starts and the id in its key, or None."""
    for pattern, kind in _ROUTES:
        match = pattern.match(key)
        if match:
            return kind, match.group(1)
    return None
