"""Canonical form and hash of a spec: equal for specs that compute the same family of functions.

Each node is read as a *multiset of terms* (a sum), built in topological order:

1. ``input`` is one term, ``x`` (tagged with the input shape).
2. ``identity`` passes its input's terms through unchanged (identity edges are inlined).
3. ``zero`` contributes no terms (the empty sum).
4. ``add`` is the multiset union of its inputs' terms, so the order of summed inputs does not
   matter and ``a + a`` differs from ``a`` (multiplicities count).
5. Every other op makes one new term ``op[config](inputs)`` where each input is named by the
   canonical hash of its multiset (``concat`` keeps its input order). If all of its inputs are
   empty, the op counts as zero and contributes no terms (a convolution or pool of zero is
   treated as zero, as NAS-Bench-201 does).

The spec's canonical form is the output node's multiset, hash-consed: terms are identified by
the SHA-256 of their JSON (op, config with defaults filled, input multiset hashes), multisets by
the SHA-256 of their sorted ``(term hash, count)`` pairs. Node ids, node order and edge order
into ``add`` never enter, so isomorphic graphs get equal hashes; nodes whose contribution is
only ever summed into zero, or that never reach the output, never enter either. Metadata is
ignored. The hash also covers ``input_shape`` and ``num_outputs``.

On NAS-Bench-201 this merges every pair of cells that the benchmark's own ``unique_str`` merges
and splits the 15,625 cells into 4,930 classes (``tests/spec/test_nasbench_canonical.py``).
"""

from __future__ import annotations

from collections import Counter
import hashlib
import json
from typing import Any

from optuna_nas.spec._ops import Role
from optuna_nas.spec._ops import get_op
from optuna_nas.spec._spec import ArchitectureSpec

CANONICAL_VERSION = 1


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _Canonicaliser:
    def __init__(self) -> None:
        self.terms: dict[str, dict[str, Any]] = {}
        self.multisets: dict[str, list[list[Any]]] = {}

    def term(self, body: dict[str, Any]) -> Counter[str]:
        h = _digest(body)
        self.terms[h] = body
        return Counter({h: 1})

    def multiset_hash(self, terms: Counter[str]) -> str:
        items = sorted([h, k] for h, k in terms.items() if k)
        h = _digest(items)
        self.multisets[h] = items
        return h

    def run(self, spec: ArchitectureSpec) -> Counter[str]:
        values: dict[str, Counter[str]] = {}
        for node_id in spec.topological_order:
            node = spec.node(node_id)
            ins = [values[i] for i in spec.inputs(node_id)]
            role = get_op(node.op).role
            if role is Role.INPUT:
                values[node_id] = self.term({"op": "input", "shape": list(spec.input_shape)})
            elif role is Role.IDENTITY:
                values[node_id] = Counter(ins[0])
            elif role is Role.ZERO:
                values[node_id] = Counter()
            elif role is Role.SUM:
                total: Counter[str] = Counter()
                for c in ins:
                    total.update(c)
                values[node_id] = total
            elif not any(ins):
                values[node_id] = Counter()
            else:
                body = {
                    "op": node.op,
                    "config": dict(node.config),
                    "inputs": [self.multiset_hash(c) for c in ins],
                }
                values[node_id] = self.term(body)
        return values[spec.output_id]


def canonical_form(spec: ArchitectureSpec) -> dict[str, Any]:
    """The canonical form of ``spec`` as JSON-ready data (see the module docstring).

    ``{"version", "input_shape", "num_outputs", "output", "multisets", "terms"}`` where
    ``output`` is the hash of the output multiset and the tables hold every multiset and term
    reachable from it (keyed by hash).
    """
    c = _Canonicaliser()
    out = c.run(spec)
    root = c.multiset_hash(out)
    # Keep only what the output depends on.
    multisets: dict[str, list[list[Any]]] = {}
    terms: dict[str, dict[str, Any]] = {}
    stack = [root]
    while stack:
        m = stack.pop()
        if m in multisets:
            continue
        multisets[m] = c.multisets[m]
        for t, _ in c.multisets[m]:
            if t not in terms:
                terms[t] = c.terms[t]
                stack.extend(terms[t].get("inputs", []))
    return {
        "version": CANONICAL_VERSION,
        "input_shape": list(spec.input_shape),
        "num_outputs": spec.num_outputs,
        "output": root,
        "multisets": multisets,
        "terms": terms,
    }


def canonical_hash(spec: ArchitectureSpec) -> str:
    """SHA-256 hex digest equal for specs with the same canonical form."""
    c = _Canonicaliser()
    root = c.multiset_hash(c.run(spec))
    return _digest(
        {
            "version": CANONICAL_VERSION,
            "input_shape": list(spec.input_shape),
            "num_outputs": spec.num_outputs,
            "output": root,
        }
    )
