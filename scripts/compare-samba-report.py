#!/usr/bin/env python3
"""Renders scripts/compare-samba results: a markdown table and an SVG bar chart.

Input: a TSV of (server, job, server CPU seconds, smb3bench JSON path) and iperf3's JSON.
"""
import argparse
import json
import os
import time

GIB = 1 << 30
MIB = 1 << 20


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def job_numbers(doc, cpu_s):
    """Throughput and cost of one smb3bench run."""
    if not doc or not doc.get("jobs"):
        return {"error": "no output"}
    j = doc["jobs"][0]
    io_bytes = j["read"]["io_bytes"] + j["write"]["io_bytes"]
    ops = j["read"]["total_ios"] + j["write"]["total_ios"] + j["ops"]["total_ios"]
    secs = max(j["job_runtime"], 1) / 1000.0
    out = {
        "error": j.get("error_name") or "",
        "channels": j.get("channels", 0),
        "mib_s": io_bytes / MIB / secs,
        "iops": ops / secs,
        "cpu_s": cpu_s,
        "data": io_bytes > 0,
    }
    out["cpu_per_gib"] = cpu_s / (io_bytes / GIB) if io_bytes else None
    out["cpu_us_per_op"] = cpu_s * 1e6 / ops if ops else None
    pct = (j["read"] if j["read"]["total_ios"] else j["write"] if j["write"]["total_ios"] else j["ops"])
    out["p99_us"] = pct["clat_ns"]["percentile"].get("99.000000", 0) / 1000.0
    return out


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.2f}"


