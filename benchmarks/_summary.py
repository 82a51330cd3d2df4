"""The summary at the top of ``benchmarks/RESULTS.md`` and the README's headline numbers.

Every number here is computed from the benchmarks' JSON files (``results`` maps a file name to
its content; ``titles`` maps it to its section's heading, for links). A question whose JSON is
missing says so instead of answering. Targets are the issues' targets; a missed one says so.
The questions about search are in ``_summary_search.py``.
"""

from __future__ import annotations

from collections.abc import Callable
import statistics
from typing import Any

from _summary_search import Answer
from _summary_search import Doc
from _summary_search import Results
from _summary_search import evaluator
from _summary_search import met
from _summary_search import pruning
from _summary_search import sampler
from _summary_search import span
from _summary_search import weight_sharing

GPU_IMAGES_TARGET = 25_000  # issue #13: training images/s on one H200 at batch 256
REFERENCE_TARGET = 0.9  # issue #13: the library path at least 0.9x the hand-written loop


def _gaps(rows: list[dict[str, Any]], key: str) -> float:
    """Mean bf16 minus fp32 ``key``, in points, over the seeds."""
    by = {(x["precision"], x["seed"]): x[key] for x in rows}
    seeds = sorted({x["seed"] for x in rows})
    return statistics.mean(100 * (by["bf16", s] - by["fp32", s]) for s in seeds)


def _training(r: Results, doc: Doc) -> Answer:
    answer: list[str] = []
    reproduce: list[str] = []
    when_not: list[str] = []
    gt = r.get("gpu_training.json")
    if gt is not None:
        best, ratios = gt["runs"]["library_best"], gt["ratios"]
        ips, ref = best["images_per_second"], ratios["library_best_over_reference"]
        miss = f" (missed by {1 - ips / GPU_IMAGES_TARGET:.0%})" if ips < GPU_IMAGES_TARGET else ""
        answer.append(
            f"{gt['machine'].get('gpu', gt['device'])}, NAS-Bench-201 network, batch "
            f"{gt['settings']['batch']}, bf16 + channels-last + compile: **{ips:,.0f} training "
            f"images/s**, {ref:.2f}x a hand-written CUDA-graph loop (target ≥ "
            f"{REFERENCE_TARGET}x: {met(ref >= REFERENCE_TARGET)}), "
            f"{ratios['library_best_over_fp32_default']:.1f}x the fp32 default. Target ≥ "
            f"{GPU_IMAGES_TARGET:,} images/s: {met(ips >= GPU_IMAGES_TARGET)}{miss}."
        )
        epochs = gt["break_even"]["cifar10_epochs"]
        if epochs is not None:
            when_not.append(
                f'`compile="reduce-overhead"` for short trials: its '
                f"{best['first_epoch_extra_seconds']:.0f} s compile pays off only after "
                f"{epochs:.1f} CIFAR-10-sized epochs per candidate."
            )
        reproduce.append(doc.command("gpu_training.json", gt["command"]))
    sb = r.get("gpu_step_breakdown.json")
    if sb is not None and {"+gather", "+sgd", "+clip"} <= set(sb["runs"]):
        step = {k: v["wall_ms_per_step"] for k, v in sb["runs"].items()}
        answer.append(
            "Where the step goes: the eager SGD step and gradient clipping outside the graph "
            f"add {step['+clip'] - step['+gather']:.1f} ms to a {step['+clip']:.1f} ms step; "
            f"without clipping it runs {sb['runs']['+sgd']['images_per_second']:,.0f} images/s."
        )
        reproduce.append(doc.command("gpu_step_breakdown.json", sb["command"]))
    tg = r.get("training_checks_gpu.json")
    if tg is not None:
        val, test = (_gaps(tg["precision"], k) for k in ("val_accuracy", "test_accuracy"))
        answer.append(
            f"bf16 against fp32 accuracy on {tg['data']} ({len(tg['precision']) // 2} seeds, "
            f"GPU): mean gap {val:+.2f} val / {test:+.2f} test points (target within 0.5: "
            f"{met(max(abs(val), abs(test)) <= 0.5)})."
        )
    ckpt = []
    if gt is not None:
        ckpt.append(
            f"{gt['checkpoint']['overhead_fraction_cifar10_epoch']:.1%} of a CIFAR-10 epoch "
            "on the GPU"
        )
    tc = r.get("training_checks.json")
    if tc is not None and "checkpoint" in tc:
        ckpt.append(f"{tc['checkpoint']['overhead_fraction']:.2%} of an MNIST-5k epoch on CPU")
        sec = {
            p: statistics.mean(
                x["seconds_per_epoch"] for x in tc["precision"] if x["precision"] == p
            )
            for p in ("fp32", "bf16")
        }
        if sec["bf16"] > sec["fp32"]:
            when_not.append(
                f"bf16 on a CPU: {sec['bf16']:.1f} s per epoch against {sec['fp32']:.1f} s in "
                "fp32 (slower, not faster)."
            )
        reproduce.append(
            doc.command("training_checks.json", "python benchmarks/training_checks.py")
        )
    if ckpt:
        answer.append(f"Per-epoch checkpoint into the study: {', '.join(ckpt)} (target ≤ 5%).")
    dl = r.get("data_loading.json")
    if dl is not None:
        by: dict[str, list[float]] = {}
        for x in dl["speed"]:
            by.setdefault(x["epoch"], []).append(x["ratio"])
        answer.append(
            "In-memory fast path against a plain DataLoader (CPU): "
            + ", ".join(f"{e} epoch {span(v, '{:.2f}')}x" for e, v in by.items())
            + "."
        )
        reproduce.append(doc.command("data_loading.json", "python benchmarks/data_loading.py"))
    bo = r.get("builder_overhead.json")
    if bo is not None:
        ratios = {(n, c[6:]): x["ratio"] for n, row in bo["rows"].items() for c, x in row.items()}
        worst = max(ratios, key=lambda k: ratios[k])
        answer.append(
            "A model from `build_model(spec)` against the same network written by hand: "
            f"forward-time ratio {span(list(ratios.values()), '{:.3f}')} (worst {worst[0]} at "
            f"batch {worst[1]}; target ≤ 1.05: {met(ratios[worst] <= 1.05)})."
        )
        command = "python benchmarks/builder_overhead.py"
        reproduce.append(doc.command("builder_overhead.json", command))
    cpu = r.get("gpu_training_cpu.json")
    if cpu is not None and cpu["ratios"]["library_best_over_reference"] < REFERENCE_TARGET:
        when_not.append(
            "Expecting the GPU's ratios on a CPU: there the library's compiled path ran at "
            f"{cpu['ratios']['library_best_over_reference']:.2f}x the hand-written loop "
            f"({doc.link('gpu_training_cpu.json', 'CPU mode')})."
        )
    return answer, reproduce, when_not


