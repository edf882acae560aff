"""Parse wrk --latency output and summarise benchmark rounds.

  wrkstat.py parse TARGET ROUND FILE        one JSON line on stdout
  wrkstat.py summary RESULTS.jsonl [--markdown OUT] [--title T] [--note N]

Median and spread (min..max) over rounds per target; ratios of treaty to
nginx and to HAProxy from the medians.
"""

import json
import re
import statistics
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"bad latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(text):
    out = {"rps": None, "p50_ms": None, "p90_ms": None, "p99_ms": None,
           "requests": None, "socket_errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        if m:
            out[key] = to_ms(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    return out


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "rps":
        return f"{v:,.0f}"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def summary(rows):
    targets = []
    for r in rows:
        if r["target"] not in targets:
            targets.append(r["target"])
    table = {}
    for t in targets:
        rs = [r for r in rows if r["target"] == t and r["rps"] is not None]
        if not rs:
            table[t] = None
            continue

        def col(k):
            vals = [r[k] for r in rs if r[k] is not None]
            if not vals:
                return None, None, None
            return statistics.median(vals), min(vals), max(vals)
        table[t] = {
            "rounds": len(rs),
            "rps": col("rps"), "p50_ms": col("p50_ms"),
            "p99_ms": col("p99_ms"),
            "errors": sum(r["socket_errors"] + r["non2xx"] for r in rs),
        }
    return targets, table


def render(targets, table, markdown=False):
    head = ["target", "rounds", "req/s median", "req/s min..max",
            "p50 ms", "p50 min..max", "p99 ms", "p99 min..max", "errors"]
    lines = []
    body = []
    for t in targets:
        s = table[t]
        if s is None:
            body.append([t, "0"] + ["-"] * 6 + ["no result"])
            continue
        rps, p50, p99 = s["rps"], s["p50_ms"], s["p99_ms"]
        body.append([
            t, str(s["rounds"]), fmt(rps[0], "rps"),
            f"{fmt(rps[1], 'rps')}..{fmt(rps[2], 'rps')}",
            fmt(p50[0]), f"{fmt(p50[1])}..{fmt(p50[2])}",
            fmt(p99[0]), f"{fmt(p99[1])}..{fmt(p99[2])}",
            str(s["errors"])])
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for row in body:
            lines.append("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(x[i]) for x in [head] + body)
                  for i in range(len(head))]
        for row in [head] + body:
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in
                                   enumerate(zip(row, widths))))
    ratios = []
    tr = table.get("treaty")
    for other in ("nginx", "haproxy"):
        o = table.get(other)
        if tr and o:
            ratios.append(
                f"treaty/{other}: req/s {tr['rps'][0] / o['rps'][0]:.2f}x, "
                f"p99 {tr['p99_ms'][0] / o['p99_ms'][0]:.2f}x")
    return lines, ratios


def main(argv):
    if len(argv) >= 4 and argv[1] == "parse":
        with open(argv[4]) as f:
            rec = parse(f.read())
        rec.update(target=argv[2], round=int(argv[3]))
        print(json.dumps(rec))
        return 0
    if len(argv) >= 3 and argv[1] == "summary":
        rows = [json.loads(x) for x in open(argv[2]) if x.strip()]
        md_out = title = None
        notes = []
        args = argv[3:]
        while args:
            k = args.pop(0)
            if k == "--markdown":
                md_out = args.pop(0)
            elif k == "--title":
                title = args.pop(0)
            elif k == "--note":
                notes.append(args.pop(0))
        targets, table = summary(rows)
        lines, ratios = render(targets, table)
        print("\n".join(lines))
        for r in ratios:
            print(r)
        if md_out:
            mlines, _ = render(targets, table, markdown=True)
            with open(md_out, "w") as f:
                if title:
                    f.write(f"### {title}\n\n")
                for n in notes:
                    f.write(f"{n}\n")
                if notes:
                    f.write("\n")
                f.write("\n".join(mlines) + "\n\n")
                for r in ratios:
                    f.write(f"- {r}\n")
        bad = [t for t in targets if table[t] is None or table[t]["errors"]]
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
