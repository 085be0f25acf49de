"""``shapes`` and the ``profiles`` option → TensorRT optimisation profiles, and the profile a
request runs on."""

from __future__ import annotations

import pytest

from unirun import DType, TensorSpec
from unirun.errors import OptionsError
from unirun.options import CompileOptions, ShapeRange
from unirun_tensorrt._profiles import from_json, plan, select, to_json

IMAGE = TensorSpec("image", DType.FLOAT32, ("N", 3, "H", "W"))
MASK = TensorSpec("mask", DType.BOOL, ("N", "S"))
SCALE = TensorSpec("scale", DType.FLOAT32, (1,))


def shapes(**given: object) -> dict[str, ShapeRange]:
    return CompileOptions(shapes=given).shapes  # type: ignore[arg-type]


def test_static_model_has_no_profile() -> None:
    assert plan([SCALE], {}) == []


def test_one_profile_per_shapes_entry_covering_every_dynamic_input() -> None:
    given = shapes(
        image=((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 512, 512)),
        mask=(4, 16),
        scale=(1,),
    )
    (profile,) = plan([IMAGE, MASK, SCALE], given)
    assert profile == {
        "image": ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 512, 512)),
        "mask": ((4, 16), (4, 16), (4, 16)),  # a fixed shape: min = opt = max
    }


def test_every_dynamic_input_needs_bounds() -> None:
    with pytest.raises(OptionsError, match="'mask'"):
        plan([IMAGE, MASK], shapes(image=(1, 3, 8, 8)))


def test_choices_are_treated_as_their_bounds() -> None:
    given = shapes(image={"choices": [(1, 3, 64, 64), (4, 3, 32, 32)]})
    assert plan([IMAGE], given) == [{"image": ((1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 64, 64))}]


def test_extra_profiles_inherit_and_must_stay_inside_the_bounds() -> None:
    given = shapes(
        image=((1, 3, 64, 64), (8, 3, 64, 64), (32, 3, 64, 64)), mask=((1, 1), (8, 8), (32, 64))
    )
    small = shapes(image=((1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64)))
    large = shapes(image=((8, 3, 64, 64), (16, 3, 64, 64), (32, 3, 64, 64)), mask=(16, 8))
    profiles = plan([IMAGE, MASK], given, [small, large])
    assert len(profiles) == 3
    assert profiles[1]["image"][2] == (4, 3, 64, 64)
    assert profiles[1]["mask"] == profiles[0]["mask"]  # inherited
    assert profiles[2]["mask"] == ((16, 8), (16, 8), (16, 8))
    wide = shapes(image=((1, 3, 64, 64), (1, 3, 64, 64), (64, 3, 64, 64)))
    with pytest.raises(OptionsError, match=r"profile 1 gives 'image' dimension 0 as 1\.\.64"):
        plan([IMAGE, MASK], given, [wide])
    with pytest.raises(OptionsError, match=r"'scale'.*not a dynamic input"):
        plan([IMAGE, MASK], given, [shapes(scale=(1,))])
    with pytest.raises(OptionsError, match="rank"):
        plan([IMAGE, MASK], given, [shapes(mask=(1, 1, 1))])
    with pytest.raises(OptionsError, match="every input of the model is static"):
        plan([SCALE], {}, [small])


def test_a_request_runs_on_the_first_profile_that_holds_it() -> None:
    given = shapes(image=((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8)))
    extra = [
        shapes(image=((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))),
        shapes(image=((16, 3, 8, 8), (16, 3, 8, 8), (32, 3, 8, 8))),
    ]
    profiles = plan([IMAGE], given, extra)
    assert select(profiles, {"image": (2, 3, 8, 8)}) == 0  # profile 0 holds everything
    assert select(profiles[1:], {"image": (2, 3, 8, 8)}) == 0
    assert select(profiles[1:], {"image": (20, 3, 8, 8)}) == 1
    assert select(profiles[1:], {"image": (8, 3, 8, 8)}) == 0  # none holds it: profile 0


def test_profiles_survive_the_manifest() -> None:
    given = shapes(image=((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)))
    profiles = plan([IMAGE], given)
    assert from_json(to_json(profiles)) == profiles
    assert from_json(None) == []
