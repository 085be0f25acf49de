"""Property tests and a bounded fuzz run (issue 11): whatever bytes or JSON arrive as a model
or a manifest, unirun answers with its own typed error or a valid object, never another
exception. Each test runs a few hundred examples (seconds); no example database is kept."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unirun
from unirun import Artifact, ArtifactError, UnirunError
from unirun.artifact import manifest_digest
from unirun.source import OnnxModel
from unirun.testing import conv_net, embedding_model, multi_io, scaled_by_weights, transformer_block

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    art = unirun.compile(multi_io(), backend="reference", cache=False)
    path = art.save(tmp_path_factory.mktemp("fuzz") / "multi.unirun")
    return path, json.loads((path / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def saved(built: tuple[Path, dict[str, Any]]) -> Path:
    return built[0]


@pytest.fixture
def manifest(built: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return built[1]


def _open(directory: Path, text: bytes) -> None:
    (directory / "manifest.json").write_bytes(text)
    try:
        artifact = Artifact.open(directory)
    except ArtifactError:
        return
    assert artifact.sha256 == json.loads(text)["sha256"]


@FUZZ
@given(value=json_values)
def test_any_json_is_an_artifact_error_or_an_artifact(saved: Path, value: Any) -> None:
    _open(saved, json.dumps(value).encode())


@FUZZ
@given(
    data=st.data(),
    value=json_values,
    action=st.sampled_from(["replace", "delete", "add"]),
)
def test_a_consistently_edited_manifest_is_an_artifact_error_or_an_artifact(
    saved: Path, manifest: dict[str, Any], data: Any, value: Any, action: str
) -> None:
    """The edit is sealed with a matching sha256, so pydantic's checks are what is exercised."""
    edited = json.loads(json.dumps(manifest))
    target = edited
    # Walk into a nested dict or list (options, files[0], inputs[1], extra, ...) sometimes.
    for _ in range(data.draw(st.integers(0, 3), label="depth")):
        children = [
            k
            for k, v in (target.items() if isinstance(target, dict) else enumerate(target))
            if isinstance(v, (dict, list)) and v
        ]
        if not children:
            break
        target = target[data.draw(st.sampled_from(children), label="into")]
    if isinstance(target, dict):
        keys = sorted(target) or ["x"]
        key: Any = data.draw(st.sampled_from(keys) | st.text(max_size=8), label="key")
    else:
        key = data.draw(st.integers(0, max(len(target) - 1, 0)), label="index")
    if action == "delete":
        if isinstance(target, dict):
            target.pop(key, None)
        elif target:
            target.pop(key)
    elif isinstance(target, dict) or (action == "add" and isinstance(target, list)):
        if isinstance(target, list):
            target.insert(key, value)
        else:
            target[key] = value
    elif target:
        target[key] = value
    with contextlib.suppress(ValueError):  # NaN or infinity: no digest can be computed
        edited["sha256"] = manifest_digest(edited)
    _open(saved, json.dumps(edited).encode())


@FUZZ
@given(data=st.data())
def test_mutated_manifest_bytes_are_an_artifact_error_or_an_artifact(
    saved: Path, manifest: dict[str, Any], data: Any
) -> None:
    text = bytearray(json.dumps(manifest, indent=2).encode())
    _mutate(data, text)
    _open(saved, bytes(text))


_MODELS = [
    conv_net(size=8).SerializeToString(),
    multi_io().SerializeToString(),
    embedding_model().SerializeToString(),
    transformer_block().SerializeToString(),
    scaled_by_weights("if_branch").SerializeToString(),
    scaled_by_weights("function").SerializeToString(),
]


@FUZZ
@given(data=st.data(), which=st.integers(0, len(_MODELS) - 1))
def test_mutated_model_bytes_are_a_unirun_error_or_a_model(
    data: Any, which: int, tmp_path: Path
) -> None:
    model = bytearray(_MODELS[which])
    _mutate(data, model)
    base = tmp_path if data.draw(st.booleans(), label="base_dir") else None
    try:
        parsed = OnnxModel.from_source(bytes(model), base_dir=base)
        parsed.inputs, parsed.outputs  # noqa: B018 (parsing the specs is part of reading)
        parsed.for_engine(inline=True)
    except UnirunError:
        pass


def _mutate(data: Any, buffer: bytearray) -> None:
    """A few random byte flips, truncations, insertions and duplicated slices."""
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "splice"]), label="kind")
        at = data.draw(st.integers(0, max(len(buffer) - 1, 0)), label="at")
        if kind == "flip" and buffer:
            buffer[at] ^= data.draw(st.integers(1, 255), label="bits")
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "insert":
            buffer[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        else:
            size = data.draw(st.integers(1, 64), label="size")
            buffer[at:at] = buffer[at : at + size]
