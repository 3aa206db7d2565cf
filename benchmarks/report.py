"""Turns the harness's JSON lines into benchmarks/results/latest.{json,md} and,
with matplotlib installed, the chart latest.png.

Usage: report.py RESULTS_DIR RECORDS R1_RECORDS
"""
import json
import os
import platform
import statistics
import subprocess
import sys

out, records, r1_records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


F1 = "F1 failover"
# R1's requirement: changelog records/s in the restore phase itself.
R1_TARGET = 1_000_000
R2 = "R2 restore beside processing"
rows, latency = lines("latest.jsonl"), lines("latency.jsonl")
# F1's, R2's and the scaling rows have their own figures and tables.
failover = [r for r in rows if r["workload"] == F1]
beside = [r for r in rows if r["workload"] == R2]
scaling_rows = [r for r in rows if r.get("scaling")]
rows = [r for r in rows if r["workload"] not in (F1, R2) and not r.get("scaling")]
cpu = next(
    (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
    platform.processor(),
)
machine = {
    "cores": os.cpu_count(),
    "cpu": cpu,
    "kernel": platform.release(),
    "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
    "java": subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0],
    "kafka": "4.4.0",
    "kafka_streams": "4.4.0",
    "quixstreams": "3.28.1",
    "records": records,
    "r1_records": r1_records,
}


def ratios():
    """rivulet / raw and rivulet / kafka-streams for every workload and guarantee."""
    by = {(r["workload"], r["guarantee"], r["contender"]): r for r in rows}
    result = []
    for (w, g, c), r in by.items():
        if c != "rivulet":
            continue
        entry = {"workload": w, "guarantee": g}
        for peer in ("raw", "kafka-streams", "quix"):
            p = by.get((w, g, peer))
            if p and p.get("verified") and r.get("verified"):
                entry[f"cpu_vs_{peer}"] = r["cpu_us_per_record"] / p["cpu_us_per_record"]
                entry[f"rate_vs_{peer}"] = r["records_per_s"] / p["records_per_s"]
                # R1: the restore phase alone, apart from start-up (when both reported one).
                if r.get("restore_phase_records_per_s") and p.get("restore_phase_records_per_s"):
                    entry[f"restore_phase_rate_vs_{peer}"] = (r["restore_phase_records_per_s"]
                                                              / p["restore_phase_records_per_s"])
        result.append(entry)
    return result


def busy_cores(r):
    """(rivulet, broker) CPU seconds per wall second of a run, when the broker's CPU was measured."""
    if r.get("broker_cpu_s") is None or not r.get("wall_s"):
        return None
    return r["cpu_s"] / r["wall_s"], r["broker_cpu_s"] / r["wall_s"]


def scaling_summary():
    """The threads rows' records/s ratio (2 threads ÷ 1) and the keys rows' spread of CPU-µs/record."""
    threads = {r["threads"]: r for r in scaling_rows if r["scaling"] == "threads" and r.get("verified")}
    keys = [r for r in scaling_rows if r["scaling"] == "keys" and r.get("verified")]
    result = {"rows": scaling_rows}
    if 1 in threads and 2 in threads:
        result["threads"] = {
            "records_per_s_ratio": threads[2]["records_per_s"] / threads[1]["records_per_s"],
            "cpu_us_per_record": {str(t): r["cpu_us_per_record"] for t, r in sorted(threads.items())},
            "busy_cores": {str(t): busy_cores(r) for t, r in sorted(threads.items()) if busy_cores(r)},
            "target_ratio": 1.7,
        }
    if len(keys) >= 2:
        cpu = [r["cpu_us_per_record"] for r in keys]
        mean = sum(cpu) / len(cpu)
        result["keys"] = {
            "cpu_us_per_record_max_over_min": max(cpu) / min(cpu),
            # The requirement is "within ±15%": the largest distance from the rows' mean.
            "cpu_us_per_record_max_deviation": max(abs(c / mean - 1) for c in cpu),
            "target_deviation": 0.15,
        }
    return result


