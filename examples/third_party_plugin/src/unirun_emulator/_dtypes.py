"""unirun dtypes the emulated device has, with its own type names: one table, no SDK import."""

from __future__ import annotations

from unirun import DType

TO_ENGINE: dict[DType, str] = {
    DType.FLOAT32: "f32",
    DType.FLOAT64: "f64",
    DType.INT32: "i32",
    DType.INT64: "i64",
    DType.BOOL: "pred",
}
FROM_ENGINE: dict[str, DType] = {name: dtype for dtype, name in TO_ENGINE.items()}
