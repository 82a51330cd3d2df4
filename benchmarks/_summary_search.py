"""The summary's questions about search (sampler, evaluator, pruning, weight sharing), and
the helpers every question uses; ``_summary.py`` has the rest and puts them together.

A question gets ``results`` (a JSON file's name -> its content) and a ``Doc`` for links, and
returns what was measured, how to reproduce it and when not to use the thing, every number
computed from the JSON.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from results_md import anchor

Results = dict[str, Any]
Answer = tuple[list[str], list[str], list[str]]  # measured, reproduce, when not to use it
OPTUNA_SAMPLERS = ("random", "tpe", "nsga2", "gp")


def mean_se(values: list[float]) -> tuple[float, float]:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.mean(values), se


def met(ok: bool) -> str:
    return "MET" if ok else "**NOT MET**"


def span(values: list[float], fmt: str = "{:.0f}") -> str:
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


class Doc:
    """Links to a section (``prefix`` + its anchor) and to a JSON file."""

    def __init__(self, titles: dict[str, str], prefix: str, json_prefix: str) -> None:
        self.titles, self.prefix, self.json_prefix = titles, prefix, json_prefix

    def link(self, name: str, text: str | None = None) -> str:
        title = self.titles[name]
        return f"[{text or title}]({self.prefix}#{anchor(title)})"

    def source(self, name: str) -> str:
        return f"{self.link(name, 'section')}, [JSON]({self.json_prefix}{name})"

    def command(self, name: str, command: str) -> str:
        return f"`{command.strip()}` ({self.source(name)})"


def sampler(r: Results, doc: Doc) -> Answer:
    nb = r["nb201.json"]
    s, budgets = nb["single"], [str(b) for b in nb["budgets"]]
    mid, last = ("100" if "100" in budgets else budgets[len(budgets) // 2]), budgets[-1]
    ours = [n for n in s if n not in OPTUNA_SAMPLERS]

    def reg(n: str, b: str = mid) -> str:
        return f"{s[n][b]['mean_regret']:.3f} ± {s[n][b]['se']:.3f}"

    def best_at(b: str) -> str:
        return min(ours, key=lambda n: s[n][b]["mean_regret"])

    best = best_at(mid)
    diff = [
        a - b
        for a, b in zip(s[best][mid]["per_seed_test"], s["tpe"][mid]["per_seed_test"], strict=True)
    ]
    d, se = mean_se(diff)
    answer = [
        f"On NAS-Bench-201 (CIFAR-10 table, {len(nb['report_seeds'])} report seeds; regret = "
        "test-accuracy points below the best cell, lower is better), after "
        f"{mid} evaluations the best of ours is **{best} {reg(best)}**, Optuna's TPE "
        f"{reg('tpe')}, random {reg('random')}.",
        f"Paired on the same seeds, {best} is {d:+.3f} ± {se:.3f} points ahead of TPE "
        f"({sum(x > 0 for x in diff)} seeds better, {sum(x < 0 for x in diff)} worse)"
        + (": within one standard error, a tie." if abs(d) <= se else "."),
        "Best of ours at each budget: "
        + ", ".join(f"{b}: {best_at(b)} {reg(best_at(b), b)}" for b in budgets)
        + ".",
    ]
    for key, t in nb["targets"].items():
        if key.startswith("best of ours"):
            answer.append(
                f"Target ({key.removeprefix('best of ours: ')}): {met(t['met'])} "
                f"({t['sampler']} {t['mean_regret']:.3f})."
            )
    if nb.get("multi"):
        hv = nb["multi"]
        top = max(hv, key=lambda n: hv[n]["mean"])
        answer.append(
            f"Two objectives (accuracy and parameters), hypervolume: {top} "
            f"{hv[top]['mean']:.3f} ± {hv[top]['se']:.3f}, TPE {hv['tpe']['mean']:.3f}, "
            f"random {hv['random']['mean']:.3f}."
        )
    reproduce = [doc.command("nb201.json", nb["command"])]
    when_not = [
        f"`{n}` stops improving after {mid} evaluations ({reg(n)} at {mid}, {reg(n, last)} at "
        f"{last})."
        for n in ours
        if s[n][last]["mean_regret"] >= s[n][mid]["mean_regret"]
    ]
    if best_at(last) != best:
        when_not.append(
            f"With {last} evaluations `{best_at(last)}` ({reg(best_at(last), last)}) does at "
            f"least as well as `{best}` ({reg(best, last)})."
        )
    when_not += [
        f"`{n}` is no better than random at {b} evaluations ({v['mean_diff']:+.3f} ± "
        f"{v['se']:.3f})."
        for n in s
        for b in budgets
        if (v := s[n][b].get("vs_random")) is not None and v["mean_diff"] <= v["se"]
    ]
    so = r.get("sampler_overhead.json")
    if so is not None and "1000" in so["rows"].get("memory", {}):
        ms = {n: x["per_trial_s"] * 1e3 for n, x in so["rows"]["memory"]["1000"].items()}
        guided = [ms[n] for n in ms if n.startswith("evolution_predictor")]
        when_not.append(
            f"A predictor-guided sampler spends {span(guided, '{:.1f}')} ms per trial at 1,000 "
            f"trials in memory (plain evolution {ms['evolution']:.2f}, TPE "
            f"{ms['tpe_default']:.2f}, random {ms['random']:.2f}): nothing next to training a "
            "network, but plain evolution is cheaper for a lookup or zero-cost objective."
        )
        reproduce.append(doc.command("sampler_overhead.json", so["command"]))
    dt = r.get("darts.json")
    if dt is not None:
        dig, chosen = dt["digits"], dt["synthetic"]["variants"][0]
        rnd = dig["random"]
        ties = [
            x
            for x in dig["darts"]
            if 0 <= x["val_accuracy"] - rnd["median_val_accuracy"] < rnd["one_val_image"]
        ]
        when_not.append(
            f"DARTS is experimental: on a one-edge synthetic task {chosen['needed_op_first']} "
            f"of {len(chosen['searches'])} searches pick the one op that solves it; on digits "
            f"{dig['at_least_random_median']} of {len(dig['darts'])} reach the median of "
            f"{rnd['n']} random cells, {len(ties)} of them by less than one validation image "
            "(ties, not wins)."
        )
        reproduce.append(doc.command("darts.json", dt["command"]))
    return answer, reproduce, when_not


def _rows(space: dict[str, Any], prefix: str) -> dict[str, dict[str, float]]:
    return {k: v for k, v in space["rows"].items() if k.startswith(prefix)}


def evaluator(r: Results, doc: Doc) -> Answer:
    answer: list[str] = []
    reproduce: list[str] = []
    when_not: list[str] = []
    ev = r.get("evaluators.json")
    if ev is not None:
        few, weak, slow = [], [], []
        for name, space in ev["spaces"].items():
            noise = next(iter(_rows(space, "full training").values()))["kendall_tau"]
            parts: list[str] = []
            for prefix, below in (("zero-cost:", 0.05), ("proxy:", 0.5), ("proxy:", 1.0)):
                rows = {k: v for k, v in _rows(space, prefix).items() if v["cost_ratio"] < below}
                k = max(rows, key=lambda k, rows=rows: rows[k]["kendall_tau"])
                if not any(k in p for p in parts):
                    parts.append(
                        f"at {rows[k]['cost_ratio']:.1%} of a training `{k}` τ "
                        f"{rows[k]['kendall_tau']:.2f}"
                    )
            answer.append(
                f"{name} space ({space['archs']} architectures on digits, "
                f"{ev['config']['epochs']}-epoch ground truth; two training seeds agree at τ "
                f"{noise:.2f}): " + "; ".join(parts) + "."
            )
            pred = _rows(space, "predictor")
            if pred:
                top = max(v["kendall_tau"] for v in pred.values())
                few.append(
                    f"τ ≤ {top:.2f} on {name} after {span([int(k.split()[1]) for k in pred])}"
                )
            for k, v in _rows(space, "proxy:").items():
                if v["kendall_tau"] < 0.3:
                    weak.append(f"`{k}` keeps τ {v['kendall_tau']:.2f} on {name}")
                if v["cost_ratio"] > 0.5:
                    slow.append(v["cost_ratio"])
        if few:
            when_not.append(
                "The predictor with few trained architectures on a small space: "
                + ", ".join(few)
                + " trained."
            )
        if weak:
            when_not.append("Proxies that lose the ranking: " + ", ".join(weak) + ".")
        if slow:
            when_not.append(
                "Proxies that keep the per-batch work (lower resolution, half width) still cost "
                f"{span(slow, '{:.0%}')} of a training on networks this small."
            )
        reproduce.append(doc.command("evaluators.json", "python benchmarks/evaluators.py"))
    pr = r.get("predictor.json")
    if pr is not None:
        by = pr["summary"]
        n = "100" if "100" in by["mlp_ensemble"] else list(by["mlp_ensemble"])[-1]
        mlp = by["mlp_ensemble"][n]
        others = ", ".join(
            f"{k} {v[n]['spearman']:.3f}" for k, v in by.items() if k != "mlp_ensemble"
        )
        answer.append(
            f"Predictor (MLP ensemble) on NAS-Bench-201 after {n} trained architectures: "
            f"Spearman **{mlp['spearman']:.3f} ± {mlp['spearman_se']:.3f}** ({others})."
        )
        arms: dict[str, list[float]] = {}
        for x in pr.get("loop", []):
            arms.setdefault(x["arm"], []).append(x["test_acc"])
        if len(arms) > 1:
            accs = ", ".join("{} {:.2f} ± {:.2f}".format(a, *mean_se(v)) for a, v in arms.items())
            answer.append(
                f"In a search that trains {pr['loop'][0]['trained']} architectures, test "
                f"accuracy of the best: {accs}."
            )
        command = f"python benchmarks/predictor.py --seeds {len(pr['seeds'])}"
        reproduce.append(doc.command("predictor.json", command))
    return answer, reproduce, when_not


def pruning(r: Results, doc: Doc) -> Answer:
    pr = r["pruners.json"]
    sets = pr["spaces"]
    first = next(iter(sets.values()))

    def col(name: str, key: str) -> list[float]:
        return [v["pruners"][name][key] for v in sets.values() if name in v["pruners"]]

    def saved(name: str) -> str:
        return span([100 * x for x in col(name, "epochs_saved")]) + "%"

    answer = [
        f"Replaying {len(sets)} sets of recorded {first['epochs']}-epoch validation curves "
        "(digits and MNIST-5k): the default `LearningCurvePruner` saves "
        f"{saved('learning_curve')} of the training epochs and loses at most "
        f"{max(col('learning_curve', 'points_lost_mean')):g} accuracy points on average; "
        f"Optuna's MedianPruner saves {saved('median')}, losing at most "
        f"{max(col('median', 'points_lost_mean')):g}.",
    ]
    for name in (n for n in first["pruners"] if "held-out" in n):
        ok = sum(
            x["epochs_saved"] >= 0.4 and x["points_lost_mean"] <= 0.5
            for x in (v["pruners"][name] for v in sets.values())
        )
        answer.append(
            f"Target (≥ 40% saved, ≤ 0.5 points lost), `{name}`: met on {ok} of {len(sets)} "
            "curve sets."
        )
    when_not = [
        f"The patience pruner (`{n}`) saves only {saved(n)} on curves that saturate this quickly."
        for n in first["pruners"]
        if n.startswith("patience")
    ]
    lc, med = col("learning_curve", "epochs_saved"), col("median", "epochs_saved")
    if min(med) > max(lc) and max(col("median", "points_lost_mean")) <= max(
        col("learning_curve", "points_lost_mean")
    ):
        when_not.append(
            "`LearningCurvePruner` on curves like these: MedianPruner saved more epochs on every "
            "set, for no more points lost."
        )
    when_not.append(
        "Savings on long, slowly rising curves are not measured (these are "
        f"{first['epochs']}-epoch curves of small networks)."
    )
    return answer, [doc.command("pruners.json", pr["command"])], when_not


TUNING_ARCHS = [0]  # the architecture draw weight-sharing settings were chosen on
REPORT_ARCHS = [1]  # the draw drawn and trained after the choice, and reported


def weight_sharing(r: Results, doc: Doc) -> Answer:
    rows = [
        (k, name, x, run["setting"])
        for k, run in r["weight_sharing.json"]["runs"].items()
        for name, x in run["spaces"].items()
    ]
    chain = [row for row in rows if row[1] == "chain"]

    def same_but_draw(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return {**a, "arch_seeds": None} == {**b, "arch_seeds": None}

    # Choose on the tuning draw among the settings also run on the report draw; report that
    # setting's row on the report draw, which no choice looked at (NOTES.md).
    reported = [row for row in chain if row[3].get("arch_seeds") == REPORT_ARCHS]
    tuned = [
        row
        for row in chain
        if row[3].get("arch_seeds", [0]) == TUNING_ARCHS
        and any(same_but_draw(row[3], other[3]) for other in reported)
    ]
    chosen = max(tuned, key=lambda row: row[2]["kendall_tau"])
    key, _, b, setting = next(row for row in reported if same_but_draw(row[3], chosen[3]))
    one_shot = max(
        (row[2]["kendall_tau"] for row in reported if "few_shot" not in row[3]), default=math.nan
    )
    pooled = [row for row in chain if len(row[3].get("arch_seeds", [0])) > 1]
    ok = b["kendall_tau"] >= 0.6 and b["cost_ratio_per_candidate"] >= 100
    answer = [
        f"The setting chosen on architecture draw {TUNING_ARCHS[0]} (`{chosen[0]}`: "
        f"{setting.get('supernet_sampling', 'uniform')} sampling, few-shot split by "
        f"{setting.get('few_shot', '-')}) ranks {b['archs']} chain-space architectures of "
        f"draw {REPORT_ARCHS[0]}, drawn and trained after every choice, at Kendall τ "
        f"**{b['kendall_tau']:.2f}** (Spearman {b['spearman_rho']:.2f}, `{key}`) against "
        f"standalone training, whose two seeds agree at τ "
        f"{b['ground_truth_seed_kendall_tau']:.2f}; one-shot on that draw: τ {one_shot:.2f}.",
        f"A candidate costs {b['ws_seconds_per_candidate']:.2f} s against "
        f"{b['full_training_seconds_per_candidate']:.1f} s of standalone training for "
        f"{setting.get('ground_truth_epochs', '?')} epochs, the ground truth's length "
        f"(**{b['cost_ratio_per_candidate']:.0f}x** cheaper), after "
        f"{b['supernet_train_seconds']:,.0f} s of supernet training. Target (τ ≥ 0.6 at ≥ "
        f"100x): {met(ok)}.",
    ]
    if pooled:
        top = max(pooled, key=lambda row: row[2]["kendall_tau"])
        answer.append(
            f"Rows pooling draws {', '.join(map(str, top[3]['arch_seeds']))} (best τ "
            f"{top[2]['kendall_tau']:.2f}, `{top[0]}`) include the tuning draw: not a report "
            "number."
        )
    breakeven = b["supernet_train_seconds"] / b["full_training_seconds_per_candidate"]
    when_not = [
        f"Fewer than about {breakeven:,.0f} candidates: the supernet costs as much as training "
        f"that many standalone ({b['cost_ratio_amortised']:.1f}x over these {b['archs']}).",
    ]
    spos = [row for row in chain if row[3].get("supernet_sampling") != "fair"]
    if spos:
        k, _, x, _ = max(spos, key=lambda row: row[2]["kendall_tau"])
        when_not.append(
            f"Uniform single-path sampling (SPOS): at best τ {x['kendall_tau']:.2f} (`{k}`); "
            "use `sampling='fair'`."
        )
    cells = [row for row in rows if row[1] == "cell" and "ground_truth_seed_kendall_tau" in row[2]]
    if cells:
        when_not.append(
            "The cell space on small data: τ "
            + ", ".join(f"{x['kendall_tau']:.2f} (`{k}`)" for k, _, x, _ in cells)
            + ", while standalone training agrees with itself only at τ "
            + ", ".join(f"{x['ground_truth_seed_kendall_tau']:.2f}" for _, _, x, _ in cells)
            + ": not shown to work for cells."
        )
    command = "python benchmarks/weight_sharing.py ... (one command per row)"
    return answer, [doc.command("weight_sharing.json", command)], when_not
