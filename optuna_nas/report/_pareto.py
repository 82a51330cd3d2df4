"""The Pareto front of a study, read from its storage, as a plain-text table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import math

import optuna
from optuna.trial import FrozenTrial

from optuna_nas.spec import ArchitectureSpec

_PLUMBING = frozenset({"input", "add", "identity", "zero", "global_pool", "concat"})


def format_value(value: float | int | None) -> str:
    """A number for a table: integers (and integral floats) whole, others to 4 digits."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.4g}"


def stored_spec(trial: FrozenTrial | optuna.Trial) -> ArchitectureSpec | None:
    """The spec a trial stores in ``user_attrs["spec"]`` (a dict, or its JSON text), if any."""
    data = trial.user_attrs.get("spec")
    if data is None:
        return None
    if isinstance(data, str):
        return ArchitectureSpec.from_json(data)
    return ArchitectureSpec.from_dict(data)


def describe_spec(spec: ArchitectureSpec) -> str:
    """A one-line summary of the layers of ``spec``: op counts, most frequent first."""
    counts = Counter(n.op for n in spec.nodes if n.op not in _PLUMBING)
    return ", ".join(f"{k}x{op}" for op, k in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def pareto_table(study: optuna.Study, *, attrs: Sequence[str] = ("params", "flops")) -> str:
    """The study's best trials (its Pareto front for several objectives) as a text table.

    Uses :attr:`optuna.study.Study.best_trials`, so infeasible trials never appear. Columns:
    trial number, each objective (named by ``study.metric_names`` when set), the user attrs in
    ``attrs`` (those not already objectives), the canonical hash and the layer summary.
    """
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    extra = [a for a in attrs if a not in names]
    header = ["trial", *names, *extra, "hash", "layers"]
    rows = []
    for t in sorted(study.best_trials, key=lambda t: tuple(t.values or ())):
        spec = stored_spec(t)
        rows.append(
            [
                str(t.number),
                *(format_value(v) for v in t.values or ()),
                *(str(t.user_attrs.get(a, "")) for a in extra),
                str(t.user_attrs.get("canonical_hash", ""))[:10],
                describe_spec(spec) if spec else "",
            ]
        )
    return text_table(header, rows)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` and ``rows`` as left-aligned columns two spaces apart, with a rule of dashes
    under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
