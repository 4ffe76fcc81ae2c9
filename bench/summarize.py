#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench` run (target/criterion) as a
Markdown table, with ratios to bare axum and typed-sessions' overhead as a
share of tower-sessions' overhead."""

import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "target", "criterion")
PEERS = ["bare_axum", "noop_layer", "typed_sessions", "tower_sessions"]
TARGET = 0.25  # typed-sessions may add at most a quarter of tower-sessions' overhead


def median_ns(group, peer):
    path = os.path.join(ROOT, group, peer, "new", "estimates.json")
    with open(path) as f:
        est = json.load(f)["median"]
    return est["point_estimate"], est["confidence_interval"]


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main():
    rows = []
    print("| case | peer | median | 95% CI of median | ratio to bare |")
    print("|---|---|---|---|---|")
    for group in ["read", "write"]:
        try:
            med = {p: median_ns(group, p) for p in PEERS}
        except FileNotFoundError as e:
            sys.exit(f"no criterion results ({e}); run `cargo bench` first")
        bare = med["bare_axum"][0]
        for p in PEERS:
            m, ci = med[p]
            print(f"| {group} | {p} | {fmt(m)} | {fmt(ci['lower_bound'])} – {fmt(ci['upper_bound'])} | {m / bare:.2f}× |")
        ours = med["typed_sessions"][0] - bare
        theirs = med["tower_sessions"][0] - bare
        rows.append((group, ours, theirs))
    print()
    print("| case | ours − bare | tower-sessions − bare | ours / theirs (target ≤ 0.25) |")
    print("|---|---|---|---|")
    for group, ours, theirs in rows:
        share = ours / theirs
        verdict = "meets" if share <= TARGET else "misses"
        print(f"| {group} | {fmt(ours)} | {fmt(theirs)} | {share:.2f} ({verdict}) |")


if __name__ == "__main__":
    main()
