"""Einsum with one or two operands, lowered to reduce_sum / transpose / reshape / matmul."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

from .._context import Context
from .._mil import Value, arg, dims_vector, shape, var
from .._node import Node
from .._registry import lowering


def _parse(equation: str) -> tuple[list[str], str]:
    equation = equation.replace(" ", "")
    if "->" in equation:
        lhs, out = equation.split("->")
    else:
        lhs = equation
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return lhs.split(","), out


def _einsum_check(node: Node) -> str | None:
    terms, out = _parse(str(node.attr("equation", "")))
    if "." in "".join(terms) + out:
        return "Einsum with an ellipsis is not supported"
    if len(terms) > 2:
        return "Einsum with more than two operands is not supported"
    if any(len(set(t)) != len(t) for t in terms):
        return "Einsum with a repeated index in one operand (a diagonal) is not supported"
    return None


def _sum_out(x: Value, term: str, keep: set[str]) -> tuple[Value, str]:
    axes = [i for i, c in enumerate(term) if c not in keep]
    if not axes:
        return x, term
    reduced = mb.reduce_sum(x=x, axes=axes, keep_dims=False)
    return reduced, "".join(c for c in term if c in keep)


def _permute(x: Value, term: str, order: str) -> Value:
    perm = [term.index(c) for c in order]
    return x if perm == list(range(len(perm))) else mb.transpose(x=x, perm=np.array(perm, np.int32))


def _group(x: Value, term: str, letters: str) -> object:
    dims = [shape(x)[term.index(c)] for c in letters]
    if not dims:
        return 1
    if len(dims) == 1:
        return dims[0]
    if any(is_symbolic(d) for d in dims):
        raise ValueError(f"Einsum needs static sizes to merge indices {letters!r}")
    return int(np.prod([int(d) for d in dims]))


@lowering("Einsum", check=_einsum_check)
def _einsum(ctx: Context, node: Node) -> Value:
    terms, out = _parse(str(node.attr("equation")))
    operands = [var(v) for v in ctx.inputs(node) if v is not None]
    if len(terms) == 1:
        x, term = _sum_out(operands[0], terms[0], set(out))
        return _permute(x, term, out)
    a, b = operands
    ta, tb = terms
    a, ta = _sum_out(a, ta, set(tb) | set(out))
    b, tb = _sum_out(b, tb, set(ta) | set(out))
    batch = "".join(c for c in out if c in ta and c in tb)
    left = "".join(c for c in out if c in ta and c not in tb)
    right = "".join(c for c in out if c in tb and c not in ta)
    contract = "".join(c for c in ta if c in tb and c not in out)
    a = _permute(a, ta, batch + left + contract)
    b = _permute(b, tb, batch + contract + right)
    ta, tb = batch + left + contract, batch + contract + right
    batch_dims = [shape(a)[i] for i in range(len(batch))]
    b_batch = [shape(b)[i] for i in range(len(batch))]
    a3 = mb.reshape(
        x=a, shape=arg(dims_vector(a, [*batch_dims, _group(a, ta, left), _group(a, ta, contract)]))
    )
    b3 = mb.reshape(
        x=b, shape=arg(dims_vector(b, [*b_batch, _group(b, tb, contract), _group(b, tb, right)]))
    )
    product = mb.matmul(x=a3, y=b3)
    full = (
        batch_dims + [shape(a)[ta.index(c)] for c in left] + [shape(b)[tb.index(c)] for c in right]
    )
    if tuple(full) != tuple(shape(product)):
        product = mb.reshape(x=product, shape=arg(dims_vector(product, full)))
    return _permute(product, batch + left + right, out)
