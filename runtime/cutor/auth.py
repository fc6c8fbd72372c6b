"""API keys: stored hashed in the bucket, with per-key limits on concurrency and rate.

A key reads ``cutor_<id>_<secret>``. Only the SHA-256 of the secret is stored. The secret
is 32 random bytes, so a fast hash is enough: password-style stretching protects values
that can be guessed, and these cannot. Clients send it as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from cutor import keys
from cutor.errors import ClientError
from cutor.models import utc_now
from cutor.storage import ObjectStore

KEY_PREFIX = "cutor"
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class Unauthorized(ClientError):
    status_code = 401


class TooManyRequests(ClientError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(None, message)
        self.retry_after = retry_after


class ApiKey(BaseModel):
    """A stored API key; ``secret_sha256`` is all that is kept of the secret."""

    id: str
    name: str
    secret_sha256: str
    operator: bool = False
    max_concurrent: int = Field(8, ge=1)
    requests_per_minute: int = Field(120, ge=1)
    created_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    store: ObjectStore, name: str, *, operator: bool = False, max_concurrent: int = 8,
    requests_per_minute: int = 120,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with the full key text, which is shown only once."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    key = ApiKey(
        id=key_id, name=name, secret_sha256=_digest(secret), operator=operator,
        max_concurrent=max_concurrent, requests_per_minute=requests_per_minute,
        created_at=utc_now(),
    )
    store.put(keys.api_key(key_id), key.model_dump(mode="json"), create_only=True)
    return key, f"{KEY_PREFIX}_{key_id}_{secret}"


def list_keys(store: ObjectStore) -> list[ApiKey]:
    found = []
    for key in store.list_keys(keys.API_KEYS_PREFIX):
        stored = store.get(key)
        if stored is not None:
            found.append(ApiKey.model_validate(stored.body))
    return found


def revoke_key(store: ObjectStore, key_id: str) -> None:
    store.delete(keys.api_key(key_id))


def authenticate(store: ObjectStore, header: str | None) -> ApiKey:
    """Return the key an ``Authorization`` header names; raise Unauthorized otherwise."""
    if not header or not header.startswith("Bearer "):
        raise Unauthorized(
            "Authorization", "missing API key; send 'Authorization: Bearer <key>'"
        )
    prefix, _, rest = header.removeprefix("Bearer ").strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not keys.API_KEY_ID.match(key_id) or not secret:
        raise Unauthorized("Authorization", "malformed API key; expected cutor_<id>_<secret>")
    stored = store.get(keys.api_key(key_id))
    if stored is None:
        raise Unauthorized("Authorization", "unknown or revoked API key")
    key = ApiKey.model_validate(stored.body)
    if not hmac.compare_digest(key.secret_sha256, _digest(secret)):
        raise Unauthorized("Authorization", "unknown or revoked API key")
    return key


class RateLimiter:
    """A token bucket per key, in this API process's memory.

    NOTE: each API instance keeps its own buckets, so N instances allow up to N times the
    rate. A shared limiter (in the bucket or a cache) would remove that gap.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: ApiKey) -> None:
        rate = key.requests_per_minute / 60.0
        with self.lock:
            now = self.clock()
            tokens, last = self.buckets.get(key.id, (float(key.requests_per_minute), now))
            tokens = min(float(key.requests_per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self.buckets[key.id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise TooManyRequests(
                    f"API key {key.id} exceeded {key.requests_per_minute} requests per "
                    f"minute; retry after {wait} s",
                    retry_after=wait,
                )
            self.buckets[key.id] = (tokens - 1.0, now)


def check_concurrency(store: ObjectStore, key: ApiKey) -> None:
    """Raise TooManyRequests when the key already has its maximum of unfinished submissions.

    NOTE: two requests that arrive together may both pass, so a key can briefly exceed
    its maximum by the number of its simultaneous requests.
    """
    for active, _ in enumerate(store.list_keys(keys.active_prefix(key.id)), start=1):
        if active >= key.max_concurrent:
            raise TooManyRequests(
                f"API key {key.id} already has {key.max_concurrent} unfinished submissions; "
                "wait for one to finish",
                retry_after=1,
            )
