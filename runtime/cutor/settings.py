"""Cutor's settings: one object, read from ``CUTOR_*`` environment variables."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cutor.image import sandbox_image_tag
from cutor.limits import PhaseLimitTable, default_limit_table, maximum_limit_table
from cutor.sandbox.seccomp import write_profile as write_seccomp_profile

MINIO_CREDENTIALS_FILE = "minio/credentials.json"


class Settings(BaseSettings):
    """Every setting Cutor reads; the README documents each one."""

    model_config = SettingsConfigDict(env_prefix="CUTOR_", extra="ignore")

    state_dir: Path = Field(
        Path("/var/lib/cutor"),
        description="Folder for MinIO data, credentials, logs and pid files.",
    )
    storage_endpoint: str = Field(
        "http://127.0.0.1:9000", description="URL of the S3-compatible storage."
    )
    storage_access_key: str = Field(
        "", description="Access key; empty reads the generated MinIO credentials file."
    )
    storage_secret_key: str = Field(
        "", description="Secret key; empty reads the generated MinIO credentials file."
    )
    storage_region: str = "us-east-1"
    bucket: str = Field("cutor", description="Bucket that holds every Cutor object.")
    minio_address: str = Field(
        "127.0.0.1:9000", description="Address the local MinIO server listens on."
    )

    webhook_address: str = Field(
        "127.0.0.1:8001",
        description="Address of the runner's webhook, to which MinIO sends bucket events.",
    )
    auth_mode: Literal["keys", "open"] = Field(
        "keys",
        description="keys: every request needs an API key; open: none is checked, allowed "
        "only while the API listens on a loopback address.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_request_bytes: int = Field(
        16 * 1024 * 1024, description="Largest accepted request body, in bytes."
    )

    sandbox_image: str = Field(
        "", description="Docker image for sandboxes; empty uses the tag built by setup."
    )
    docker_runtime: str = Field("runc", description="Docker runtime: runc or runsc (gVisor).")
    sandbox_uid: int = Field(1000, description="Uid that submission code runs as.")

    nix_user: str = Field("cutor", description="Unprivileged user that evaluates cutor.nix.")
    nix_gcroots_dir: Path = Path("/nix/var/nix/gcroots/cutor")
    nix_path: str = Field(
        "",
        description="NIX_PATH for evaluation, e.g. nixpkgs=/path; its entries are the "
        "only paths restricted evaluation may read.",
    )
    nix_store_dir: Path = Path("/nix/store")
    nix_allow_fixed_output: bool = Field(
        False,
        description="Build fixed-output derivations (fetchurl, fetchgit) that are not in the "
        "store yet. Nix gives those builds network access, including the host's loopback "
        "and any metadata endpoint, so only enable it on a host where that is safe.",
    )

    runner_concurrency: int = Field(
        4, description="Function invocations the local runner runs at once."
    )
    build_concurrency: int = Field(2, description="Nix builds that run at once.")
    failed_build_ttl: float = Field(
        300.0, description="Seconds a failed build stays cached before a submission retries it."
    )
    cache_max_bytes: int = Field(
        0,
        ge=0,
        description="Budget of the environment cache in bytes: the NAR size of the union of "
        "the closures of all built environments. Least recently used environments are "
        "evicted above it. 0 means unlimited.",
    )
    eviction_interval: float = Field(
        300.0, gt=0, description="Seconds between the runner's scheduled eviction passes."
    )
    cache_request_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds the API waits for the cache manager to respond to a listing "
        "or deletion request before it returns 504.",
    )
    sandbox_cpus: float = Field(1.0, description="CPUs each sandbox container may use.")
    sweep_interval: float = Field(
        30.0, description="Seconds between the runner's sweeps for missed events."
    )
    claim_lease: float = Field(
        120.0,
        description="Seconds after which another worker may take over a claimed step "
        "whose worker stopped renewing it.",
    )
    worker_id: str = Field("", description="This worker's name; empty uses the host name.")

    default_limits: PhaseLimitTable = Field(default_factory=default_limit_table)
    maximum_limits: PhaseLimitTable = Field(default_factory=maximum_limit_table)

    @model_validator(mode="after")
    def _check_defaults_within_maxima(self) -> Settings:
        self.default_limits.check_within(self.maximum_limits, "CUTOR_DEFAULT_LIMITS")
        return self

    @property
    def credentials_path(self) -> Path:
        return self.state_dir / MINIO_CREDENTIALS_FILE

    def storage_credentials(self) -> tuple[str, str]:
        """Return the access and secret key, from settings or the generated credentials file."""
        if self.storage_access_key and self.storage_secret_key:
            return self.storage_access_key, self.storage_secret_key
        try:
            stored = json.loads(self.credentials_path.read_text())
        except FileNotFoundError:
            raise RuntimeError(
                f"no storage credentials: set CUTOR_STORAGE_ACCESS_KEY and "
                f"CUTOR_STORAGE_SECRET_KEY, or start MinIO with 'cutor minio' so that "
                f"{self.credentials_path} exists"
            ) from None
        return str(stored["access_key"]), str(stored["secret_key"])

    def worker_name(self) -> str:
        return self.worker_id or socket.gethostname()

    def seccomp_profile_path(self) -> str:
        """Write the sandboxes' seccomp profile to the state folder; return its path.

        The file is rewritten only when it is missing or differs, so calling this for
        every container also restores a profile that was deleted while Cutor ran.
        """
        return str(write_seccomp_profile(self.state_dir, self.docker_runtime))

    def image_tag(self) -> str:
        if self.sandbox_image:
            return self.sandbox_image
        return sandbox_image_tag()
