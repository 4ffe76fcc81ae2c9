#!/usr/bin/env python3
"""Builds the one summary table of issue #11's targets from a run.sh output
directory, followed by every bench's own tables.

    python3 report.py bench/target/run/<stamp>

Reads criterion-<bench>-<i>.json (medians in ns per group/peer, one file per
criterion pass), allocs.md, growth.md, memory.md, redis.md, e2e.md,
cookie-sizes.txt and machine.md; a part that is missing is reported as
not run."""

import glob
import json
import os
import re
import statistics
import sys


def tables(path):
    """Every Markdown table of a file, as lists of {header: cell} rows."""
    if not os.path.exists(path):
        return []
    found, header, rows = [], None, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if header is None:
                    header = cells
                elif set("".join(cells)) <= set("-: "):
                    continue
                else:
                    rows.append(dict(zip(header, cells)))
            elif header is not None:
                found.append(rows)
                header, rows = None, []
    if header is not None:
        found.append(rows)
    return found


def number(text):
    m = re.search(r"-?[0-9]+(?:\.[0-9]+)?", text.replace(",", "").replace("*", ""))
    return float(m.group()) if m else None


def verdict(values, target, at_most=True):
    if not values:
        return "not run"
    ok = all((v <= target) if at_most else (v >= target) for v in values)
    return "**met**" if ok else "**missed**"


def fmt_runs(values):
    return " / ".join(f"{v:.2f}" for v in values) if values else "–"


