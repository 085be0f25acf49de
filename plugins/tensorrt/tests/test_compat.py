"""Whether a plan may load here: TensorRT version, CUDA major, compute capability, GPU model,
and what hardware compatibility relaxes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from unirun.errors import ArtifactError
from unirun_tensorrt._compat import PlanInfo, check

BUILT = PlanInfo("10.13.3.9", "NVIDIA H100 80GB HBM3", "9.0", "13.0")


def refused(built: PlanInfo, here: PlanInfo) -> str | None:
    try:
        check(built, here)
    except ArtifactError as exc:
        field = exc.field
        message = str(exc)
    else:
        return None
    assert field is not None and field in message
    return field


def test_same_machine_loads() -> None:
    assert refused(BUILT, BUILT) is None
    assert refused(BUILT, replace(BUILT, cuda_version="13.5")) is None  # same major


@pytest.mark.parametrize(
    ("here", "field"),
    [
        (replace(BUILT, tensorrt_version="10.13.3.10"), "extra.plan.tensorrt_version"),
        (replace(BUILT, tensorrt_version="11.4.0.106"), "extra.plan.tensorrt_version"),
        (replace(BUILT, cuda_version="12.8"), "extra.plan.cuda_version"),
        (
            replace(BUILT, compute_capability="8.9", gpu_name="NVIDIA L4"),
            "extra.plan.compute_capability",
        ),
        (replace(BUILT, gpu_name="NVIDIA H200"), "extra.plan.gpu_name"),
    ],
)
def test_mismatches_name_the_field(here: PlanInfo, field: str) -> None:
    assert refused(BUILT, here) == field


def test_same_compute_capability_moves_between_gpu_models() -> None:
    built = replace(BUILT, hardware_compatibility="same_compute_capability")
    assert refused(built, replace(BUILT, gpu_name="NVIDIA H200")) is None
    assert (
        refused(built, replace(BUILT, compute_capability="8.0")) == "extra.plan.compute_capability"
    )


def test_ampere_plus_needs_compute_capability_8() -> None:
    built = replace(BUILT, hardware_compatibility="ampere_plus")
    assert refused(built, replace(BUILT, gpu_name="NVIDIA A10", compute_capability="8.6")) is None
    assert refused(built, replace(BUILT, gpu_name="Tesla T4", compute_capability="7.5")) == (
        "extra.plan.compute_capability"
    )
    # the TensorRT version still pins
    assert refused(built, replace(BUILT, tensorrt_version="10.14.1.48")) == (
        "extra.plan.tensorrt_version"
    )


def test_manifest_round_trip_and_damage() -> None:
    assert PlanInfo.from_json(BUILT.to_json()) == BUILT
    with pytest.raises(ArtifactError) as info:
        PlanInfo.from_json(None)
    assert info.value.field == "extra.plan"
    damaged = {**BUILT.to_json(), "gpu_name": ""}
    with pytest.raises(ArtifactError) as info:
        PlanInfo.from_json(damaged)
    assert info.value.field == "extra.plan.gpu_name"
