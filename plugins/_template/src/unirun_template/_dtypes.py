"""The engine's type names to unirun dtypes and back: one small table, no SDK import."""

from __future__ import annotations

from unirun import DType

TO_ENGINE: dict[DType, str] = {
    DType.FLOAT32: "f32",
    DType.FLOAT16: "f16",
    DType.INT32: "i32",
    DType.INT64: "i64",
    DType.BOOL: "bool",
}
FROM_ENGINE: dict[str, DType] = {name: dtype for dtype, name in TO_ENGINE.items()}
