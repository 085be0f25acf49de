"""The template passes the conformance kit as a backend that declares itself unavailable.

``plugin_path`` lets the kit find the template's entry point without installing it (it is not
installed in unirun's own development environment, so that ``unirun backends`` does not list
it); in your copy, install the plugin (``pip install -e .``) and drop ``plugin_path``.
"""

from __future__ import annotations

from pathlib import Path

from unirun.testing.conformance import BackendConformance


class TestTemplateConformance(BackendConformance):
    backend = "template"
    plugin_path = Path(__file__).resolve().parents[1]
    engine_modules = ("unirun_template_engine",)
