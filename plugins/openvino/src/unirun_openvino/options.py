"""Options only OpenVINO understands (the shared ones live in ``unirun.CompileOptions``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from unirun.options import CompileOptions

from ._dtypes import PRECISION_HINT

#: OpenVINO properties that only tune speed (threads, streams, scheduling, priorities): the only
#: ones the raw ``properties`` option passes on, and, with :data:`OWN`, the only ones an
#: artifact's manifest may set at load. Anything that writes files (CACHE_DIR, WEIGHTS_PATH…)
#: or changes the outputs (precisions, quantization, denormals) is refused.
TUNING = frozenset(
    {
        "PERFORMANCE_HINT",
        "PERFORMANCE_HINT_NUM_REQUESTS",
        "NUM_STREAMS",
        "INFERENCE_NUM_THREADS",
        "EXECUTION_MODE_HINT",
        "ENABLE_CPU_PINNING",
        "ENABLE_CPU_RESERVATION",
        "ENABLE_HYPER_THREADING",
        "SCHEDULING_CORE_TYPE",
        "MODEL_DISTRIBUTION_POLICY",
        "TBB_PARTITIONER",
        "MODEL_PRIORITY",
        "PERF_COUNT",
        "GPU_HOST_TASK_PRIORITY",
        "GPU_QUEUE_PRIORITY",
        "GPU_QUEUE_THROTTLE",
    }
)
#: The properties unirun sets itself (see :func:`properties`; int8 weights-only builds turn
#: the CPU's dynamic quantization off with DYNAMIC_QUANTIZATION_GROUP_SIZE=0).
OWN = (
    frozenset({"INFERENCE_PRECISION_HINT", "SNIPPETS_MODE", "DYNAMIC_QUANTIZATION_GROUP_SIZE"})
    | TUNING
)


class OpenVINOOptions(BaseModel):
    """OpenVINO compile properties. ``None`` keeps OpenVINO's default.

    Shared options map as follows: ``precision`` → ``INFERENCE_PRECISION_HINT`` (always set, so
    ``"fp32"`` is exact fp32 even on CPUs where OpenVINO would pick bf16 by itself), ``threads``
    → ``INFERENCE_NUM_THREADS``, ``shapes`` → bounded input shapes. ``optimization_level`` has
    no OpenVINO counterpart and is ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    performance_hint: Literal["latency", "throughput", "cumulative_throughput"] = Field(
        default="latency",
        description="PERFORMANCE_HINT: 'latency' (one request as fast as possible; unirun's "
        "default) or 'throughput' (several streams, for many requests in flight, e.g. "
        "Model.map); 'cumulative_throughput' spreads requests over every device of AUTO.",
    )
    num_streams: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        default=None,
        description="NUM_STREAMS: how many requests the device executes in parallel; "
        "overrides what the performance hint chose.",
    )
    num_requests: int | None = Field(
        default=None,
        ge=1,
        description="PERFORMANCE_HINT_NUM_REQUESTS: cap on the parallel requests the "
        "throughput hint plans for.",
    )
    execution_mode: Literal["performance", "accuracy"] | None = Field(
        default=None,
        description="EXECUTION_MODE_HINT. The precision hint unirun sets from `precision` "
        "takes precedence for the compute precision.",
    )
    cpu_pinning: bool | None = Field(
        default=None, description="ENABLE_CPU_PINNING: pin inference threads to CPU cores."
    )
    snippets: bool | None = Field(
        default=None,
        description="CPU snippets (OpenVINO's JIT-fused subgraphs, attention among them). None: "
        "on, except for models with dynamic input dimensions, where OpenVINO 2026.4 can reuse "
        "an attention kernel built for sequence length 1 for longer sequences and return wrong "
        "values (see the README); True: always on (OpenVINO's default); False: always off.",
    )
    int8_weights: Literal["expand", "compressed"] = Field(
        default="expand",
        description="For unirun's int8-weights form on the CPU (precision='int8' where int8 "
        "activations are slower or inaccurate): 'expand' turns the int8 weights into float32 "
        "when compiling, so the model computes at float speed (the artifact keeps them int8; "
        "loads compile its IR, which OpenVINO's cache keeps short); 'compressed' leaves them "
        "int8 in memory too and OpenVINO expands them on every call (slower on compute-bound "
        "models, less memory: for large memory-bound ones).",
    )
    engine_cache: bool = Field(
        default=True,
        description="Let OpenVINO keep its own compiled-model cache (CACHE_DIR) inside the "
        "unirun cache directory.",
    )
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Raw OpenVINO properties passed to compile_model/import_model last, e.g. "
        "{'ENABLE_HYPER_THREADING': False}; they override everything above. Only properties "
        "that tune speed are accepted (threads, streams, scheduling, priorities): nothing that "
        "writes files or changes the outputs.",
    )

    @field_validator("properties")
    @classmethod
    def _only_tuning(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        refused = sorted(set(value) - TUNING)
        if refused:
            raise ValueError(
                f"unirun does not pass OpenVINO propert{'ies' if len(refused) > 1 else 'y'} "
                f"{', '.join(refused)} through: raw properties may only tune speed "
                f"({', '.join(sorted(TUNING))}). Precision comes from precision=, OpenVINO's "
                "cache from the engine_cache option"
            )
        return value


def snippets_off(options: OpenVINOOptions, dynamic: bool) -> bool:
    return options.snippets is False or (options.snippets is None and dynamic)


def properties(
    shared: CompileOptions, options: OpenVINOOptions, device: str, dynamic: bool
) -> dict[str, Any]:
    """The OpenVINO properties a build with these options compiles and imports with.

    ``dynamic``: the model has dynamic input dimensions after ``shapes`` were applied."""
    props: dict[str, Any] = {
        "PERFORMANCE_HINT": options.performance_hint.upper(),
        # Always explicit: the CPU plugin silently defaults to bf16 where the CPU has it.
        "INFERENCE_PRECISION_HINT": PRECISION_HINT[shared.precision],
    }
    if shared.threads is not None:
        props["INFERENCE_NUM_THREADS"] = shared.threads
    if options.num_streams is not None:
        props["NUM_STREAMS"] = str(options.num_streams).upper()
    if options.num_requests is not None:
        props["PERFORMANCE_HINT_NUM_REQUESTS"] = options.num_requests
    if options.execution_mode is not None:
        props["EXECUTION_MODE_HINT"] = options.execution_mode.upper()
    if options.cpu_pinning is not None:
        props["ENABLE_CPU_PINNING"] = options.cpu_pinning
    if device == "CPU" and snippets_off(options, dynamic):
        props["SNIPPETS_MODE"] = "DISABLE"
    props.update(options.properties)
    return props
