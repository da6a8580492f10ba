"""`durabench report`: results directories in, report.html + report.md + report.json out.

The findings come first (harness/report/summary.py: what was lost or duplicated, under
which fault, how often, how to reproduce it), the integrity matrix next, provenance and
the commands that reproduce the results at the end. One builder per section; each
returns a Section whose first line is a plain reading of what it shows, with the
headline number. A section whose data is absent still appears
and says what is missing and how to get it, instead of failing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from harness.report import anomalies, chaos, figures, metrics
from harness.report.document import Code, Document, Note, Plot, Section, Table, format_value
from harness.report.findings import findings_section
from harness.report.load import ResultSet, load_results
from harness.report.render import render_html, render_json, render_markdown, write_figures
from harness.report.summary import summary_section

__all__ = ["ReportPaths", "build_document", "build_report"]


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    data: Path  # report.json: every table's raw numbers (for READMEs and tests)
    figures: list[Path]


def _plot(name: str, figure: Figure | None, alt: str) -> Plot | None:
    return Plot(name, figures.to_png(figure), alt) if figure is not None else None


def _blocks(*items: Plot | Table | Note | Code | None) -> list[Plot | Table | Note | Code]:
    return [i for i in items if i is not None]


def _ms(value: object) -> str:
    return f"{format_value(value)} ms"


def _headline(classes: pd.Series) -> str:
    """The fault class a reading quotes: a fault-free one when there is one."""
    names = list(dict.fromkeys(str(c) for c in classes))
    return next((c for c in names if c.endswith("(no faults)")), names[0])


def environment_section(results: ResultSet) -> Section:
    env = metrics.environment_table(results)
    facts = dict(zip(env["fact"], env["value"], strict=True))
    n = len(results.items)
    commands = list(dict.fromkeys(str(i.manifest.get("command") or "") for i in results.items))
    one = len(commands) == 1
    reading = (
        f"{n} results director{'y' if n == 1 else 'ies'} from host {facts.get('host')} "
        f"({facts.get('cores')} cores) at commit {facts.get('commit')}; "
        f"the command{'' if one else 's'} below reproduce{'s' if one else ''} them."
    )
    section = Section("environment", "Provenance: environment and how to reproduce", reading)
    section.add(
        Table("environment", env), Table("results", metrics.runs_table(results), "Results read")
    )
    section.add(Code("\n".join(c for c in commands if c) or "(no command recorded)"))
    for cell in results.missing:
        section.add(
            Note(
                f"Suite cell {cell.get('fault_class')} x {cell.get('backend')} has no results "
                f"({cell.get('status')}: {cell.get('error') or 'no results directory'})."
            )
        )
    return section


def integrity_section(results: ResultSet) -> Section:
    table = metrics.integrity_table(results)
    if table.empty:
        return Section("integrity", "Integrity", "No agent runs were judged in these results.").add(
            Note("runs.parquet is missing or empty: the run stopped before any verdict.")
        )
    worst = table.iloc[int(table["integrity"].to_numpy().argmin())]
    inconclusive = table[table["result"] == "inconclusive"]
    if (table["integrity"] == 1.0).all() and not (table["stray_effects"] > 0).any():
        reading = (
            "Every backend kept every run intact (all verdicts true) "
            "under every fault class tested."
        )
    else:
        reading = (
            f"Share of runs that passed every verdict: lowest is {worst['backend']} under "
            f"{worst['fault_class']}, {worst['passed']} of {worst['runs']} runs "
            f"({worst['integrity']:.3f})."
        )
    reading += (
        " Each heatmap cell shows integrity among the runs a fault exposed (every run when "
        "the scenario has no faults), its exact 95% (Clopper-Pearson) interval and n: "
        "0 failures in n runs only bounds the failure rate at about 3/n."
    )
    if len(inconclusive):
        reading += (
            f" {len(inconclusive)} cells are inconclusive: their faults exposed no run, so "
            "they tested nothing and are not passes."
        )
    matrix = metrics.integrity_matrix(table)
    labels = metrics.integrity_labels(table)
    shown = ["fault_class", "backend", "runs", "exposed", "passed", "integrity", "interval"]
    shown += ["n", "result"]
    if (table["trials"] > 1).any():
        shown += ["trials", "pass_k", "pass_k_lower", "pass_k_upper"]
    verdicts = [c for c in table.columns if c.startswith("anomalies.")]
    table = table.assign(
        by_verdict=[
            ", ".join(
                [f"{c.split('.', 1)[1]}={int(row[c])}" for c in verdicts if row[c]]
                + ([f"stray_effects={int(row['stray_effects'])}"] if row["stray_effects"] else [])
            )
            or "none"
            for _, row in table.iterrows()
        ]
    )
    alt = "; ".join(
        f"{r.backend} under {r.fault_class}: "
        + ("inconclusive" if r.result == "inconclusive" else f"{r.integrity:.3f} n={r.n}")
        for r in table.itertuples()
    )
    return Section("integrity", "Integrity: backend x fault class", reading).add(
        *_blocks(
            _plot(
                "integrity", figures.integrity_figure(matrix, labels), f"Integrity heatmap. {alt}"
            ),
            Table(
                "integrity",
                table,
                "Runs intact, exposed runs, the exact 95% interval of the evidence, the "
                "result, pass^k where tasks ran more than once, anomalies per verdict "
                "(stray effects, non-determinism included)",
                (*shown, "anomalies", "unknown", "by_verdict"),
            ),
        )
    )


def latency_section(results: ResultSet, colours: dict[str, str]) -> Section:
    per_step = results.frame("per_step")
    latency = metrics.latency_table(per_step)
    if latency.empty:
        return Section(
            "latency", "Per-step latency", "No step committed, so there is no latency to show."
        ).add(Note("steps.parquet has no ok commit row: nothing was acknowledged."))
    first = latency[latency["fault_class"] == _headline(latency["fault_class"])]
    parts = []
    for backend in dict.fromkeys(first["backend"]):
        rows = first[first["backend"] == backend].set_index("component")
        step, overhead = rows.loc["step"], rows.loc["overhead"]
        parts.append(
            f"{backend} p50 {_ms(step['p50'])} (overhead {_ms(overhead['p50'])}), "
            f"p99 {_ms(step['p99'])}"
        )
    reading = (
        f"How long a committed step takes and how much of it is orchestration rather than LLM "
        f"or tool time; under {first['fault_class'].iloc[0]}: " + "; ".join(parts) + "."
    )
    alt = "CDF of per-step latency and overhead per backend. " + "; ".join(parts)
    return Section("latency", "Per-step latency and orchestration overhead", reading).add(
        *_blocks(
            _plot("latency_cdf", figures.latency_cdf_figure(per_step, colours), alt),
            Table(
                "latency",
                latency,
                "Quantiles per step component (ms): step = llm + tool + overhead",
            ),
            _plot(
                "time_breakdown",
                figures.breakdown_figure(latency),
                "Mean time per step by component.",
            ),
        )
    )


def durability_section(results: ResultSet) -> Section:
    latency = metrics.latency_table(results.frame("per_step"))
    table = metrics.durability_table(latency)
    floor_note = Note(
        "The ratio to each backend's own raw floor is in the section 'Fidelity: cost "
        "against the raw floors' (results of `durabench run --with-floor`)."
    )
    if table.empty:
        reading = (
            "No durable backend ran next to the baseline in these results, so there is no "
            "durability overhead to report."
        )
        return Section("durability", "Durability overhead", reading).add(floor_note)
    known = table.dropna(subset=["ratio_p50"])
    if known.empty:
        reading = (
            f"No {metrics.BASELINE_BACKEND} backend ran under the same fault class, so no ratio "
            "can be formed: run the baseline alongside."
        )
    else:
        row = known[known["fault_class"] == _headline(known["fault_class"])].iloc[0]
        reading = (
            f"What durability costs per step under {row['fault_class']}: {row['backend']} spends "
            f"{row['ratio_p50']:.1f}x the baseline's orchestration time at p50 "
            f"({row['extra_ms_p50']:+.2f} ms per step)."
        )
    section = Section("durability", "Durability overhead against the baseline", reading)
    section.add(Table("durability", table))
    if table["floor_ratio_p50"].isna().all():
        section.add(floor_note)
    return section


def fidelity_section(results: ResultSet) -> Section:
    """Each backend against its own raw floor and the baseline, and start latency apart
    from step cost (summary.json of each directory)."""
    table = metrics.fidelity_table(results)
    title = "Fidelity: cost against the raw floors, start latency, throughput"
    if table.empty:
        return Section("fidelity", title, "No summaries in these results.")
    floored = table.dropna(subset=["step_vs_floor"])
    if floored.empty:
        reading = (
            "No raw floor was measured in these results: run `durabench run --with-floor` "
            "to see each backend's step cost as a ratio to the same steps written directly "
            "against its SDK. Start latency and steady throughput are below."
        )
    else:
        ratios = floored["step_vs_floor"].astype(float)
        worst = floored.iloc[int(ratios.to_numpy().argmax())]
        reading = (
            f"Step p50 against each backend's own floor, measured in the same run: the "
            f"furthest from its floor is {worst['backend']} at {worst['step_vs_floor']:.2f}x "
            f"({worst['step_p50']:.2f} ms against {worst['floor_step_p50']:.2f} ms). A ratio "
            "near 1 means durabench measures the backend, not its adapter."
        )
    section = Section("fidelity", title, reading)
    section.add(Table("fidelity", table))
    others = metrics.other_floors_table(results)
    if not others.empty:
        section.add(
            Table(
                "other_floors",
                others,
                "The backend's step p50 against the other floors it lists (framework "
                "backends: their substrate's hand-written floor)",
            )
        )
    if not floored.empty:
        section.add(
            Note(
                "Each floor ran once before the backend's load and once after it; 'step vs "
                "floor before after' is the ratio to each pass alone. Where the two differ "
                "widely the floor itself moved between its passes, and one run cannot settle "
                "the ratio: `python -m pytest tests/benchmarks/test_floor_ratios.py "
                "--benchmark-enable -s` reports the median of three rounds. 'service vs "
                "floor' is the simulated LLM's and tools' own time per step against the "
                "same during the floor: above 1, the services themselves ran slower beside "
                "the backend's processes."
            )
        )
    section.add(
        Note(
            "Start latency: from asking the backend to start a run to its first phase. "
            "Steady steps/s: committed steps between the 10th and 90th percentile of commit "
            "time, so ramp-up and drain are left out; steps/s is end to end."
        )
    )
    return section


def timeline_section(results: ResultSet, colours: dict[str, str]) -> Section:
    pairs = chaos.timeline_runs(results)
    untimed = [
        Note(f"No timeline for {backend} under {item.fault_class} ({item.label}): {why}.")
        for item, backend, why in chaos.untimed_fault_runs(results)
    ]
    if not pairs:
        reading = (
            "No results here injected a fault, so there is no timeline to draw."
            if not untimed
            else "No fault took effect at a point in time, so there is no timeline to draw."
        )
        hint = Note("Run a scenario with faults (e.g. scenarios/chaos/kill.yaml) to get one.")
        return Section("timeline", "Timelines under faults", reading).add(*untimed, hint)
    reading = (
        f"Committed steps per second and each step's latency over time for {len(pairs)} fault "
        "run(s); shaded windows (a line for an instant fault) are when each fault was active."
    )
    section = Section("timeline", "Timelines under faults", reading)
    for i, (item, backend) in enumerate(pairs, 1):
        windows = chaos.fault_windows(item, backend)
        rate = chaos.throughput(item, backend)
        steps = item.per_step[item.per_step["backend"] == backend]
        title = f"{backend} · {item.fault_class} · {item.label}"
        alt = f"Timeline of {title}: {len(steps)} committed steps; faults " + ", ".join(
            f"{w.kind} at {format_value(w.start_s)} s" for w in windows.itertuples()
        )
        figure = figures.timeline_figure(
            title, rate, steps, windows, colours.get(backend, "#444444")
        )
        section.add(
            *_blocks(
                _plot(f"timeline_{i}", figure, alt),
                Table(f"faults_{i}", windows, f"Faults: {title}"),
            )
        )
    return section.add(*untimed)


def recovery_section(results: ResultSet, colours: dict[str, str]) -> Section:
    times = chaos.recovery_times(results)
    stats = chaos.recovery_stats(times)
    wasted = chaos.wasted_table(results)
    total_llm = int(wasted["wasted_llm_calls"].sum()) if not wasted.empty else 0
    total_tools = int(wasted["wasted_tool_executions"].sum()) if not wasted.empty else 0
    if stats.empty:
        lead = "No run was caught mid-flight by an injected fault, so there are no recovery times"
    else:
        worst = stats.sort_values("p50", na_position="first").iloc[-1]
        lead = (
            f"After a fault, affected runs committed again after a median "
            f"{_ms(worst['p50'])} at worst ({worst['kind']} on {worst['backend']}); "
            f"{int(stats['unrecovered'].sum())} never did"
        )
    reading = (
        f"{lead}; repeated work: {total_llm} extra LLM calls "
        f"and {total_tools} extra tool executions."
    )
    section = Section("recovery", "Recovery time and wasted work", reading)
    if stats.empty:
        section.add(Note("No recovery times: no fault was injected while runs were in flight."))
    else:
        section.add(
            *_blocks(
                _plot(
                    "recovery",
                    figures.recovery_figure(times, colours),
                    f"Recovery times. {reading}",
                ),
                Table("recovery", stats, "Recovery time per fault kind (ms)"),
            )
        )
    section.add(
        *_blocks(
            _plot("wasted", figures.wasted_figure(wasted, colours), f"Wasted work. {reading}"),
            Table("wasted", wasted, "Work beyond the oracle's, per fault class"),
        )
    )
    return section


def bloat_section(results: ResultSet, colours: dict[str, str]) -> Section:
    table = metrics.bloat_table(results)
    if table.empty:
        return Section(
            "bloat", "State bloat", "No run was read back, so there is nothing to weigh."
        )
    pooled = table.dropna(subset=["bytes_persisted"]).groupby("backend", sort=False)
    parts = [
        f"{backend} {format_value(g['bytes_persisted'].sum() / g['steps_persisted'].sum())} "
        "bytes/step"
        for backend, g in pooled
        if g["steps_persisted"].sum() > 0
    ]
    reading = (
        "What each backend stores per persisted step (all its runs): " + "; ".join(parts) + "."
        if parts
        else "No backend reported persisted bytes."
    )
    alt = f"Persisted bytes and history length against steps per run. {reading}"
    return Section("bloat", "State bloat", reading).add(
        *_blocks(
            _plot(
                "bloat",
                figures.bloat_figure(metrics.judged_runs(results.frame("runs")), colours),
                alt,
            ),
            Table("bloat", table),
        )
    )


def anomaly_section(results: ResultSet) -> Section:
    examples = anomalies.anomaly_examples(results)
    table = anomalies.anomaly_table(results)
    if not examples:
        return Section("anomalies", "Anomalies", "No anomalies: every verdict held for every run.")
    reading = (
        f"{len(table)} kind(s) of anomaly (backend x verdict); below, the first and the worst "
        "run of each, with the evidence the checker kept."
    )
    section = Section("anomalies", "Anomalies: first and worst examples", reading)
    section.add(Table("anomalies", table))
    for i, example in enumerate(examples, 1):
        line, rows = anomalies.detail_rows(example.detail)
        state = "unknown" if example.valid is None else "false"
        section.add(
            Note(
                f"{example.verdict} = {state} on {example.backend}, {example.which}: run "
                f"{example.run_id} in {example.results} ({example.fault_class}). {line}"
            )
        )
        if not rows.empty:
            section.add(Table(f"anomaly_{i}", rows))
    return section


SCALING_COLUMNS = (
    "backend",
    "concurrency",
    "steps",
    "integrity",
    "steps_per_s",
    "runs_per_s",
    "step_p50_ms",
    "step_p99_ms",
    "overhead_p50_ms",
    "overhead_p99_ms",
    "bytes_per_step",
    "history_length_mean",
)


def scaling_section(results: ResultSet) -> Section:
    """Throughput against concurrency (knee marked) and cost against history length,
    from `durabench sweep` directories given to the report."""
    from harness.load.figures import cost_figure, throughput_figure

    if not results.sweeps:
        return Section(
            "scaling",
            "Scaling: throughput and cost against load and history length",
            "No sweep directory was given (durabench sweep), so there is no scaling curve.",
        )
    cells = pd.concat(results.sweeps, ignore_index=True)
    ok = cells[cells["status"] == "ok"] if "status" in cells else cells
    peaks = ok.groupby("backend")["steps_per_s"].max().sort_values(ascending=False)
    reading = (
        "Peak committed steps/s per backend over the grid: "
        + "; ".join(f"{backend} {format_value(value)}" for backend, value in peaks.items())
        + "."
    )
    shown = ok[[c for c in SCALING_COLUMNS if c in ok.columns]].sort_values(
        ["backend", "steps", "concurrency"]
    )
    return Section(
        "scaling", "Scaling: throughput and cost against load and history length", reading
    ).add(
        *_blocks(
            _plot(
                "scaling_throughput",
                throughput_figure(cells),
                f"Throughput against runs in flight, knee starred. {reading}",
            ),
            _plot(
                "scaling_cost",
                cost_figure(cells),
                "Per-step overhead and persisted bytes per step against steps per run.",
            ),
            Table("scaling", shown.reset_index(drop=True)),
        )
    )


def build_document(results: ResultSet, inputs: list[str]) -> Document:
    colours = figures.backend_colours(results.backends)
    # findings first, the integrity matrix next, provenance and reproduction at the end
    sections = [summary_section(results)]
    if results.explorations:
        sections.append(findings_section(results.explorations))
    sections += [
        integrity_section(results),
        anomaly_section(results),
        latency_section(results, colours),
        durability_section(results),
        fidelity_section(results),
        timeline_section(results, colours),
        recovery_section(results, colours),
        bloat_section(results, colours),
        scaling_section(results),
        environment_section(results),
    ]
    subtitle = (
        f"{len(results.items)} results, backends {', '.join(results.backends)}; "
        f"generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    return Document("durabench report", subtitle, sections, inputs)


def build_report(results_dirs: list[Path], out_dir: Path) -> ReportPaths:
    """Write report.html (self-contained), report.md with its PNGs beside it, and
    report.json into out_dir (created if needed)."""
    results = load_results(results_dirs)
    document = build_document(results, [str(p) for p in results_dirs])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        html=out_dir / "report.html",
        markdown=out_dir / "report.md",
        data=out_dir / "report.json",
        figures=write_figures(document, out_dir),
    )
    paths.html.write_text(render_html(document), encoding="utf-8")
    paths.markdown.write_text(render_markdown(document), encoding="utf-8")
    paths.data.write_text(render_json(document), encoding="utf-8")
    return paths
