"""Build the Nix environment that a cutor.nix declares: evaluate, realise, root, measure."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cutor.limits import LimitName, PhaseLimits
from cutor.settings import Settings

from . import process
from .client import check_nix
from .evaluate import evaluate
from .identity import environment_id
from .models import BuildOutcome, Environment
from .realise import closure_size, realise

logger = logging.getLogger(__name__)


def build_environment(settings: Settings, cutor_nix: str, limits: PhaseLimits) -> BuildOutcome:
    """Evaluate ``cutor_nix`` as the Nix user and build the derivations it requests.

    A cutor.nix that fails to parse, evaluate or build gives ``ok=False`` with Nix's
    message in ``stderr``. ``limits.wall_time`` covers every step together, and
    ``limits.output`` bounds each of stdout and stderr. Raise NixError when Nix itself
    is missing or nix-daemon is not running.

    NOTE: ``limits.cpu_time`` and ``limits.memory`` apply to evaluation only, and
    ``limits.processes`` and ``limits.disk`` are not applied. Builds run inside
    nix-daemon, which only its own settings (such as max-jobs and cores) bound.
    """
    started = time.monotonic()
    nix_version = check_nix()
    env_id = environment_id(cutor_nix, nix_version, settings.nix_path)
    transcript = process.Transcript(limits.output)
    context = process.BuildContext(
        env_id, started + limits.wall_time, transcript,
        allow_fixed_output=settings.nix_allow_fixed_output,
    )
    logger.info("building Nix environment %s", env_id)
    limit: str | None = None
    environment: Environment | None = None
    try:
        environment = _build(settings, cutor_nix, limits, context)
    except process.LimitExceededError as exceeded:
        limit = exceeded.limit.value
        if exceeded.limit is LimitName.WALL_TIME:
            transcript.note(f"building the environment took longer than {limits.wall_time} s")
    elapsed = time.monotonic() - started
    logger.info(
        "Nix environment %s: %s after %.1f s (limit exceeded: %s)",
        env_id, "built" if environment else "failed", elapsed, limit,
    )
    return BuildOutcome(
        ok=environment is not None,
        stdout=bytes(transcript.stdout),
        stderr=bytes(transcript.stderr),
        time=elapsed,
        cpu_time=transcript.cpu_time,
        limit_exceeded=limit,
        environment=environment,
    )


def _build(
    settings: Settings, cutor_nix: str, limits: PhaseLimits, context: process.BuildContext
) -> Environment | None:
    evaluation = evaluate(settings, cutor_nix, limits, context)
    if evaluation is None:
        return None
    realised = realise(evaluation, settings.nix_gcroots_dir / context.env_id, context)
    if realised is None:
        return None
    size = closure_size(realised.store_paths, context)
    if size is None:
        return None
    listing = "".join(f"{path}\n" for path in realised.store_paths)
    context.transcript.add(context.transcript.stdout, listing.encode())
    # Only a realised input counts: `stdenv` is text from the submission, and checking
    # an arbitrary host path would tell the client whether that path exists.
    stdenv = realised.variables.get("stdenv", "")
    has_stdenv = stdenv in realised.store_paths and Path(stdenv, "setup").exists()
    return Environment(
        id=context.env_id,
        variables=realised.variables,
        store_paths=realised.store_paths,
        closure_size=size,
        has_stdenv=has_stdenv,
    )
