#!/usr/bin/env python3
"""Latency against queue depth, from a `superpipe-bench --json` report, as an SVG image.

    .build/release/superpipe-bench --json > bench.json
    Scripts/plot-latency.py bench.json Docs/latency.svg [--workload randread]

Plots p50, p99 and p99.9 completion latency (log scale) against queue depth (log scale) for:
  - superpipe, in-process mock (the `rows`: depth 1 synchronous API, deeper submit/poll);
  - superpipe, mock served by another process (the `served` rows), when present;
  - the pread/pwrite baseline: one thread at depth 1, N threads at depth N (`baselineThreads`,
    fio's psync engine with numjobs=N: how a synchronous program keeps N requests in flight).
Only the Python standard library is used, so the script runs wherever the benchmark does.
"""

import json
import math
import sys

PERCENTILES = [("p50", "p50", "0"), ("p99", "p99", "6 3"), ("p99_9", "p99.9", "2 3")]
SERIES_COLOURS = {"superpipe": "#1f5fa8", "superpipe served": "#2c9c4a", "pread/pwrite": "#c0392b"}


def series(report, workload):
    """{series name: [(depth, latency dict)]} for one workload."""
    out = {}

    def add(name, depth, row):
        out.setdefault(name, []).append((depth, row["latencyMicroseconds"]))

    for row in report.get("rows", []):
        if row["workload"] == workload:
            add("superpipe", row["iodepth"], row)
    for row in report.get("served") or []:
        if row["workload"] == workload:
            add("superpipe served", row["iodepth"], row)
    for row in report.get("baseline", []):
        if row["workload"] == workload:
            add("pread/pwrite", 1, row)
    depths = {row["iodepth"] for row in report.get("rows", [])}
    for row in report.get("baselineThreads") or []:
        if row["workload"] == workload and row.get("threads") in depths:
            add("pread/pwrite", row["threads"], row)
    for points in out.values():
        points.sort(key=lambda point: point[0])
    return out


def svg(report, workload):
    data = series(report, workload)
    if not data:
        sys.exit(f"no rows for workload {workload} in the report")
    width, height = 760, 480
    left, right, top, bottom = 70, 200, 40, 60
    depths = sorted({d for points in data.values() for d, _ in points})
    values = [lat[key] for points in data.values() for _, lat in points for key, _, _ in PERCENTILES]
    values = [v for v in values if v > 0]
    y_low = 10 ** math.floor(math.log10(min(values)))
    y_high = 10 ** math.ceil(math.log10(max(values)))
    x_low, x_high = math.log2(min(depths)), math.log2(max(depths))
    if x_high == x_low:
        x_high = x_low + 1

    def x(depth):
        return left + (math.log2(depth) - x_low) / (x_high - x_low) * (width - left - right)

    def y(value):
        value = max(value, y_low)
        fraction = (math.log10(value) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low))
        return height - bottom - fraction * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15">{workload} 4 KiB: completion latency against queue depth</text>',
    ]
    # Axes and grid.
    decade = y_low
    while decade <= y_high * 1.0001:
        parts.append(f'<line x1="{left}" y1="{y(decade):.1f}" x2="{width - right}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        label = f"{decade:g}"
        parts.append(f'<text x="{left - 8}" y="{y(decade) + 4:.1f}" text-anchor="end">{label}</text>')
        decade *= 10
    for depth in depths:
        parts.append(f'<line x1="{x(depth):.1f}" y1="{top}" x2="{x(depth):.1f}" y2="{height - bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{x(depth):.1f}" y="{height - bottom + 18}" text-anchor="middle">{depth}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 18}" text-anchor="middle">queue depth (baseline: threads)</text>')
    parts.append(
        f'<text x="18" y="{(top + height - bottom) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(top + height - bottom) / 2:.0f})">latency (µs, log scale)</text>'
    )
    # Lines.
    legend_y = top + 10
    for name, points in data.items():
        colour = SERIES_COLOURS.get(name, "#555")
        for key, label, dash in PERCENTILES:
            path = " ".join(f"{x(d):.1f},{y(lat[key]):.1f}" for d, lat in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
            )
            for d, lat in points:
                parts.append(f'<circle cx="{x(d):.1f}" cy="{y(lat[key]):.1f}" r="3" fill="{colour}"/>')
            lx = width - right + 15
            parts.append(
                f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 28}" y2="{legend_y}" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="{dash}"/>'
            )
            parts.append(f'<text x="{lx + 34}" y="{legend_y + 4}">{name} {label}</text>')
            legend_y += 18
        legend_y += 8
    machine = report.get("machine", "")
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="10" fill="#666">{machine}, {report.get("cores", "?")} cores</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    workload = "randread"
    if "--workload" in argv:
        workload = argv[argv.index("--workload") + 1]
        args = [a for a in args if a != workload]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0]) as handle:
        report = json.load(handle)
    with open(args[1], "w") as handle:
        handle.write(svg(report, workload))


if __name__ == "__main__":
    main(sys.argv)
