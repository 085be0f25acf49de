"""Built-in lowerings; importing this package fills the op table."""

from . import _activation, _conv, _einsum, _elementwise, _index, _norm, _pool, _resize, _shape

__all__ = [
    "_activation",
    "_conv",
    "_einsum",
    "_elementwise",
    "_index",
    "_norm",
    "_pool",
    "_resize",
    "_shape",
]
