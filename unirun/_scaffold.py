"""``unirun new-plugin NAME``: a new plugin package from the template shipped with unirun."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

from .errors import OptionsError, UnirunError

__all__ = ["new_plugin", "template_dir"]

_NAME = re.compile(r"^[a-z][a-z0-9]*$")
#: Names a new plugin must not take: the bundled backends and the template itself.
_TAKEN = {"onnxruntime", "openvino", "coreml", "tensorrt", "reference", "template", "auto"}
_SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def template_dir() -> Path:
    """The plugin template: packaged in the wheel as ``unirun/_template``, or ``plugins/_template``
    of a source checkout (editable installs)."""
    packaged = Path(str(resources.files("unirun") / "_template"))
    if (packaged / "pyproject.toml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / "plugins" / "_template"
    if (checkout / "pyproject.toml").is_file():
        return checkout
    raise UnirunError(
        "the plugin template is missing from this unirun installation; reinstall unirun"
    )


def new_plugin(name: str, directory: Path) -> Path:
    """Write a plugin for backend ``name`` into ``directory`` (which must not exist yet): the
    template with every name replaced, ready for ``pip install -e`` and its conformance tests."""
    if not _NAME.match(name) or name in _TAKEN:
        raise OptionsError(
            f"a backend name is a short lowercase word (letters and digits) that is not one of "
            f"{', '.join(sorted(_TAKEN))}; got {name!r}"
        )
    if directory.exists():
        raise OptionsError(f"{directory} already exists; choose a new directory")
    source = template_dir()
    words = {
        "unirun_template_engine": f"{name}_sdk",
        "unirun_template": f"unirun_{name}",
        "unirun-template": f"unirun-{name}",
        "TemplateBackend": f"{name.capitalize()}Backend",
        "TemplateExecutable": f"{name.capitalize()}Executable",
        "TemplateOptions": f"{name.capitalize()}Options",
        "TestTemplateConformance": f"Test{name.capitalize()}Conformance",
        '"template"': f'"{name}"',
        "template-blob": f"{name}-blob",
        "\ntemplate = ": f"\n{name} = ",
        "backend=template": f"backend={name}",
    }
    pattern = re.compile("|".join(re.escape(w) for w in words))
    directory.mkdir(parents=True)
    try:
        for file in sorted(source.rglob("*")):
            rel = file.relative_to(source)
            if _SKIP.intersection(rel.parts) or file.suffix == ".pyc":
                continue
            target = directory / Path(*(part.replace("unirun_template", f"unirun_{name}")
                                        for part in rel.parts))  # fmt: skip
            if file.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            text = file.read_text(encoding="utf-8")
            target.write_text(pattern.sub(lambda m: words[m.group(0)], text), encoding="utf-8")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory
