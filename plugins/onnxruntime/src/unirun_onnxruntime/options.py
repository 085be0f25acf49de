"""Options only ONNX Runtime understands (the shared ones live in ``unirun.CompileOptions``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OnnxRuntimeOptions(BaseModel):
    """ONNX Runtime session options. ``None`` keeps ONNX Runtime's default.

    ``threads`` and ``optimization_level`` are shared options (``unirun.load(threads=...)``):
    they map to ``intra_op_num_threads`` and ``graph_optimization_level``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    inter_op_threads: int | None = Field(
        default=None, ge=1, description="Threads running independent nodes in parallel mode."
    )
    execution_mode: Literal["sequential", "parallel"] | None = Field(
        default=None, description="Run independent branches of the graph in parallel ('parallel')."
    )
    allow_spinning: bool | None = Field(
        default=None, description="Let idle intra-op threads spin (lower latency, more CPU burnt)."
    )
    provider_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Options of the device's execution provider, e.g. CUDA's "
        "{'cudnn_conv_algo_search': 'HEURISTIC', 'gpu_mem_limit': 2**31}.",
    )
    allow_cpu_fallback: bool = Field(
        default=False,
        description="On CUDA, let ONNX Runtime run nodes CUDA cannot take on the CPU instead "
        "of failing (ONNX Runtime's own default, which unirun turns off).",
    )
    fp16_io: bool = Field(
        default=False,
        description="With precision='fp16', make float32 inputs and outputs float16 too (no "
        "Casts at the edges; feeds must then be float16). By default they stay float32.",
    )
    session_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra raw session config entries (SessionOptions.add_session_config_entry).",
    )