def _chip(r: Results, doc: Doc) -> Answer:
    gt = r["gpu_training.json"]
    best, m = gt["runs"]["library_best"], gt["machine"]
    answer = [
        f"No: the compiled library path achieves {best['achieved_tflops']:.1f} TFLOP/s, "
        f"{best['fraction_of_peak']:.1%} of the {m.get('gpu')}'s {gt['peak_tflops']} dense "
        f"bf16 TFLOP/s, in {best['peak_memory_mib']:,.0f} MiB of {m.get('gpu_memory_gib')} GiB "
        f"({gt['forward_flops_per_image'] / 1e6:.0f} MFLOPs forward per image): a network "
        "this small is bound by kernel launches, not arithmetic.",
    ]
    when_not = ["Training several candidates at once on one GPU was not measured."]
    return answer, [doc.command("gpu_training.json", gt["command"])], when_not


def _workers(r: Results, doc: Doc) -> Answer:
    answer: list[str] = []
    reproduce: list[str] = []
    when_not: list[str] = []
    st = r.get("storage.json")
    if st is not None:
        workers, tp = st["settings"]["workers"], st["throughput"]
        rates = ", ".join(
            f"{k} " + "/".join(f"{tp[k][str(w)]:.0f}" for w in workers)
            for k in tp
            if k != "inmemory"
        )
        answer.append(
            f"Trivial objective on a {st['machine']['cores']}-core machine, trials/s with "
            f"{'/'.join(map(str, workers))} worker processes: {rates}. More workers than cores "
            "added nothing there; a trial that trains a network for seconds is far below these "
            "rates, so one worker per device is the setup to start from."
        )
        resume = ", ".join(f"{k} {v['nas_s']:.1f} s" for k, v in st["resume"].items())
        when_not.append(
            f"A SQL storage where resuming must be quick: a {st['settings']['resume_trials']:,}"
            f"-trial study resumed in {resume}."
        )
        reproduce.append(doc.command("storage.json", "python benchmarks/storage.py"))
    to = r.get("trial_overhead.json")
    if to is not None:
        done = {k: v for k, v in to["storages"].items() if "ratio" in v}
        ok = all(v["ratio"] <= to["target_ratio"] for v in done.values())
        ratios = ", ".join(
            f"{k} {v['ratio']:.2f}x ({v['plain_ms']:.0f} → {v['nas_ms']:.0f} ms)"
            for k, v in done.items()
        )
        answer.append(
            "optuna-nas's per-trial bookkeeping (deduplication, attrs, heartbeats) over plain "
            f"Optuna: {ratios} (target ≤ {to['target_ratio']}x: {met(ok)})."
        )
        reproduce.append(doc.command("trial_overhead.json", "python benchmarks/trial_overhead.py"))
    fa = r.get("faults.json")
    if fa is not None:
        t = fa["totals"]
        late = [x for x in fa["rounds"] if (x["recover_s"] or 0) > x["bound_s"]]
        alone = sum(x["workers"] == 1 for x in late)
        answer.append(
            f"`kill -9` of a worker, {t['kills']} times ({t['sqlite']} SQLite, "
            f"{t['postgresql']} PostgreSQL, {t['during_supernet']} during supernet training): "
            f"**{t['lost']} completed trials lost, {t['duplicates']} duplicate evaluations**, "
            f"{t['stuck']} stuck claims; {t['within_bound']} of {t['recovered']} recoveries "
            "within two heartbeats + grace"
            + (
                f" ({alone} of the {len(late)} late ones had a single worker, whose rerun had "
                "to start first)."
                if late
                else "."
            )
        )
        reproduce.append(doc.command("faults.json", "python benchmarks/faults.py"))
    sc = r.get("scale.json")
    if sc is not None:
        from results_md import script

        scale = script("scale")
        histories = sorted({row["history"] for row in sc["rows"]})

        def speedups(storage: str) -> str:
            return ", ".join(
                f"{s} "
                + " / ".join(
                    "-" if x is None else f"{x:.1f}x"
                    for x in (scale.speedup(sc, storage, s, h) for h in histories)
                )
                for s in ("evolution", "tpe")
            )

        two = any(row["storage"] == "grpc-2p" for row in sc["rows"])

        ok = all(hit for _, hit in scale.targets(sc))
        answer.append(
            f"16 workers with a 1 s objective, steady state, against one worker (studies with "
            f"{' / '.join(f'{h:,}' for h in histories)} trials of history): directly on "
            f"PostgreSQL {speedups('postgresql')}; through the gRPC proxy "
            f"{speedups('grpc')}"
            + (f"; through a proxy of 2 server processes {speedups('grpc-2p')}" if two else "")
            + ", all on one "
            f"{sc['machine']['cpus']}-core machine (targets: {met(ok)}, see the section)."
        )
        reproduce.append(doc.command("scale.json", "python benchmarks/scale.py"))
        when_not.append(
            "The gRPC proxy on a machine that also runs the workers: a server process spends "
            "more CPU per trial than the database (the section's server CPU column) under one "
            "interpreter lock, so on a small machine it, not the database, caps the "
            "throughput; give it cores of its own and `--processes`, or let workers open the "
            "database directly."
        )
    else:
        when_not.append(
            "Many workers on one study (more than 4 processes, or several hosts) is not "
            "measured yet: `benchmarks/scale.py` has no results."
        )
    return answer, reproduce, when_not