def main():
    out = sys.argv[1]
    rows = []  # (area, measure, result, target, verdict)

    # ---------------------------------------------------------- criterion
    passes = {b: [json.load(open(p)) for p in sorted(glob.glob(f"{out}/criterion-{b}-*.json"))]
              for b in ("requests", "cookie")}

    def shares(bench, group, ours, theirs, bare="bare_axum"):
        result = []
        for medians in passes[bench]:
            try:
                o, t, b = (medians[f"{group}/{p}"] for p in (ours, theirs, bare))
            except KeyError:
                continue
            result.append((o - b) / (t - b))
        return result

    for case in ("read", "write"):
        for ours, label in (("typed_sessions", "default schema"), ("typed_cached", "`#[session(cached)]`")):
            s = shares("requests", case, ours, "tower_sessions")
            rows.append(("in process, MemoryStore", f"{case}: overhead share of tower-sessions' ({label}), per pass",
                         fmt_runs(s), "≤ 0.25", verdict(s, 0.25)))
    s = shares("requests", "create", "typed_sessions", "tower_sessions")
    rows.append(("in process, MemoryStore", "create: overhead share of tower-sessions', per pass", fmt_runs(s), "(none)", "–"))
    for case, group in (("read", "cookie_read"), ("write", "cookie_write")):
        for mode in ("private", "signed"):
            s = shares("cookie", group, f"typed_{mode}", f"axum_extra_{mode}")
            rows.append(("in process, CookieStore", f"{case}, {mode}: overhead share of axum-extra's jar, per pass",
                         fmt_runs(s), "≤ 0.5", verdict(s, 0.5)))
            floor = []
            for medians in passes["cookie"]:
                try:
                    f = medians[f"{group}/floor_{mode}"]
                    j = medians[f"{group}/axum_extra_{mode}"] - medians[f"{group}/bare_axum"]
                except KeyError:
                    continue
                floor.append(f / j)
            rows.append(("in process, CookieStore", f"{case}, {mode}: the primitives alone (floor) as a share of the jar's overhead",
                         fmt_runs(floor), "(a lower bound)", "–"))

    # ---------------------------------------------------------- allocations
    for table in tables(f"{out}/allocs.md"):
        for r in table:
            if r.get("peer") in ("typed_sessions", "typed_cached", "tower_sessions"):
                rows.append(("allocations", f"{r['scenario']}, {r['peer']}: heap allocations per request over bare axum",
                             r.get("over bare axum", "?"), "(measured)", "–"))

    # ---------------------------------------------------------- cookie sizes
    sizes = f"{out}/cookie-sizes.txt"
    if os.path.exists(sizes):
        by_peer = {}
        for line in open(sizes):
            m = re.match(r"Set-Cookie name=value: (\S+)\s+(\d+) bytes", line)
            if m:
                by_peer[m.group(1)] = int(m.group(2))
        if "typed_signed" in by_peer and "axum_extra_signed" in by_peer:
            o, t = by_peer["typed_signed"], by_peer["axum_extra_signed"]
            rows.append(("cookie size", "signed `Set-Cookie` name=value, ours vs SignedCookieJar (bytes)",
                         f"{o} vs {t}", "≤ jar's", "**met**" if o <= t else "**missed**"))
        if "typed_private" in by_peer and "axum_extra_signed" in by_peer:
            o, t = by_peer["typed_private"], by_peer["axum_extra_signed"]
            rows.append(("cookie size", "private `Set-Cookie` name=value, ours vs SignedCookieJar (bytes)",
                         f"{o} vs {t}", "≤ 1.1 × jar's", "**met**" if o <= 1.1 * t else "**missed**"))

    # ---------------------------------------------------------- Redis
    for table in tables(f"{out}/redis.md"):
        for r in table:
            if "median of the rounds' ratios" in r and r.get("case") in ("read", "write"):
                v = number(r["median of the rounds' ratios"])
                rows.append(("Redis, in process (64 in flight)", f"{r['case']}: throughput, ours / {r['against']}",
                             f"{v:.2f}" if v is not None else "?", "≥ 1.5", verdict([v] if v is not None else [], 1.5, at_most=False)))
            if "commands per request" in r and r.get("peer") == "typed_sessions":
                rows.append(("Redis commands", f"{r['case']}: commands per request, ours (inside scripts)",
                             f"{r['commands per request']} ({r.get('inside scripts', '')})",
                             {"read": "1", "write": "2 (load + one script)"}.get(r["case"], "(none)"), "–"))

    # ---------------------------------------------------------- end to end
    ratio_col = "req/s ratio (peer rows: to bare A; pair rows: first / second)"
    for table in tables(f"{out}/e2e.md"):
        for r in table:
            target = r.get("target", "")
            if not target:
                continue
            v = number(r.get(ratio_col, ""))
            m = re.search(r"≥ ([0-9.]+)", target)
            rows.append(("end to end (HTTP, wrk, server on one core)",
                         f"{r['scenario']}: {r['peer']} throughput" + (" / bare (A)" if "/" not in r["peer"] else "")
                         + f"; server CPU µs/req {r.get('server CPU µs/req', '?')}",
                         f"{v:.2f}" if v is not None else "?", f"≥ {m.group(1)}" if m else target,
                         verdict([v] if v is not None else [], float(m.group(1)), at_most=False) if m else "–"))

    # ---------------------------------------------------------- growth, memory
    for table in tables(f"{out}/growth.md"):
        for r in table:
            if "bytes to store / write" in r:
                rows.append(("growth", f"{r['size (JSON bytes)']}, {r['peer']}: bytes to Redis per one-field write; MemoryStore write time (ours/theirs)",
                             f"{r['bytes to store / write']} B; {r['write time, MemoryStore']} ({r['ours / theirs'] or '–'})", "flat for ours", "see below"))
    for table in tables(f"{out}/memory.md"):
        for r in table:
            if "RSS bytes / session" in r:
                rows.append(("memory", f"MemoryStore, {r['peer']}: RSS bytes per session (heap bytes)",
                             f"{r['RSS bytes / session']} ({r.get('heap bytes / session', '?')})", "(measured)", "–"))
            if "`MEMORY USAGE key SAMPLES 0`" in r:
                rows.append(("memory", f"Redis, {r['peer']}: MEMORY USAGE of one session (used_memory growth per session)",
                             f"{r['`MEMORY USAGE key SAMPLES 0`']} ({r.get('`used_memory` growth / session', '?')})", "(measured)", "–"))

    print("# typed-sessions benchmarks: issue #11's targets\n")
    if os.path.exists(f"{out}/machine.md"):
        print(open(f"{out}/machine.md").read())
    print("| area | measure | result | target | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()
    for name, title in (("requests-1.md", "In process, MemoryStore (criterion, pass 1)"),
                        ("cookie-1.md", "In process, CookieStore (criterion, pass 1)"),
                        ("cookie-sizes.txt", "Cookie sizes"),
                        ("allocs.md", None), ("growth.md", None), ("memory.md", None),
                        ("redis.md", None), ("e2e.md", "End to end")):
        path = f"{out}/{name}"
        if not os.path.exists(path):
            print(f"\n## {title or name}: not run\n")
            continue
        if title:
            print(f"\n## {title}\n")
        text = open(path).read()
        print(f"```\n{text}```\n" if name.endswith(".txt") else text)


if __name__ == "__main__":
    main()
