"""Draws the results of `netget-vs-etcd` (its JSON) as one PNG.

Left: watch push latency distributions (fraction of events slower than x), netget vs etcd,
with one watcher and with many.
Right: netget / etcd for each throughput figure, with the issue's target.

    python bench/plot.py [target/bench/results.json] [bench/results.png]
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"netget": "#1f77b4", "etcd": "#d62728"}


def latency_panel(ax, results):
    watchers = results["opts"]["watchers"]
    for system in ("netget", "etcd"):
        for key, style, label in (
            ("watchOne", "-", "1 watcher"),
            ("watchMany", "--", f"{watchers:,} watchers"),
        ):
            lat = results[system][key]
            xs = [v / 1000.0 for v in lat["sortedUs"]]
            if not xs:
                continue
            # The points are the sorted samples, thinned evenly: point i stands for the
            # fraction i / n of the events; plot the fraction slower than it.
            n = len(xs)
            ys = [max(1.0 - i / n, 0.5 / lat["samples"]) for i in range(n)]
            ax.plot(
                xs,
                ys,
                style,
                color=COLORS[system],
                label=f"{system}, {label} (p99 {lat['p99Us'] / 1000:.2f} ms)",
            )
    for q, name in ((0.01, "p99"), (0.001, "p99.9")):
        ax.axhline(q, color="grey", lw=0.8, ls=":")
        ax.text(0.99, q, name, transform=ax.get_yaxis_transform(), fontsize=7, ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("push latency, write sent → event decoded (ms, log scale)")
    ax.set_ylabel("fraction of events slower (log scale)")
    ax.set_title("Watch push latency (tail distribution)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def ratio_panel(ax, results):
    rows = [r for r in results["rows"] if r["unit"] == "/s"]
    labels = []
    for r in rows:
        short = r["figure"].split(" (")[0]
        labels.append(short.replace(", ", "\n", 1))
    # Rows that differ only in how netget is asked (client sessions, HTTP) say so.
    shared = {label for label in labels if labels.count(label) > 1}
    for i, r in enumerate(rows):
        if labels[i] in shared and "(netget: " in r["figure"]:
            how = r["figure"].split("(netget: ", 1)[1].split(",")[0].split(";")[0]
            labels[i] = f"{labels[i]}\n(netget: {how})"
    ratios = [r["ratio"] for r in rows]
    ax.barh(range(len(rows)), ratios, color=COLORS["netget"])
    for i, r in enumerate(rows):
        end = r["ratio"]
        target = r["target"]
        if target.startswith("≥"):
            goal = float(target.strip("≥ ×"))
            ax.plot([goal, goal], [i - 0.45, i + 0.45], color="black", lw=2, ls="--")
            ax.annotate(
                f"target {goal:g}×",
                (goal, i - 0.47),
                fontsize=7,
                ha="center",
                va="bottom",
            )
            end = max(end, goal)
        ax.annotate(f"  {r['ratio']:.2f}×", (end, i), va="center", fontsize=9)
    ax.axvline(1.0, color="grey", lw=1, ls=":")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("netget ÷ etcd (higher is better; dotted line: parity)")
    ax.set_title("Throughput ratios")
    ax.set_xlim(0, max(ratios + [10.0]) * 1.25)


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "bench/results.png")
    results = json.loads(src.read_text())
    m = results["machine"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    latency_panel(left, results)
    ratio_panel(right, results)
    fig.suptitle(
        f"netget vs {m['etcdVersion'].replace('Version: ', '')} — same machine, same run "
        f"({m['nproc']} × {m['model']})",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
