"""The compile and run phases of a submission, in one fresh sandbox container."""

from __future__ import annotations

import logging
import shlex

from cutor.builds import BuildResult
from cutor.limits import Phase, PhaseLimits
from cutor.models import COMPILE_SCRIPT, RUN_SCRIPT, PhaseResult, Status, SubmissionRecord
from cutor.nix import Environment, shell_prelude
from cutor.sandbox.container import CUTOR_DIR, WORK_DIR, PhaseReport, Sandbox
from cutor.sandbox.options import ContainerSpec, check_host_uids, runtime_environment
from cutor.settings import Settings
from cutor.submissions import StateHandle

logger = logging.getLogger(__name__)

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
ENV_SCRIPT = "env.sh"
# Linux limits one argument to 128 KiB (MAX_ARG_STRLEN); stay well below it.
MAX_INLINE_SCRIPT_BYTES = 100 * 1024


def phase_environment(record: SubmissionRecord, runtime: str = "runc") -> dict[str, str]:
    """Build the environment a phase starts with: a fixed base, then the client's variables."""
    return {
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": WORK_DIR,
        "TMPDIR": "/tmp",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "SHELL": "/bin/bash",
        **runtime_environment(runtime),
        **record.request.env,
    }


def phase_argv(script: str, args: list[str]) -> list[str]:
    # The Nix environment is sourced inside the container, never on the host: it may
    # run a shellHook, which is code the submission controls.
    # The script runs as `bash -c TEXT` rather than `bash FILE` because bash (5.1 and
    # later) then execs the last command instead of forking it, so a run.sh whose last
    # command crashes reports that command's signal (SIGSEGV) rather than bash's exit
    # status 139. Scripts too long for one argument run as a file. wc measures the size
    # with fstat, because stat(1) uses statx with a flag that runsc release-20221219
    # rejects.
    quoted = shlex.quote(script)
    command = (
        f"if [ -r {CUTOR_DIR}/{ENV_SCRIPT} ]; then . {CUTOR_DIR}/{ENV_SCRIPT}; fi; "
        f"cd {WORK_DIR} || exit 126; "
        f"if [ $(wc -c < ./{quoted}) -le {MAX_INLINE_SCRIPT_BYTES} ]; then "
        f'exec /bin/bash -c "$(< ./{quoted})" ./{quoted} "$@"; '
        f'else exec /bin/bash ./{quoted} "$@"; fi'
    )
    return ["/bin/bash", "-c", command, script, *args]


def to_phase_result(report: PhaseReport) -> PhaseResult:
    return PhaseResult.from_bytes(
        report.stdout, report.stderr, time=report.time, cpu_time=report.cpu_time,
        memory=report.memory, exit_code=report.exit_code, signal=report.signal,
        limit_exceeded=report.limit_exceeded,
    )


class PhaseRunner:
    """Runs compile.sh (when given) and run.sh of a submission in a new container."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Written once at startup, so that an unwritable state folder stops the worker
        # before it takes any submission.
        settings.seccomp_profile_path()
        check_host_uids(settings.sandbox_uid)

    def container_spec(self, record: SubmissionRecord, build: BuildResult | None) -> ContainerSpec:
        phases = [record.limits.run]
        if record.request.file(COMPILE_SCRIPT) is not None:
            phases.append(record.limits.compile)
        return ContainerSpec(
            submission_id=record.id,
            image=self.settings.image_tag(),
            runtime=self.settings.docker_runtime,
            uid=self.settings.sandbox_uid,
            memory=max(limits.memory for limits in phases),
            processes=max(limits.processes for limits in phases),
            # NOTE: tmpfs sizes are fixed when the container starts, so with compile.sh
            # both phases get the larger of the two disk limits.
            disk=max(limits.disk for limits in phases),
            cpus=self.settings.sandbox_cpus,
            worker_id=self.settings.worker_name(),
            mount_nix_store=str(self.settings.nix_store_dir) if build is not None else None,
            seccomp_profile=self.settings.seccomp_profile_path(),
        )

    def run(self, record: SubmissionRecord, build: BuildResult | None, handle: StateHandle) -> None:
        """Run the phases; the final status is written once the container is removed."""
        spec = self.container_spec(record, build)
        environment = phase_environment(record, self.settings.docker_runtime)
        with Sandbox(spec) as sandbox:
            sandbox.write_files(WORK_DIR, _workspace_files(record))
            prelude = _prelude(build)
            if prelude is not None:
                sandbox.write_files(CUTOR_DIR, [(ENV_SCRIPT, prelude.encode(), 0o644)])
            final = self._run_phases(sandbox, record, environment, handle)
        status, phase, result = final
        handle.update(status=status, phases={phase.value: result})

    def _run_phases(
        self, sandbox: Sandbox, record: SubmissionRecord, environment: dict[str, str],
        handle: StateHandle,
    ) -> tuple[Status, Phase, PhaseResult]:
        if record.request.file(COMPILE_SCRIPT) is not None:
            compiled = self._run(sandbox, record, Phase.COMPILE, environment, b"")
            if not compiled.succeeded:
                return Status.COMPILE_FAILED, Phase.COMPILE, compiled
            handle.update(status=Status.COMPILED, compile=compiled)
        stdin = record.request.inputs.encode()
        return Status.FINISHED, Phase.RUN, self._run(sandbox, record, Phase.RUN, environment, stdin)

    def _run(
        self, sandbox: Sandbox, record: SubmissionRecord, phase: Phase,
        environment: dict[str, str], stdin: bytes,
    ) -> PhaseResult:
        limits: PhaseLimits = record.limits.for_phase(phase)
        script = COMPILE_SCRIPT if phase is Phase.COMPILE else RUN_SCRIPT
        args = record.request.args if phase is Phase.RUN else []
        logger.info("submission %s: %s phase starts", record.id, phase.value)
        report = sandbox.run_phase(phase_argv(script, args), environment, stdin, limits)
        logger.info(
            "submission %s: %s phase ended: exit %s, signal %s, limit %s, %.3fs",
            record.id, phase.value, report.exit_code, report.signal, report.limit_exceeded,
            report.time,
        )
        return to_phase_result(report)


def _workspace_files(record: SubmissionRecord) -> list[tuple[str, bytes, int]]:
    files = []
    for file in record.request.files:
        executable = file.executable or file.name.endswith(".sh")
        files.append((file.name, file.data(), 0o755 if executable else 0o644))
    return files


def _prelude(build: BuildResult | None) -> str | None:
    if build is None or build.environment is None:
        return None
    return shell_prelude(Environment.model_validate(build.environment), base_path=BASE_PATH)
