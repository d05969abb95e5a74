#!/usr/bin/env python3
"""Summary of a three-arm run of bench/gateway.sh or bench/a2a-gateway.sh
(BASE_AGENTMESH set): medians per arm, the latency each gateway arm adds
over direct, and current minus baseline against the issue-15 bounds.

    bench/compare.py ROWS.tsv

ROWS.tsv: tool, round, path (direct | gateway | base), caller, mode, rps,
p50, p90, p99, p99.9 (ms), errors; one line per run, written by the scripts.
"Added" latency is gateway minus direct of the same round and mode; the
median of those per-round differences is reported.
"""
import statistics
import sys

P99_BOUND_MS = 0.05  # issue 15: added p99 not worse by more than this
RPS_BOUND = -0.05  # issue 15: closed-loop throughput not lower by more than 5 %


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main(path):
    rows = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 11:
            continue
        rows.append(dict(tool=f[0], round=f[1], path=f[2], caller=f[3], mode=f[4],
                         rps=float(f[5]), p50=float(f[6]), p99=float(f[8]), bad=int(f[10])))
    keys = []  # (tool, mode, path, caller) in first-seen order
    for r in rows:
        k = (r["tool"], r["mode"], r["path"], r["caller"])
        if k not in keys:
            keys.append(k)
    direct = {(r["tool"], r["mode"], r["round"]): r for r in rows if r["path"] == "direct"}

    def runs(k):
        return [r for r in rows if (r["tool"], r["mode"], r["path"], r["caller"]) == k]

    def added(k, field):
        out = []
        for r in runs(k):
            d = direct.get((r["tool"], r["mode"], r["round"]))
            if d is not None:
                out.append(r[field] - d[field])
        return out

    print("medians per arm (added = median over rounds of arm minus direct, same round):")
    print("| tool | mode | path | caller | runs | rps | p50 ms | p99 ms | added p50 ms | added p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        rs = runs(k)
        a50 = "-" if k[2] == "direct" else f"{med(added(k, 'p50')):+.3f}"
        a99 = "-" if k[2] == "direct" else f"{med(added(k, 'p99')):+.3f}"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {len(rs)} | {med([r['rps'] for r in rs]):.0f} "
              f"| {med([r['p50'] for r in rs]):.3f} | {med([r['p99'] for r in rs]):.3f} | {a50} | {a99} "
              f"| {sum(r['bad'] for r in rs)} |")

    print()
    print(f"current minus baseline (bounds: added p99 <= +{P99_BOUND_MS} ms at a fixed rate, "
          f"closed-loop rps >= {RPS_BOUND:+.0%}):")
    print("| tool | mode | caller | added p50 ms current / base | added p99 ms current / base | "
          "Δ added p99 ms | rps current / base | Δ rps | within bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        if k[2] != "gateway":
            continue
        b = (k[0], k[1], "base", k[3])
        if b not in keys:
            continue
        c50, b50 = med(added(k, "p50")), med(added(b, "p50"))
        c99, b99 = med(added(k, "p99")), med(added(b, "p99"))
        crps, brps = med([r["rps"] for r in runs(k)]), med([r["rps"] for r in runs(b)])
        drps = crps / brps - 1 if brps else float("nan")
        if k[1] == "closed loop":
            ok = "yes" if drps >= RPS_BOUND else "NO"
        else:
            ok = "yes" if c99 - b99 <= P99_BOUND_MS else "NO"
        print(f"| {k[0]} | {k[1]} | {k[3]} | {c50:+.3f} / {b50:+.3f} | {c99:+.3f} / {b99:+.3f} "
              f"| {c99 - b99:+.3f} | {crps:.0f} / {brps:.0f} | {drps:+.1%} | {ok} |")


if __name__ == "__main__":
    main(sys.argv[1])