QUESTIONS: tuple[tuple[str, tuple[str, ...], Callable[[Results, Doc], Answer]], ...] = (
    ("Which sampler?", ("nb201.json",), sampler),
    ("Which evaluator at which budget?", (), evaluator),
    ("How much does pruning save?", ("pruners.json",), pruning),
    ("What does weight sharing cost, and how faithful is it?", ("weight_sharing.json",),
     weight_sharing),
    ("How fast is the training path?", (), _training),
    ("Does GPU training reach the chip?", ("gpu_training.json",), _chip),
    ("How many workers?", (), _workers),
)  # fmt: skip


def summary(results: Results, titles: dict[str, str]) -> str:
    """The "## Summary" section of RESULTS.md."""
    doc = Doc(titles, "", "results/")
    lines = ["## Summary"]
    for question, needs, fn in QUESTIONS:
        lines += ["", f"### {question}", ""]
        missing = [n for n in needs if n not in results]
        if missing:
            lines.append(f"Not measured: no `results/{missing[0]}`.")
            continue
        answer, reproduce, when_not = fn(results, doc)
        lines += [f"- {a}" for a in answer]
        lines += ["", "Reproduce: " + "; ".join(reproduce) + "."]
        if when_not:
            lines += ["", "When not to use it:", "", *(f"- {w}" for w in when_not)]
    return "\n".join(lines)


