"""The HTTP API: thin Starlette handlers over the submission store."""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

import docker
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cutor import keys
from cutor.auth import (
    LOOPBACK_HOSTS,
    ApiKey,
    RateLimiter,
    TooManyRequests,
    Unauthorized,
    authenticate,
    check_concurrency,
)
from cutor.builds import load_record
from cutor.cache_requests import (
    DeletionOutcome,
    NoCacheManager,
    ask_for_deletion,
    ask_for_listing,
)
from cutor.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from cutor.models import SubmissionRequest
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.submissions import SubmissionStore

logger = logging.getLogger(__name__)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(None, f"request body of {declared} bytes exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(None, f"request body exceeds {limit} bytes")
    return bytes(body)


def parse_submission(body: bytes) -> SubmissionRequest:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError, bad UTF-8 and integers longer than Python's
        # 4300-digit conversion limit; RecursionError covers deeply nested arrays.
        message = str(error) or "nested too deeply"
        raise InvalidRequest(None, f"request body is not valid JSON: {message}") from None
    if not isinstance(document, dict):
        raise InvalidRequest(None, "request body must be a JSON object")
    try:
        return SubmissionRequest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(field, message) from None


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(name, f"{value!r} is not a boolean; use true or false")
    return value in ("true", "1")


def submission_id_from(request: Request) -> str:
    submission_id = str(request.path_params["submission_id"])
    if not keys.SUBMISSION_ID.match(submission_id):
        raise NotFound("id", f"no submission {submission_id!r}")
    return submission_id


def environment_id_from(request: Request) -> str:
    environment_id = str(request.path_params["environment_id"])
    if not keys.ENVIRONMENT_ID.match(environment_id):
        raise NotFound("id", f"no environment {environment_id!r}")
    return environment_id


def require_operator(key: ApiKey | None) -> None:
    """Reject a request whose API key is not an operator's; open mode has no keys to check."""
    if key is not None and not key.operator:
        raise Forbidden(None, f"API key {key.id} is not an operator key; deleting an "
                              "environment needs one ('cutor keys create --operator')")


def check_auth_mode(settings: Settings) -> None:
    if settings.auth_mode == "open" and settings.api_host not in LOOPBACK_HOSTS:
        raise RuntimeError(
            f"CUTOR_AUTH_MODE=open is allowed only on a loopback address, not on "
            f"{settings.api_host}; set CUTOR_API_HOST=127.0.0.1 or create API keys with "
            f"'cutor keys create'"
        )
    if settings.auth_mode == "open":
        logger.warning("open mode: the API checks no API keys; it listens on %s only",
                       settings.api_host)


def create_app(settings: Settings, store: ObjectStore) -> Starlette:
    check_auth_mode(settings)
    submissions = SubmissionStore(store, settings)
    limiter = RateLimiter()

    def authorize(request: Request) -> ApiKey | None:
        if settings.auth_mode == "open":
            return None
        key = authenticate(store, request.headers.get("authorization"))
        limiter.check(key)
        return key

    async def create_submission(request: Request) -> JSONResponse:
        key = authorize(request)
        body = await read_body(request, settings.max_request_bytes)
        submission = parse_submission(body)
        if key is not None:
            check_concurrency(store, key)
        state = submissions.create(submission, owner=key.id if key else None)
        return JSONResponse(
            {"id": state.id, "status": state.status.value},
            status_code=202,
            headers={"Location": f"/submissions/{state.id}"},
        )

    async def get_submission(request: Request) -> JSONResponse:
        key = authorize(request)
        raw = _flag(request, "base64")
        submission_id = submission_id_from(request)
        handle = submissions.load_state(submission_id)
        # Another key's submission is reported as missing, so ids cannot be probed.
        hidden = key is not None and not key.operator and handle is not None \
            and handle.state.owner != key.id
        if handle is None or hidden:
            raise NotFound("id", f"no submission {submission_id!r}")
        return JSONResponse(handle.state.to_json(raw_base64=raw))

    async def list_dependencies(request: Request) -> JSONResponse:
        authorize(request)
        listing = await ask_for_listing(store, None, settings.cache_request_timeout)
        return JSONResponse(listing.model_dump(mode="json"))

    async def get_dependency(request: Request) -> JSONResponse:
        authorize(request)
        environment_id = environment_id_from(request)
        if load_record(store, environment_id) is None:
            raise NotFound("id", f"no environment {environment_id!r}")
        listing = await ask_for_listing(store, environment_id, settings.cache_request_timeout)
        if not listing.environments:
            raise NotFound("id", f"no environment {environment_id!r}")
        return JSONResponse(listing.environments[0].model_dump(mode="json"))

    async def delete_dependency(request: Request) -> JSONResponse:
        require_operator(authorize(request))
        environment_id = environment_id_from(request)
        if load_record(store, environment_id) is None:
            raise NotFound("id", f"no environment {environment_id!r}")
        answer = await ask_for_deletion(store, environment_id, settings.cache_request_timeout)
        if answer.outcome is DeletionOutcome.NOT_FOUND:
            raise NotFound("id", answer.message)
        if answer.outcome is not DeletionOutcome.DELETED:
            raise Conflict("id", answer.message)
        return JSONResponse(answer.model_dump(mode="json"))

    async def healthz(request: Request) -> JSONResponse:
        checks = {"storage": _check_storage(store), "docker": _check_docker(),
                  "nix": _check_nix()}
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(checks, status_code=200 if healthy else 503)

    routes = [
        Route("/submissions", create_submission, methods=["POST"]),
        Route("/submissions/{submission_id}", get_submission, methods=["GET"]),
        Route("/dependencies", list_dependencies, methods=["GET"]),
        Route("/dependencies/{environment_id}", get_dependency, methods=["GET"]),
        Route("/dependencies/{environment_id}", delete_dependency, methods=["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            ClientError: _client_error,
            NoCacheManager: _no_cache_manager,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


async def _client_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ClientError)
    headers = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.to_json(), status_code=error.status_code, headers=headers)


async def _no_cache_manager(request: Request, error: Exception) -> JSONResponse:
    body = {"error": {"field": None, "message": str(error)}}
    return JSONResponse(body, status_code=504)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    body: dict[str, Any] = {"error": {"field": None, "message": error.detail}}
    return JSONResponse(body, status_code=error.status_code)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, StorageError):
        logger.error("%s %s: storage failed: %s", request.method, request.url.path, error)
        message = "storage is unavailable; retry later"
        return JSONResponse({"error": {"field": None, "message": message}}, status_code=503)
    logger.exception("%s %s failed", request.method, request.url.path)
    body = {"error": {"field": None, "message": "internal error; see the server log"}}
    return JSONResponse(body, status_code=500)


def _check_storage(store: ObjectStore) -> str:
    try:
        store.ping()
    except StorageError as error:
        return f"failed: {error}"
    return "ok"


def _check_docker() -> str:
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except docker.errors.DockerException as error:
        return f"failed: {error}"
    return "ok"


def _check_nix() -> str:
    try:
        subprocess.run(
            ["nix", "store", "ping", "--store", "daemon"], capture_output=True, check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"failed: {error}"
    return "ok"