def latency_medians():
    """The latency passes per workload and contender: medians of their p50, p99 and max, and the p99 range."""
    passes = {}
    for r in latency:
        passes.setdefault((r["workload"], r["contender"]), []).append(r)
    result = []
    for (workload, contender), rs in passes.items():
        p99s = sorted(r["p99_ms"] for r in rs)
        result.append({
            "workload": workload,
            "contender": contender,
            "guarantee": rs[0]["guarantee"],
            "rate": rs[0]["rate"],
            "passes": len(rs),
            "results": sum(r["results"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(p99s),
            "p99_min_ms": p99s[0],
            "p99_max_ms": p99s[-1],
            "max_ms": statistics.median(r["max_ms"] for r in rs),
        })
    return result


summary = ratios()
scaling = scaling_summary()
latency_summary = latency_medians()
json.dump({"machine": machine, "results": rows, "latency": latency, "latency_median": latency_summary,
           "failover": failover,
           "restore_beside_processing": beside, "scaling": scaling, "ratios": summary},
          open(os.path.join(out, "latest.json"), "w"), indent=2)


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


with open(os.path.join(out, "latest.md"), "w") as f:
    f.write(f"Machine: {machine['cores']} cores, {cpu}; {machine['rustc']}; {machine['java']}; "
            f"Kafka {machine['kafka']}; {records} records per workload, R1 restores {r1_records}\n\n")
    if rows:
        f.write("| workload | guarantee | contender | wall s | records/s | CPU s | CPU µs/record | peak RSS MB | verified |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            verified = "yes" if r.get("verified") else f"**no**: {r.get('error', '')}"
            f.write(f"| {r['workload']} | {r['guarantee']} | {r['contender']} | {r['wall_s']:.1f} | "
                    f"{r['records_per_s']:.0f} | {r['cpu_s']:.1f} | {r['cpu_us_per_record']:.2f} | "
                    f"{r['peak_rss_mb']:.0f} | {verified} |\n")
    by = {(r["workload"], r["contender"]): r for r in rows if r.get("verified")}
    plain, queried = by.get(("W2 word count", "rivulet")), by.get(("W2 word count", "rivulet+queries"))
    if plain and queried:
        f.write(f"\nW2 with 1,000 interactive-query gets/s beside it: "
                f"{queried['records_per_s'] / plain['records_per_s']:.2f}× the records/s and "
                f"{queried['cpu_us_per_record'] / plain['cpu_us_per_record']:.2f}× the CPU per record of plain W2.\n")
    r1 = [r for r in rows if r["workload"] == "R1 restore"]
    if r1:
        f.write("\nR1: wall = from process start to the probe's result (restore included); "
                "records/s = changelog records restored per second.\n")
    # Contenders that print no restore lines (quix, or a harness without them) have no restore phase.
    if any("restore_phase_s" in r or "restore_phase_error" in r for r in r1):
        f.write("\nR1's restore phase alone: from the first store's restore start to the last one's end, over "
                "every task (Rivulet's and Kafka Streams' restore listeners; raw: its read of the table), without "
                "the start-up before it (start → restore) or the probe after it. Requirement: rivulet ≥ "
                f"{R1_TARGET:,} restored records/s.\n\n")
        f.write("| contender | start → restore s | restore phase s | restored records | restore-phase records/s | "
                "÷ kafka-streams | verified |\n|---|---|---|---|---|---|---|\n")
        ks = next((r for r in r1 if r["contender"] == "kafka-streams" and r.get("verified")), None)
        for r in r1:
            # The output's errors are in the table above; a restore that never ended is told here.
            verified = "yes" if r.get("verified") else "**no**"
            if "restore_phase_error" in r:
                verified += f" ({r['restore_phase_error']})"
            rate = r.get("restore_phase_records_per_s")
            versus = rate / ks["restore_phase_records_per_s"] if rate and ks and ks.get(
                "restore_phase_records_per_s") else None
            f.write(f"| {r['contender']} | {fmt(r.get('restore_start_after_launch_s'), '.2f')} | "
                    f"{fmt(r.get('restore_phase_s'), '.2f')} | {fmt(r.get('restored_records'), ',')} | "
                    f"{fmt(rate, ',.0f')} | {fmt(versus, '.2f')} | {verified} |\n")
        ours = next((r for r in r1 if r["contender"] == "rivulet" and r.get("restore_phase_records_per_s")), None)
        if ours:
            met = "met" if ours["restore_phase_records_per_s"] >= R1_TARGET else "**not met**"
            f.write(f"\nR1 restore phase: rivulet {ours['restore_phase_records_per_s']:,.0f} records/s "
                    f"({ours['restored_records']:,} records in {ours['restore_phase_s']:.2f} s): {met}.\n")
    if summary:
        f.write("\n| workload | guarantee | CPU/record rivulet÷raw | records/s rivulet÷raw | "
                "CPU/record rivulet÷kafka-streams | records/s rivulet÷kafka-streams | "
                "CPU/record rivulet÷quix | records/s rivulet÷quix | restore-phase records/s rivulet÷raw | "
                "restore-phase records/s rivulet÷kafka-streams |\n|---|---|---|---|---|---|---|---|---|---|\n")
        for s in summary:
            f.write(f"| {s['workload']} | {s['guarantee']} | {fmt(s.get('cpu_vs_raw'), '.2f')} | "
                    f"{fmt(s.get('rate_vs_raw'), '.2f')} | {fmt(s.get('cpu_vs_kafka-streams'), '.2f')} | "
                    f"{fmt(s.get('rate_vs_kafka-streams'), '.2f')} | {fmt(s.get('cpu_vs_quix'), '.2f')} | "
                    f"{fmt(s.get('rate_vs_quix'), '.2f')} | {fmt(s.get('restore_phase_rate_vs_raw'), '.2f')} | "
                    f"{fmt(s.get('restore_phase_rate_vs_kafka-streams'), '.2f')} |\n")
    if scaling_rows:
        f.write("\nScaling (rivulet, W2 word count, exactly_once_v2, the same number of input lines per row): "
                "`threads` on plain W2's input with num.stream.threads=1 and 2; `keys` with words drawn from "
                "larger vocabularies (distinct keys = words in the store at the end).\n\n")
        f.write("| scaling | stream threads | vocabulary | distinct keys | wall s | records/s | CPU s | CPU µs/record "
                "| peak RSS MB | busy cores: rivulet + broker | verified |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in scaling_rows:
            verified = "yes" if r.get("verified") else f"**no**: {r.get('error', '')}"
            busy = busy_cores(r)
            busy = f"{busy[0]:.2f} + {busy[1]:.2f}" if busy else "—"
            f.write(f"| {r['scaling']} | {r.get('threads', '—')} | {fmt(r.get('vocabulary'), ',')} | "
                    f"{fmt(r.get('distinct_keys'), ',')} | {r['wall_s']:.1f} | {r['records_per_s']:.0f} | "
                    f"{r['cpu_s']:.1f} | {r['cpu_us_per_record']:.2f} | {r['peak_rss_mb']:.0f} | {busy} | "
                    f"{verified} |\n")
        if "threads" in scaling:
            t = scaling["threads"]
            f.write(f"\nThreads: 2 stream threads give {t['records_per_s_ratio']:.2f}× the records/s of 1 "
                    f"(target ≥ {t['target_ratio']}×); CPU µs/record {t['cpu_us_per_record']['1']:.2f} with 1, "
                    f"{t['cpu_us_per_record']['2']:.2f} with 2.")
            if t.get("busy_cores"):
                f.write(" Busy cores (CPU s ÷ wall s), rivulet + the broker on the same machine: "
                        + "; ".join(f"{n} thread{'s' if n != '1' else ''} {c[0]:.2f} + {c[1]:.2f}"
                                    for n, c in t["busy_cores"].items())
                        + f", of the machine's {os.cpu_count()}.")
            f.write("\n")
        if "keys" in scaling:
            k = scaling["keys"]
            f.write(f"\nKeys (verified rows): CPU µs/record max ÷ min {k['cpu_us_per_record_max_over_min']:.2f}; "
                    f"the farthest row "
                    f"is {100 * k['cpu_us_per_record_max_deviation']:.0f}% from their mean "
                    f"(target: within ±{100 * k['target_deviation']:.0f}%).\n")
    if beside:
        f.write("\nR2 restore beside processing (exactly_once_v2, 100 ms commits): one stream thread, a persistent "
                "key-value store; task 0_1 restores its changelog (written straight into it) while task 0_0 passes "
                "a steady rate of records through the store. Latency = event time to the result in a read_committed "
                "consumer; during = records stamped from the first result (or the restore's start, if later) to the "
                "restore's end, steady = a window after it as long (at least 5 s). Requirement: p99 ratio < 2.\n\n")
        f.write("| contender | restored records | restore s | restored records/s | rate/s | during samples | "
                "during p50 ms | during p99 ms | steady samples | steady p50 ms | steady p99 ms | p99 ratio | "
                "p50 ratio | verified |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in beside:
            verified = "yes" if r.get("verified") else f"**no**: {r.get('error', '')}"
            d, s = r.get("during", {}), r.get("steady", {})
            f.write(f"| {r['contender']} | {fmt(r.get('restored_records'), ',')} | {fmt(r.get('restore_s'), '.2f')} | "
                    f"{fmt(r.get('restore_records_per_s'), ',.0f')} | {r.get('rate', '—')} | {d.get('samples', '—')} | "
                    f"{d.get('p50_ms', '—')} | {d.get('p99_ms', '—')} | {s.get('samples', '—')} | "
                    f"{s.get('p50_ms', '—')} | {s.get('p99_ms', '—')} | {fmt(r.get('p99_ratio'), '.2f')} | "
                    f"{fmt(r.get('p50_ratio'), '.2f')} | {verified} |\n")
    if failover:
        f.write(f"\nF1 failover: word count (exactly_once_v2, 8 partitions) on two instances of one application, "
                f"{failover[0].get('records', 0):,} distinct words in the store; once the output is complete and "
                "the standby copies have caught up, the instance running more count tasks is killed with SIGKILL "
                "and one known word per partition follows. Times from the kill to the correct count in a "
                "read_committed consumer: of the first word whose task moved, and of all 8; restored = changelog "
                "records the survivor restored into its stores after the kill. Kill → rebalance: until the survivor's "
                "client state turns REBALANCING (its state listener; Kafka Streams, cooperative: when the new "
                "assignment arrives; Rivulet, eager: when the revocation starting the rebalance does, one join and "
                "sync earlier). That is mostly the group's failure detection, the same protocol for both: the "
                "session time-out less up to one heartbeat interval (the dead member's last heartbeat came up to one "
                "before the kill), plus up to one more for the survivor to hear of the rebalance. Kill → moved task "
                "active: until a status line (every 100 ms) lists a moved count task on the survivor (Kafka Streams "
                "lists a thread's tasks once the thread runs again, after their restore; Rivulet once assigned). "
                "Rebalance → correct is the part each product controls.\n\n")
        f.write("| contender | standby replicas | session time-out ms | heartbeat ms | kill → first moved word ms | "
                "kill → all 8 words ms | kill → rebalance ms | kill → moved task active ms | "
                "rebalance → first moved word ms | rebalance → all 8 words ms | restored records | verified |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in failover:
            verified = "yes" if r.get("verified") else f"**no**: {r.get('error', '')}"
            f.write(f"| {r['contender']} | {r.get('standby_replicas', '—')} | {r.get('session_timeout_ms', '—')} | "
                    f"{r.get('heartbeat_interval_ms', '—')} | "
                    f"{fmt(r.get('time_to_first_correct_ms'), '.0f')} | {fmt(r.get('time_to_all_correct_ms'), '.0f')} | "
                    f"{fmt(r.get('time_to_rebalance_ms'), '.0f')} | {fmt(r.get('time_to_moved_active_ms'), '.0f')} | "
                    f"{fmt(r.get('rebalance_to_first_correct_ms'), '.0f')} | "
                    f"{fmt(r.get('rebalance_to_all_correct_ms'), '.0f')} | "
                    f"{fmt(r.get('restored_records'), ',')} | {verified} |\n")
        f1 = {r["contender"]: r for r in failover if r.get("verified")}
        ours, theirs = f1.get("rivulet"), f1.get("kafka-streams")
        if ours and theirs:
            f.write(f"\nF1 with one standby replica: rivulet's first moved word is correct "
                    f"{ours['time_to_first_correct_ms']:.0f} ms after the kill, kafka-streams' "
                    f"{theirs['time_to_first_correct_ms']:.0f} ms; all 8 words {ours['time_to_all_correct_ms']:.0f} "
                    f"vs {theirs['time_to_all_correct_ms']:.0f} ms "
                    f"({ours['time_to_all_correct_ms'] / theirs['time_to_all_correct_ms']:.2f}×); restored "
                    f"{ours['restored_records']:,} vs {theirs['restored_records']:,} records.")
            o, t = ours.get("rebalance_to_first_correct_ms"), theirs.get("rebalance_to_first_correct_ms")
            if o is not None and t is not None:
                f.write(f" From the survivor's rebalance: first moved word {o:.0f} vs {t:.0f} ms, all 8 "
                        f"{ours['rebalance_to_all_correct_ms']:.0f} vs {theirs['rebalance_to_all_correct_ms']:.0f} ms "
                        f"(kill → rebalance {ours['time_to_rebalance_ms']:.0f} vs "
                        f"{theirs['time_to_rebalance_ms']:.0f} ms).")
            f.write("\n")
    if latency_summary:
        f.write("\nEnd-to-end latency (exactly_once_v2, 100 ms commits): event time of an input record to its "
                "result being read by a read_committed consumer, at a steady rate: measured after two warm-ups, one "
                "record per 100 ms until the contender has written a result to every output partition, then 5 s "
                "at the paced rate. Each figure is the median "
                "of the passes (the contenders take turns within a pass); the p99 range is the passes' lowest "
                "and highest p99.\n\n")
        f.write("| workload | contender | rate/s | passes | results | p50 ms | p99 ms | p99 range ms | max ms |\n"
                "|---|---|---|---|---|---|---|---|---|\n")
        for r in latency_summary:
            f.write(f"| {r['workload']} | {r['contender']} | {r['rate']} | {r['passes']} | {r['results']} | "
                    f"{r['p50_ms']:g} | {r['p99_ms']:g} | {r['p99_min_ms']}–{r['p99_max_ms']} | "
                    f"{r['max_ms']:g} |\n")


def chart(path):
    """Throughput rows as grouped bars (CPU-µs/record above records/s) and the scaling rows below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["workload"], r["guarantee"]) for r in rows))
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    by = {(r["workload"], r["guarantee"], r["contender"]): r for r in rows}
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(contenders)}
    # Two rows of throughput panels (when there are throughput rows), one of scaling panels (when there are those).
    panels = ["cpu", "rate"] if rows else []
    panels += ["scaling"] if scaling_rows else []
    heights = {"cpu": 1, "rate": 1, "scaling": 0.8}
    fig = plt.figure(figsize=(max(12, 2.2 * len(groups)), 1 + 4.2 * sum(heights[p] for p in panels)),
                     layout="constrained")
    grid = fig.add_gridspec(len(panels), 2, height_ratios=[heights[p] for p in panels])
    restores = f" (R1 restores {r1_records:,})" if any(r["workload"] == "R1 restore" for r in rows) else ""
    title = f"Rivulet benchmarks: {records:,} records per workload{restores}; {machine['cores']} cores, {cpu}"
    if not all(r.get("verified") for r in rows + scaling_rows):
        title += "\nhatched, ✗: output not verified"
    fig.suptitle(title, fontsize=13)
    width = 0.8 / max(1, len(contenders))
    for row, (metric, label, fmt_value) in enumerate([
        ("cpu_us_per_record", "CPU µs per record (lower is better)", lambda v: f"{v:.3g}"),
        ("records_per_s", "records/s (higher is better)", lambda v: f"{v / 1000:.3g}k"),
    ][: 2 if rows else 0]):
        ax = fig.add_subplot(grid[row, :])
        values = []
        for i, c in enumerate(contenders):
            xs, ys, unverified = [], [], []
            for g, (w, guarantee) in enumerate(groups):
                r = by.get((w, guarantee, c))
                if r is None or not r.get(metric):
                    continue
                xs.append(g + (i - (len(contenders) - 1) / 2) * width)
                ys.append(r[metric])
                unverified.append(not r.get("verified"))
            bars = ax.bar(xs, ys, width, label=c, color=colors[c])
            for bar, y, bad in zip(bars, ys, unverified):
                if bad:
                    bar.set_hatch("//")
                ax.annotate(fmt_value(y) + (" ✗" if bad else ""), (bar.get_x() + bar.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
            values += ys
        # quix and raw are 100× apart on some workloads: linear bars would hide the rest.
        if values and min(values) > 0 and max(values) / min(values) >= 100:
            ax.set_yscale("log")
            label += ", log scale"
            # Room above the tallest bar for the legend and the labels.
            ax.set_ylim(top=max(values) * 4)
        elif values:
            ax.set_ylim(top=max(values) * 1.25)
        ax.set_ylabel(label)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{w}\n{g}" for w, g in groups], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if row == 0:
            ax.legend(ncol=len(contenders), fontsize=9, loc="upper left")
    if scaling_rows:
        threads = sorted((r for r in scaling_rows if r["scaling"] == "threads"), key=lambda r: r["threads"])
        keys = sorted((r for r in scaling_rows if r["scaling"] == "keys"), key=lambda r: r["vocabulary"])
        for col, (title, subset, label) in enumerate([
            ("Scaling: stream threads (W2, rivulet)", threads, lambda r: f"{r['threads']} thread(s)"),
            ("Scaling: distinct keys (W2, rivulet)", keys, lambda r: f"{r.get('distinct_keys', 0):,} keys\n"
                                                                   f"(vocabulary {r['vocabulary']:,})"),
        ]):
            ax = fig.add_subplot(grid[len(panels) - 1, col])
            ax.set_title(title, fontsize=10)
            if not subset:
                ax.axis("off")
                continue
            xs = range(len(subset))
            rates = ax.bar([x - 0.2 for x in xs], [r["records_per_s"] for r in subset], 0.4,
                           label="records/s", color="tab:blue")
            ax.set_ylabel("records/s")
            ax.set_ylim(top=max(r["records_per_s"] for r in subset) * 1.3)
            ax.set_xticks(list(xs))
            ax.set_xticklabels([label(r) for r in subset], fontsize=8)
            cpu_ax = ax.twinx()
            cpu_bars = cpu_ax.bar([x + 0.2 for x in xs], [r["cpu_us_per_record"] for r in subset], 0.4,
                                  label="CPU µs/record", color="tab:orange")
            cpu_ax.set_ylabel("CPU µs per record")
            cpu_ax.set_ylim(top=max(r["cpu_us_per_record"] for r in subset) * 1.3)
            for bars, text in ((rates, lambda v: f"{v / 1000:.3g}k"), (cpu_bars, lambda v: f"{v:.3g}")):
                for r, bar in zip(subset, bars):
                    if not r.get("verified"):
                        bar.set_hatch("//")
                    bar.axes.annotate(text(bar.get_height()) + ("" if r.get("verified") else " ✗"),
                                      (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                                      va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
            ax.legend(handles=[rates, cpu_bars], fontsize=8, loc="upper left", ncol=2)
            if col == 0 and "threads" in scaling:
                ax.set_title(f"{title}: 2 ÷ 1 = {scaling['threads']['records_per_s_ratio']:.2f}× records/s",
                             fontsize=10)
            if col == 1 and "keys" in scaling:
                ax.set_title(f"{title}: CPU max ÷ min = {scaling['keys']['cpu_us_per_record_max_over_min']:.2f}",
                             fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


try:
    import matplotlib  # noqa: F401  (only whether it is there)
except ImportError:
    print("report.py: matplotlib is not installed, so no chart (latest.png); "
          "run.sh installs it into benchmarks/.venv", file=sys.stderr)
else:
    if rows or scaling_rows:
        try:
            chart(os.path.join(out, "latest.png"))
        except Exception as e:  # a chart's failure must not cost a finished run its tables
            print(f"report.py: no chart (latest.png): {e!r}", file=sys.stderr)
print(open(os.path.join(out, "latest.md")).read())