def readme_block(results: Results, titles: dict[str, str]) -> str:
    """The README's headline numbers, each linked to its section and JSON."""
    doc = Doc(titles, "benchmarks/RESULTS.md", "benchmarks/results/")
    out = []
    if (nb := results.get("nb201.json")) is not None:
        s = nb["single"]
        t = next(v for k, v in nb["targets"].items() if k.startswith("best of ours"))
        out.append(
            "Sampler: NAS-Bench-201 regret after 100 evaluations (lower is better): "
            f"**{t['sampler']} {t['mean_regret']:.3f}**, TPE {s['tpe']['100']['mean_regret']:.3f},"
            f" random {s['random']['100']['mean_regret']:.3f} (target ≤ 0.10: "
            f"{'met' if t['met'] else 'not met'}) — {doc.source('nb201.json')}"
        )
    if (pr := results.get("predictor.json")) is not None:
        mlp, rf = (pr["summary"][k]["100"]["spearman"] for k in ("mlp_ensemble", "random_forest"))
        out.append(
            f"Predictor: Spearman **{mlp:.3f}** on NAS-Bench-201 after 100 trained architectures "
            f"(random forest {rf:.3f}) — {doc.source('predictor.json')}"
        )
    if (gt := results.get("gpu_training.json")) is not None:
        ips = gt["runs"]["library_best"]["images_per_second"]
        met = "met" if ips >= GPU_IMAGES_TARGET else "missed"
        out.append(
            f"Training: **{ips:,.0f} images/s** on one {gt['machine'].get('gpu')}, "
            f"**{gt['ratios']['library_best_over_reference']:.2f}x** a hand-written CUDA-graph "
            f"loop (target {GPU_IMAGES_TARGET:,}: {met}) — {doc.source('gpu_training.json')}"
        )
    if (bo := results.get("builder_overhead.json")) is not None:
        worst = max(x["ratio"] for row in bo["rows"].values() for x in row.values())
        out.append(
            f"Builder: a built model's forward takes at most **{worst:.3f}x** the time of the "
            f"same network written by hand — {doc.source('builder_overhead.json')}"
        )
    if (fa := results.get("faults.json")) is not None:
        t = fa["totals"]
        out.append(
            f"Faults: **{t['kills']}** `kill -9` rounds, **{t['lost']}** completed trials lost, "
            f"**{t['duplicates']}** duplicate evaluations — {doc.source('faults.json')}"
        )
    if (to := results.get("trial_overhead.json")) is not None:
        done = {k: v for k, v in to["storages"].items() if "ratio" in v}
        out.append(
            "Per-trial overhead over plain Optuna: "
            + ", ".join(f"**{v['ratio']:.2f}x** {k}" for k, v in done.items())
            + f" (target ≤ {to['target_ratio']}x) — {doc.source('trial_overhead.json')}"
        )
    return "\n".join(f"- {x}" for x in out)
