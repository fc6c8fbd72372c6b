"""Per-phase resource limits: the server's defaults and maxima, and a request's overrides."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from cutor.errors import InvalidRequest

MiB = 1024 * 1024
GiB = 1024 * MiB


class Phase(StrEnum):
    DEPENDENCIES = "dependencies"
    COMPILE = "compile"
    RUN = "run"


class LimitName(StrEnum):
    """A limit a phase can exceed, as reported in ``limit_exceeded``."""

    WALL_TIME = "wall_time"
    CPU_TIME = "cpu_time"
    MEMORY = "memory"
    OUTPUT = "output"
    PROCESSES = "processes"
    DISK = "disk"


class PhaseLimits(BaseModel):
    """The limits of one phase. Times in seconds, sizes in bytes, output per stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time: float = Field(gt=0)
    cpu_time: float = Field(gt=0)
    memory: int = Field(ge=16 * MiB)
    processes: int = Field(ge=1)
    output: int = Field(ge=0)
    disk: int = Field(ge=MiB)


class PhaseLimitOverrides(BaseModel):
    """A request's limits for one phase; a missing field keeps the server's default."""

    # Strict: "5" or true is not a number of seconds.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    wall_time: float | None = Field(None, gt=0)
    cpu_time: float | None = Field(None, gt=0)
    memory: int | None = Field(None, ge=16 * MiB)
    processes: int | None = Field(None, ge=1)
    output: int | None = Field(None, ge=0)
    disk: int | None = Field(None, ge=MiB)


class LimitOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dependencies: PhaseLimitOverrides | None = None
    compile: PhaseLimitOverrides | None = None
    run: PhaseLimitOverrides | None = None


class PhaseLimitTable(BaseModel):
    """Limits for every phase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dependencies: PhaseLimits
    compile: PhaseLimits
    run: PhaseLimits

    def for_phase(self, phase: Phase) -> PhaseLimits:
        limits: PhaseLimits = getattr(self, phase.value)
        return limits

    def check_within(self, maxima: PhaseLimitTable, source: str) -> None:
        """Raise InvalidRequest naming the first limit above its maximum."""
        for phase in Phase:
            own, ceiling = self.for_phase(phase), maxima.for_phase(phase)
            for name in PhaseLimits.model_fields:
                value, maximum = getattr(own, name), getattr(ceiling, name)
                if value > maximum:
                    raise InvalidRequest(
                        f"{source}.{phase.value}.{name}",
                        f"{value} is above the server's maximum of {maximum}; "
                        f"request at most {maximum}",
                    )

    def merged(self, overrides: LimitOverrides | None) -> PhaseLimitTable:
        if overrides is None:
            return self
        phases = {}
        for phase in Phase:
            given = getattr(overrides, phase.value)
            base = self.for_phase(phase)
            if given is not None:
                base = base.model_copy(update=given.model_dump(exclude_none=True))
            phases[phase.value] = base
        return PhaseLimitTable(**phases)


def default_limit_table() -> PhaseLimitTable:
    return PhaseLimitTable(
        dependencies=PhaseLimits(
            wall_time=600, cpu_time=600, memory=2 * GiB, processes=256, output=MiB, disk=GiB
        ),
        compile=PhaseLimits(
            wall_time=30, cpu_time=20, memory=512 * MiB, processes=64, output=MiB, disk=256 * MiB
        ),
        run=PhaseLimits(
            wall_time=10, cpu_time=5, memory=256 * MiB, processes=64, output=MiB, disk=64 * MiB
        ),
    )


def maximum_limit_table() -> PhaseLimitTable:
    return PhaseLimitTable(
        dependencies=PhaseLimits(
            wall_time=3600, cpu_time=3600, memory=8 * GiB, processes=1024, output=16 * MiB,
            disk=8 * GiB,
        ),
        compile=PhaseLimits(
            wall_time=300, cpu_time=300, memory=4 * GiB, processes=512, output=16 * MiB,
            disk=2 * GiB,
        ),
        run=PhaseLimits(
            wall_time=300, cpu_time=300, memory=4 * GiB, processes=512, output=16 * MiB,
            disk=2 * GiB,
        ),
    )