def svg(rows, iperf_mib_s, path):
    """Two panels: throughput (MiB/s, or kIOPS for metadata jobs) and CPU-s/GiB, per job."""
    jobs = [r[0] for r in rows]
    width, bar_h, gap = 900, 12, 10
    label_w, panel_w = 170, 320
    height = 60 + len(jobs) * (2 * bar_h + gap) + 40
    colors = {"samba": "#7f7f7f", "smb3d": "#1f77b4"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{label_w}" y="20" font-size="13">throughput (MiB/s; kIOPS for create/echo)</text>',
        f'<text x="{label_w + panel_w + 60}" y="20" font-size="13">server CPU-s per GiB (data jobs)</text>',
    ]

    def value(res, panel):
        if res is None or res.get("error"):
            return None
        if panel == 0:
            return res["mib_s"] if res["data"] else res["iops"] / 1000.0
        return res["cpu_per_gib"]

    for panel in (0, 1):
        x0 = label_w + panel * (panel_w + 60)
        vals = [value(r[1].get(s), panel) for r in rows for s in ("samba", "smb3d")]
        vals = [v for v in vals if v]
        if panel == 0 and iperf_mib_s:
            vals.append(iperf_mib_s)
        top = max(vals) if vals else 1.0
        y = 40
        for job, res in rows:
            if panel == 0:
                parts.append(f'<text x="{label_w - 6}" y="{y + bar_h + 4}" text-anchor="end">{job}</text>')
            for i, server in enumerate(("samba", "smb3d")):
                v = value(res.get(server), panel)
                w = 0 if not v else panel_w * v / top
                yy = y + i * bar_h
                parts.append(f'<rect x="{x0}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{colors[server]}"/>')
                parts.append(f'<text x="{x0 + w + 3:.1f}" y="{yy + bar_h - 3}">{fmt(v) if v else "n/a"}</text>')
            y += 2 * bar_h + gap
        if panel == 0 and iperf_mib_s:
            xi = x0 + panel_w * iperf_mib_s / top
            parts.append(f'<line x1="{xi:.1f}" y1="30" x2="{xi:.1f}" y2="{y}" stroke="red" stroke-dasharray="4,3"/>')
            parts.append(f'<text x="{xi - 4:.1f}" y="{y + 12}" fill="red" text-anchor="end">iperf3 loopback {iperf_mib_s:.0f} MiB/s</text>')
    ly = height - 12
    parts.append(f'<rect x="{label_w}" y="{ly - 9}" width="10" height="10" fill="{colors["samba"]}"/><text x="{label_w + 14}" y="{ly}">Samba smbd</text>')
    parts.append(f'<rect x="{label_w + 100}" y="{ly - 9}" width="10" height="10" fill="{colors["smb3d"]}"/><text x="{label_w + 114}" y="{ly}">smb3d</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--iperf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--job-args", default="")
    a = ap.parse_args()

    table = {}
    order = []
    with open(a.results) as f:
        for line in f:
            server, job, cpu_s, path = line.rstrip("\n").split("\t")
            if job not in order:
                order.append(job)
            table.setdefault(job, {})[server] = job_numbers(load(path), float(cpu_s))
    rows = [(j, table[j]) for j in order]

    iperf = load(a.iperf) or {}
    end = iperf.get("end", {})
    iperf_bps = end.get("sum_received", {}).get("bits_per_second")
    iperf_mib_s = iperf_bps / 8 / MIB if iperf_bps else None
    iperf_cpu_per_gib = None
    if iperf_bps:
        secs = end.get("sum_sent", {}).get("seconds", 0) or 1
        sent = end.get("sum_sent", {}).get("bytes", 0)
        host_pct = end.get("cpu_utilization_percent", {}).get("host_total", 0)
        if sent:
            iperf_cpu_per_gib = host_pct / 100.0 * secs / (sent / GIB)

    lines = [
        "# smb3d and Samba's smbd side by side (smb3bench)",
        "",
        f"Produced by `scripts/compare-samba` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "Same machine, loopback, the same smb3bench jobs against each server in turn. Throughput is "
        "smb3bench's (data jobs: MiB/s of payload; create/echo: operations per second). Server CPU = "
        "user+system seconds of all the server's processes and threads during the job, per GiB moved "
        "(data jobs) or per operation (create/echo). smb3bench runs on the same cores and competes "
        "with the server.",
        "",
        f"Loopback TCP ceiling (iperf3, one stream): **{fmt(iperf_mib_s, 0)} MiB/s**, sender "
        f"CPU {fmt(iperf_cpu_per_gib, 3)} s/GiB.",
        "",
        "| job | smbd | smb3d | smb3d/smbd | smbd CPU-s/GiB (µs/op) | smb3d CPU-s/GiB (µs/op) | smb3d/smbd CPU | channels smbd/smb3d | p99 µs smbd/smb3d |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for job, res in rows:
        s, d = res.get("samba"), res.get("smb3d")

        def thr(r):
            if r is None:
                return None
            if r.get("error"):
                return None
            return r["mib_s"] if r["data"] else r["iops"]

        def unit(r):
            return "MiB/s" if (r or {}).get("data", True) else "op/s"

        def cost(r):
            if r is None or r.get("error"):
                return None
            return r["cpu_per_gib"] if r["data"] else r["cpu_us_per_op"]

        def cell(r, v, digits):
            if r is None:
                return "not run"
            if r.get("error"):
                return "error: " + r["error"]
            return f"{fmt(v, digits)}"

        u = unit(s or d)
        lines.append(
            f"| {job} | {cell(s, thr(s), 0)} {u if s and not s.get('error') else ''} | {cell(d, thr(d), 0)} {u if d and not d.get('error') else ''} | "
            f"{ratio(thr(d), thr(s))} | {cell(s, cost(s), 3)} | {cell(d, cost(d), 3)} | {ratio(cost(d), cost(s))} | "
            f"{(s or {}).get('channels', '-')}/{(d or {}).get('channels', '-')} | "
            f"{fmt((s or {}).get('p99_us'), 0)}/{fmt((d or {}).get('p99_us'), 0)} |"
        )
    lines += [
        "",
        "![throughput and CPU per GiB](compare-samba.svg)",
        "",
        "## Machine and versions",
        "",
        f"- {a.machine}",
        f"- {a.versions}",
        "",
        "## Commands",
        "",
        "```",
        a.command,
        "# per server: smbd via scripts/samba-reference (scripts/samba/smb.conf.in, multichannel on);",
        "# smb3d serve --passdb PASSDB --share share=DIR --listen 127.0.0.1:PORT",
        "# per job (read jobs first lay their file out with an unmeasured run):",
        "# smb3bench //127.0.0.1:PORT/share --user smb3dtest --password-file PW --name JOB ARGS \\",
        "#     --size SIZE --runtime RUNTIME --time_based --output-format json",
    ]
    for kv in filter(None, a.job_args.split(";")):
        lines.append(f"#   {kv.replace('=', ': ', 1)}")
    lines += ["# iperf3 -s -1 -p PORT & iperf3 -c 127.0.0.1 -p PORT -t RUNTIME -J", "```", ""]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "compare-samba.md"), "w") as f:
        f.write("\n".join(lines))
    svg(rows, iperf_mib_s, os.path.join(a.out, "compare-samba.svg"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
