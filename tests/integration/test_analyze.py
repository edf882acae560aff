"""treaty analyze: logs of known shape in, figures out.

Logs are generated here with known shapes (a person's steady cadence, an
8-worker planner, a 500-call fan-out then silence) in treaty's JSON format,
nginx combined and nginx JSON; every figure asserted is recomputed in
Python from the generated requests (brute force, independent of the C
code).  A real nginx (Debian's nginx-light) serves requests on loopback and
its own access log is analysed, with malformed and truncated lines added.
--simulate is checked against a Python model of GCRA and of a FIFO
concurrency queue.
"""

import csv
import gzip
import io
import json
import math
import os
import pty
import random
import select
import signal
import subprocess
import time
from collections import namedtuple
from datetime import datetime, timedelta, timezone


import pytest
import requests

import harness

NS = 10**9
MS = 10**6
T0_MS = 1_700_000_000_000          # 2023-11-14T22:13:20Z

Req = namedtuple("Req", "t_ms dur_ms sub cls tool method path status")


# ------------------------------------------------------------ shapes --

def human(rng, start_ms, n, sub, tool="search"):
    """A person: one request every 3 to 7 s, 50..300 ms each."""
    out, t = [], start_ms
    for _ in range(n):
        out.append(Req(t, rng.randint(50, 300) + 0.25, sub, "human", tool,
                       "GET", "/search", 200))
        t += rng.randint(3000, 7000)
    return out


def planner(rng, start_ms, runs, run_s, sub, tool="search"):
    """8 workers back to back (200..400 ms, 0..50 ms between), `runs`
    runs of run_s seconds, 10 minutes of silence between runs."""
    out = []
    for r in range(runs):
        base = start_ms + r * (run_s + 600) * 1000
        for _ in range(8):
            t = base
            while t < base + run_s * 1000:
                d = rng.randint(200, 400)
                out.append(Req(t, float(d), sub, "agent", tool, "GET",
                               "/search", 200))
                t += d + rng.randint(0, 50)
    return sorted(out, key=lambda q: q.t_ms)


def fanout(rng, start_ms, sub, n=500, over_ms=10_000, tool="search"):
    """n calls at random over over_ms, then one more 30 minutes later."""
    out = sorted((Req(start_ms + rng.randint(0, over_ms - 1),
                      float(rng.randint(20, 80)), sub, "agent", tool, "GET",
                      "/search", 200) for _ in range(n)),
                 key=lambda q: q.t_ms)
    out.append(Req(start_ms + 1_800_000, 30.0, sub, "agent", tool, "GET",
                   "/search", 200))
    return out


def three_shapes(seed=7):
    rng = random.Random(seed)
    reqs = (human(rng, T0_MS, 300, "alice")
            + planner(rng, T0_MS + 60_000, 3, 30, "planner")
            + fanout(rng, T0_MS + 120_000, "fanout"))
    return sorted(reqs, key=lambda q: q.t_ms)


# ----------------------------------------------------------- writers --

def treaty_line(q, issuer="dev", limiter=None, decision="allow", i=0):
    # The fields and order of src/net/access_log.c.
    return json.dumps({
        "time": q.t_ms, "request_id": f"r{i}", "client": "127.0.0.1",
        "principal": q.sub, "principal_issuer": issuer, "actor": q.sub,
        "class": q.cls, "route": q.tool, "tool": q.tool,
        "method": q.method, "path": q.path, "status": q.status,
        "duration_ms": q.dur_ms, "bytes": 10, "decision": decision,
        "reason": None, "policy_rule": None, "limiter": limiter,
        "idempotency_key_hash": None, "replayed": False,
        "precondition": None, "traceparent": None})


def write_treaty(path, reqs):
    # treaty writes a line when a request ends, stamped with its start.
    order = sorted(range(len(reqs)),
                   key=lambda i: reqs[i].t_ms + reqs[i].dur_ms)
    with open(path, "w") as f:
        for i in order:
            f.write(treaty_line(reqs[i], i=i) + "\n")


def clf_time(ms, tz_minutes=0):
    tz = timezone(timedelta(minutes=tz_minutes))
    dt = datetime.fromtimestamp(ms // 1000, tz)
    return dt.strftime("%d/%b/%Y:%H:%M:%S %z")


def end_s(q):
    """nginx stamps the end of a request, at 1 s resolution."""
    return int((q.t_ms + q.dur_ms) // 1000)


def combined_line(q, user=None, addr="192.0.2.1", tz_minutes=0):
    return (f'{addr} - {user if user is not None else q.sub} '
            f'[{clf_time(end_s(q) * 1000, tz_minutes)}] '
            f'"{q.method} {q.path}?page=1 HTTP/1.1" {q.status} 512 '
            f'"-" "agent/1.0 (x; y)"')


def combined_lines(reqs, tz_minutes=0):
    return [combined_line(q, tz_minutes=tz_minutes)
            for q in sorted(reqs, key=lambda q: end_s(q))]


# ----------------------------------------------------------- oracles --

def starts_ns(reqs):
    return sorted(q.t_ms * MS for q in reqs)


def cv_of(ts):
    gaps = [(b - a) / NS for a, b in zip(ts, ts[1:])]
    mean = sum(gaps) / len(gaps)
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    return math.sqrt(var) / mean


def burst_max(ts, join_ns):
    best = cur = 1
    for a, b in zip(ts, ts[1:]):
        cur = cur + 1 if b - a < join_ns else 1
        best = max(best, cur)
    return best


def grid_peak(ts, window_ns, step_ns):
    """Most requests in a window of window_ns on a grid of step_ns."""
    steps = {}
    for t in ts:
        steps[t // step_ns] = steps.get(t // step_ns, 0) + 1
    k = window_ns // step_ns
    return max(sum(steps.get(s - j, 0) for j in range(k)) for s in steps)


def peak_inflight(reqs):
    ev = sorted([(q.t_ms * MS, 1) for q in reqs]
                + [(q.t_ms * MS + round(q.dur_ms * MS), -1) for q in reqs],
                key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def gcra_refusals(ts, rate, burst):
    """Refusals by GCRA as core/gcra.h defines it (integer ns)."""
    t_ns = max(1, round(NS / rate))
    tau = burst * t_ns
    tat = 0
    refused = 0
    for t in ts:
        if max(tat, t) + t_ns - t <= tau:
            tat = max(tat, t) + t_ns
        else:
            refused += 1
    return refused


# ------------------------------------------------------------ running --

def analyze(treaty_bin, *args, check=True, input_=None):
    p = subprocess.run([treaty_bin, "analyze", *map(str, args)],
                       capture_output=True, text=True, input=input_,
                       timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def analyze_json(treaty_bin, *args):
    p = analyze(treaty_bin, "--format", "json", *args)
    return json.loads(p.stdout)


def by_name(report):
    return {p["principal"]: p for p in report["principals"]}


# -------------------------------------------------------------- tests --

def test_treaty_log_three_shapes_match_brute_force(tmp_path, treaty_bin):
    reqs = three_shapes()
    log = tmp_path / "access.log"
    write_treaty(log, reqs)
    rep = analyze_json(treaty_bin, log)
    r = rep["report"]
    assert r["requests"] == len(reqs)
    assert r["malformed"]["total"] == 0
    assert r["inputs"][0]["format"] == "treaty"
    assert r["approximate"] is False
    assert r["time_resolution_ms"] == 1
    # Lines are in end order: some had to be put back, none too late.
    assert r["reorder"]["reordered"] > 0
    assert r["reorder"]["late"] == 0

    p = by_name(rep)
    assert set(p) == {"dev:alice", "dev:planner", "dev:fanout"}
    expect_shape = {"dev:alice": "human-like", "dev:planner": "bursty-agent",
                    "dev:fanout": "bursty-agent"}
    for sub in ("alice", "planner", "fanout"):
        mine = [q for q in reqs if q.sub == sub]
        ts = starts_ns(mine)
        got = p["dev:" + sub]
        assert got["requests"] == len(mine)
        assert got["class"] == mine[0].cls
        assert got["shape"] == expect_shape["dev:" + sub], got["reason"]
        assert got["burst_max"] == burst_max(ts, NS)
        assert got["peak_1s"] == grid_peak(ts, NS, 10 * MS)
        assert got["peak_10s"] == grid_peak(ts, 10 * NS, 100 * MS)
        assert got["peak_inflight"] == peak_inflight(mine)
        assert got["interarrival_cv"] == pytest.approx(cv_of(ts), rel=1e-5)
        rec = got["recommendation"]
        assert gcra_refusals(ts, rec["rate"], rec["burst"]) == 0
        if rec["burst"] > 1:
            assert gcra_refusals(ts, rec["rate"], rec["burst"] - 1) > 0
        assert sum(got["hours_utc"]) == len(mine)
        assert sum(got["timeline"]) == len(mine)
        assert sum(got["interarrival_hist"]) == len(mine) - 1

    assert p["dev:planner"]["peak_inflight"] == 8
    assert p["dev:planner"]["recommendation"]["concurrency"] == 8
    assert p["dev:planner"]["recommendation"]["concurrency_basis"] == \
        "peak-inflight"
    assert p["dev:fanout"]["burst_max"] == 500
    assert "a burst of 500 requests" in p["dev:fanout"]["reason"]
    agent = rep["classes"]["agent"]
    assert agent["principals"] == 2
    assert agent["concurrency"] == 8
    for sub in ("planner", "fanout"):
        ts = starts_ns([q for q in reqs if q.sub == sub])
        assert gcra_refusals(ts, agent["rate"], agent["burst"]) == 0
    assert rep["classes"]["human"]["principals"] == 1
    assert rep["simulation"] is None


def test_combined_rotated_gzip_files_in_any_order(tmp_path, treaty_bin):
    reqs = three_shapes(seed=11)
    lines = combined_lines(reqs, tz_minutes=120)
    third = len(lines) // 3
    old = tmp_path / "access.log.2.gz"
    mid = tmp_path / "access.log.1"
    new = tmp_path / "access.log"
    with gzip.open(old, "wt") as f:
        f.write("\n".join(lines[:third]) + "\n")
    mid.write_text("\n".join(lines[third:2 * third]) + "\n")
    new.write_text("\n".join(lines[2 * third:]) + "\n")
    whole = tmp_path / "whole.log"
    whole.write_text("\n".join(lines) + "\n")

    # Named newest first, as `ls` would list them.
    rep = analyze_json(treaty_bin, new, mid, old)
    one = analyze_json(treaty_bin, whole)
    r = rep["report"]
    assert [i["file"] for i in r["inputs"]] == [str(old), str(mid),
                                                 str(new)]
    assert r["inputs"][0]["gzip"] is True
    assert all(i["format"] == "combined" for i in r["inputs"])
    assert r["reorder"]["late"] == 0
    assert r["approximate"] is True
    assert r["time_resolution_ms"] == 1000
    assert any("1 s resolution" in n for n in r["notes"])
    assert any("no request durations" in n for n in r["notes"])
    assert rep["principals"] == one["principals"]

    p = by_name(rep)
    for sub in ("alice", "planner", "fanout"):
        mine = [q for q in reqs if q.sub == sub]
        ts = sorted(end_s(q) * NS for q in mine)
        got = p[sub]
        assert got["requests"] == len(mine)
        assert got["class"] is None
        assert got["peak_inflight"] is None
        # 1 s stamps: requests one second apart still join a burst.
        assert got["burst_max"] == burst_max(ts, NS + 1)
        assert got["peak_1s"] == grid_peak(ts, NS, 10 * MS)
        assert got["recommendation"]["concurrency_basis"] == \
            "busiest-second"
        assert got["recommendation"]["concurrency"] == got["peak_1s"]
    assert p["alice"]["shape"] == "human-like"
    assert p["alice"]["budget_class"] == "human"
    assert p["fanout"]["shape"] == "bursty-agent"
    assert p["fanout"]["budget_class"] == "agent"
    assert p["planner"]["budget_class"] == "agent"


def test_malformed_lines_are_counted_never_fatal(tmp_path, treaty_bin):
    reqs = three_shapes(seed=3)[:200]
    lines = combined_lines(reqs)
    good = lines[0]
    bad = [
        "complete garbage",                               # bad-field
        good[: len(good) // 2],                           # truncated
        good.replace("/Nov/", "/Nox/"),                   # bad-time
        "x" * 70_000,                                     # too-long
        good.replace('" 200 ', '" 2x0 '),                 # bad-field
        "",                                               # blank: skipped
    ]
    log = tmp_path / "mixed.log"
    # Malformed lines inside, and a truncated one last without "\n".
    log.write_text("\n".join(lines[:100] + bad + lines[100:]) + "\n"
                   + good[:40])
    rep = analyze_json(treaty_bin, log)
    r = rep["report"]
    assert r["requests"] == len(lines)
    assert r["malformed"]["total"] == 6
    assert r["malformed"]["by_reason"] == {
        "bad-field": 2, "truncated": 2, "bad-time": 1, "too-long": 1}
    ex = r["malformed"]["examples"]
    assert [e["line"] for e in ex[:5]] == [101, 102, 103, 104, 105]
    assert ex[-1]["line"] == len(lines) + len(bad) + 1
    assert r["inputs"][0]["malformed"] == 6

    # The same in the table, which says what and where.
    out = analyze(treaty_bin, log).stdout
    assert "6 malformed" in out
    assert "mixed.log:101 (bad-field)" in out


def test_gzip_truncated_file_reports_and_keeps_what_it_read(tmp_path,
                                                            treaty_bin):
    lines = combined_lines(three_shapes(seed=5))
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    log = tmp_path / "cut.log.gz"
    log.write_bytes(data[: len(data) * 2 // 3])
    rep = analyze_json(treaty_bin, log)
    r = rep["report"]
    assert "truncated" in r["inputs"][0]["error"]
    assert 0 < r["requests"] < len(lines)


def jwt_for(sub, iss="https://idp.example/"):
    import jwt
    return jwt.encode({"sub": sub, "iss": iss, "exp": 2_000_000_000},
                      "not-a-secret-not-a-secret-not-a-secret",
                      algorithm="HS256")


def test_nginx_json_with_unverified_jwt_principals(tmp_path, treaty_bin):
    reqs = three_shapes(seed=13)
    tokens = {s: jwt_for(s) for s in ("alice", "planner", "fanout")}
    log = tmp_path / "nginx.json.log"
    with open(log, "w") as f:
        for q in sorted(reqs, key=lambda q: q.t_ms + q.dur_ms):
            end = (q.t_ms + q.dur_ms) / 1000
            f.write(json.dumps({
                "msec": float(f"{end:.3f}"), "remote_addr": "198.51.100.7",
                "remote_user": "", "request": f"{q.method} {q.path} HTTP/1.1",
                "status": str(q.status),
                "request_time": f"{q.dur_ms / 1000:.3f}",
                "http_authorization": "Bearer " + tokens[q.sub]}) + "\n")
        # A token that does not decode: anonymous, and counted.
        f.write(json.dumps({"msec": end, "remote_addr": "198.51.100.9",
                            "request": "GET / HTTP/1.1", "status": 200,
                            "request_time": "0.001",
                            "http_authorization": "Bearer abc.@@@.x"})
                + "\n")
    rep = analyze_json(treaty_bin, "--principal-from", "jwt", log)
    r = rep["report"]
    assert r["inputs"][0]["format"] == "nginx-json"
    assert r["jwt_undecodable"] == 1
    assert any("WITHOUT checking their signatures" in n for n in r["notes"])
    p = by_name(rep)
    assert p["anon@198.51.100.9"]["requests"] == 1
    for sub in ("alice", "planner", "fanout"):
        got = p["https://idp.example/:" + sub]
        mine = [q for q in reqs if q.sub == sub]
        assert got["unverified"] is True
        assert got["requests"] == len(mine)
        # Start = logged end - request_time, so in-flight is exact.
        assert got["peak_inflight"] == peak_inflight(mine)
    table = analyze(treaty_bin, "--principal-from", "jwt", log).stdout
    assert "(unverified)" in table


def test_principal_cap_counts_the_rest_as_other(tmp_path, treaty_bin):
    reqs = []
    for i in range(10):
        reqs += [Req(T0_MS + i * 1000 + k, 1.0, f"user{i}", "human",
                     "search", "GET", "/search", 200) for k in range(i + 1)]
    log = tmp_path / "many.log"
    write_treaty(log, reqs)
    rep = analyze_json(treaty_bin, "--max-principals", "3", log)
    r = rep["report"]
    assert r["principals_tracked"] == 3
    p = by_name(rep)
    tracked = [n for n in p if not p[n]["other"]]
    assert len(tracked) == 3
    other = p["(other)"]
    assert other["other"] is True
    assert other["shape"] == "aggregate"
    assert other["recommendation"] is None
    assert other["requests"] == len(reqs) - sum(p[n]["requests"]
                                               for n in tracked)
    assert r["overflow_requests"] == other["requests"]
    assert any("tracking cap" in n for n in r["notes"])


def test_csv_and_table_reports(tmp_path, treaty_bin):
    log = tmp_path / "access.log"
    write_treaty(log, three_shapes())
    out = analyze(treaty_bin, "--format", "csv", log).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["principal"] for r in rows} == {"dev:alice", "dev:planner",
                                              "dev:fanout"}
    fan = next(r for r in rows if r["principal"] == "dev:fanout")
    assert fan["burst_max"] == "500"
    assert fan["shape"] == "bursty-agent"
    assert "burst of 500" in fan["reason"]

    table = analyze(treaty_bin, log).stdout
    assert "bursty-agent" in table and "human-like" in table
    assert "budgets.agent: concurrency 8" in table
    assert "Recommendations for agents" in table


def test_html_report_is_self_contained(tmp_path, treaty_bin):
    log = tmp_path / "access.log"
    write_treaty(log, three_shapes())
    html = tmp_path / "report.html"
    analyze(treaty_bin, "--html", html, log)
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == 6            # 2 charts x 3 principals
    assert "<polyline" in text and "<rect" in text
    low = text.lower()
    for banned in ("<script", " src=", " href=", "@import", "url("):
        assert banned not in low
    assert "dev:fanout" in text


def test_progress_bar_only_on_a_terminal(tmp_path, treaty_bin):
    rng = random.Random(1)
    reqs = [Req(T0_MS + i * 7, 1.0, f"u{rng.randint(0, 50)}", "human",
                "search", "GET", "/search", 200) for i in range(300_000)]
    log = tmp_path / "big.log"
    log.write_text("\n".join(combined_line(q) for q in reqs) + "\n")

    p = analyze(treaty_bin, log)        # stderr is a pipe here
    assert p.stderr == ""

    master, slave = pty.openpty()
    proc = subprocess.Popen([treaty_bin, "analyze", str(log)],
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(master)
    assert b"reading" in seen and b"lines/s" in seen


def test_bad_usage_exits_2(tmp_path, treaty_bin):
    log = tmp_path / "a.log"
    log.write_text(combined_line(three_shapes()[0]) + "\n")
    assert analyze(treaty_bin, check=False).returncode == 2
    assert analyze(treaty_bin, "--format", "xml", log,
                   check=False).returncode == 2
    p = analyze(treaty_bin, "--principal-from", "jwt", log, check=False)
    assert p.returncode == 2 and "combined" in p.stderr
    p = analyze(treaty_bin, tmp_path / "missing.log", check=False)
    assert p.returncode == 1 and "missing.log" in p.stderr


# --------------------------------------------------------- simulation --

SIM_BASE = """\
listen: "127.0.0.1:1"
state_dir: {state}
upstreams:
  app: {{url: "http://127.0.0.1:3000"}}
budgets:
  human: {{concurrency: 0, rate: 0}}
  agent: {agent}
quotas:
  email: {{limit: 5, period_s: 60, per: principal}}
tools:
  search: {{}}
  send_email: {{charges: {{email: 1}}}}
routes:
  - name: search
    match: {{methods: [GET], path: /search}}
    upstream: app
    auth: none
    tool: search
  - name: mail
    match: {{methods: [POST], path: /mail}}
    upstream: app
    auth: none
    tool: send_email
"""


def sim_config(tmp_path, agent):
    path = tmp_path / f"sim{abs(hash(agent))}.yaml"
    path.write_text(SIM_BASE.format(state=tmp_path / "state", agent=agent))
    return path


def fifo_model(reqs, cap, queue_max, timeout_ms):
    """One principal's concurrency budget: admitted at once, queued then
    admitted (with the wait), refused for a full queue, timed out."""
    NSq = MS
    # Within one timestamp the longer request is taken to come first
    # (src/cli/analyze_reorder.c).
    arrivals = sorted(((round(q.t_ms * NSq), round(q.dur_ms * NSq))
                       for q in reqs), key=lambda a: (a[0], -a[1]))
    releases = []            # end times of held slots
    queue = []               # (arrival, deadline, dur)
    inflight = 0
    res = {"admitted": 0, "after_wait": 0, "queue_full": 0, "timeout": 0,
           "wait_ns": 0}

    def expire(now):
        while queue and queue[0][1] <= now:
            a, d, _ = queue.pop(0)
            res["timeout"] += 1
            res["wait_ns"] += d - a

    def run_until(t):
        nonlocal inflight
        while True:
            nxt_rel = min(releases) if releases else None
            nxt_dl = queue[0][1] if queue else None
            cands = [x for x in (nxt_rel, nxt_dl) if x is not None and x <= t]
            if not cands:
                return
            now = min(cands)
            if nxt_rel is not None and nxt_rel == now:
                releases.remove(now)
                # Waiters whose deadline is <= now are passed over.
                while queue and queue[0][1] <= now:
                    a, d, _ = queue.pop(0)
                    res["timeout"] += 1
                    res["wait_ns"] += d - a
                if queue:
                    a, d, dur = queue.pop(0)
                    res["after_wait"] += 1
                    res["wait_ns"] += now - a
                    releases.append(now + dur)
                else:
                    inflight -= 1
            else:
                expire(now)

    for a, dur in arrivals:
        run_until(a)
        if inflight < cap and not queue:
            inflight += 1
            res["admitted"] += 1
            releases.append(a + dur)
        elif len(queue) < queue_max:
            queue.append((a, a + timeout_ms * NSq, dur))
        else:
            res["queue_full"] += 1
    run_until(float("inf"))
    return res


def agent_burst(seed=21, n=120):
    rng = random.Random(seed)
    return sorted((Req(T0_MS + rng.randint(0, 3000), float(rng.randint(
        50, 400)), "bot", "agent", "search", "GET", "/search", 200)
        for _ in range(n)), key=lambda q: q.t_ms)


def test_simulate_rate_matches_gcra(tmp_path, treaty_bin):
    reqs = agent_burst()
    log = tmp_path / "access.log"
    write_treaty(log, reqs)
    cfg = sim_config(tmp_path, "{concurrency: 0, rate: 10, burst: 20}")
    rep = analyze_json(treaty_bin, "--simulate", cfg, log)
    sim = rep["simulation"]
    want = gcra_refusals(starts_ns(reqs), 10, 20)
    assert want > 0
    tot = sim["total"]
    assert tot["requests"] == len(reqs)
    assert tot["refused"] == {"rate": want}
    assert tot["dimensions"]["rate"]["refused"] == want
    assert tot["admitted"] == len(reqs) - want
    [bot] = sim["principals"]
    assert bot["principal"] == "dev:bot" and bot["refused_total"] == want
    [tool] = sim["tools"]
    assert tool["tool"] == "search" and tool["refused_total"] == want
    table = analyze(treaty_bin, "--simulate", cfg, log).stdout
    assert f"refused rate           {want}" in table


def test_simulate_concurrency_queue_matches_fifo_model(tmp_path,
                                                       treaty_bin):
    reqs = agent_burst(seed=22, n=150)
    log = tmp_path / "access.log"
    write_treaty(log, reqs)
    for cap, queue, timeout in ((2, 0, 1000), (1, 5, 500), (3, 8, 300)):
        cfg = sim_config(tmp_path, f"{{concurrency: {cap}, queue: {queue},"
                                   f" queue_timeout_ms: {timeout}}}")
        tot = analyze_json(treaty_bin, "--simulate", cfg,
                           log)["simulation"]["total"]
        want = fifo_model(reqs, cap, queue, timeout)
        assert tot["admitted"] == want["admitted"], (cap, queue)
        assert tot["admitted_after_wait"] == want["after_wait"]
        assert tot["refused"].get("queue_full", 0) == want["queue_full"]
        assert tot["refused"].get("queue_timeout", 0) == want["timeout"]
        assert tot["dimensions"]["inflight"]["refused"] == \
            want["queue_full"] + want["timeout"]
        assert tot["added_wait_total_s"] == pytest.approx(
            want["wait_ns"] / NS, abs=1e-6)


def test_simulate_quota_per_tool_and_combined_routes(tmp_path, treaty_bin):
    # nginx combined: no tool logged, so the config's routes name it.
    mails = [Req(T0_MS + i * 100, 1.0, "bob", None, None, "POST", "/mail",
                 200) for i in range(12)]
    searches = [Req(T0_MS + i * 100 + 50, 1.0, "bob", None, None, "GET",
                    "/search", 200) for i in range(12)]
    log = tmp_path / "access.log"
    log.write_text("\n".join(combined_lines(mails + searches)) + "\n")
    cfg = sim_config(tmp_path, "{concurrency: 0, rate: 0}")
    sim = analyze_json(treaty_bin, "--simulate", cfg, log)["simulation"]
    tools = {t["tool"]: t for t in sim["tools"]}
    # email: burst 5, one back every 12 s; 12 mails within 2 s.
    assert tools["send_email"]["refused"] == {"quota": 7}
    assert tools["send_email"]["dimensions"]["quota:email"]["refused"] == 7
    assert tools["search"]["refused_total"] == 0
    assert sim["total"]["requests"] == 24


def test_simulate_skips_requests_refused_before_admission(tmp_path,
                                                          treaty_bin):
    reqs = agent_burst(seed=3, n=30)
    log = tmp_path / "access.log"
    with open(log, "w") as f:
        for i, q in enumerate(reqs):
            f.write(treaty_line(q, i=i) + "\n")
        # Denied by policy before step 7: never met the limiter.
        f.write(treaty_line(reqs[-1]._replace(status=403), decision="deny",
                            i=99) + "\n")
    cfg = sim_config(tmp_path, "{concurrency: 0, rate: 0}")
    sim = analyze_json(treaty_bin, "--simulate", cfg, log)["simulation"]
    assert sim["skipped_refused_before_admission"] == 1
    assert sim["total"]["requests"] == 30


# ------------------------------------------------------ a real nginx --

NGINX = "/usr/sbin/nginx"


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="no nginx")
def test_real_nginx_combined_log(tmp_path, treaty_bin):
    port = harness.free_port()
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("hello\n")
    (root / "private").mkdir()
    (root / "private" / "index.html").write_text("secret\n")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:{PLAIN}a-pass\nbob:{PLAIN}b-pass\n")
    for p in (tmp_path, root, root / "private"):
        p.chmod(0o755)
    for p in (htpasswd, root / "index.html", root / "private/index.html"):
        p.chmod(0o644)
    log = tmp_path / "access.log"
    conf = tmp_path / "nginx.conf"
    temp = tmp_path / "temp"
    temp.mkdir()
    conf.write_text(f"""
daemon off;
master_process off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {log} combined;
    client_body_temp_path {temp};
    proxy_temp_path {temp};
    fastcgi_temp_path {temp};
    uwsgi_temp_path {temp};
    scgi_temp_path {temp};
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /private/ {{
            auth_basic "treaty test";
            auth_basic_user_file {htpasswd};
        }}
    }}
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        harness.wait_for_port("127.0.0.1", port, timeout=10, proc=proc)
        base = f"http://127.0.0.1:{port}"
        s = requests.Session()
        # bob fans out: 80 requests back to back.
        for _ in range(80):
            assert s.get(base + "/private/", auth=("bob", "b-pass"),
                         timeout=5).status_code == 200
        # alice, a person: 25 requests, a few per second.
        for _ in range(25):
            assert s.get(base + "/private/", auth=("alice", "a-pass"),
                         timeout=5).status_code == 200
            time.sleep(0.12)
        # Anonymous, and a wrong password (logged with the user name).
        for _ in range(7):
            s.get(base + "/", timeout=5)
        assert s.get(base + "/private/", auth=("alice", "nope"),
                     timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    lines = log.read_text().splitlines()
    assert len(lines) == 80 + 25 + 7 + 1
    with open(log, "a") as f:
        f.write("not a log line at all\n")
        f.write(lines[0][: len(lines[0]) // 2] + "\n")   # truncated
        f.write(lines[1][:30])                            # cut, no newline
    rep = analyze_json(treaty_bin, log)
    r = rep["report"]
    assert r["inputs"][0]["format"] == "combined"
    assert r["requests"] == len(lines)
    assert r["malformed"]["total"] == 3
    assert r["malformed"]["by_reason"] == {"bad-field": 1, "truncated": 2}
    assert r["approximate"] is True
    p = by_name(rep)
    assert p["bob"]["requests"] == 80
    assert p["alice"]["requests"] == 26
    assert p["anon@127.0.0.1"]["requests"] == 7
    # 80 requests, none a second after the previous: one burst.
    assert p["bob"]["burst_max"] == 80
    assert p["bob"]["shape"] == "bursty-agent"
    assert p["bob"]["budget_class"] == "agent"
    # The times nginx wrote, recounted here.
    def stamp(line):
        t = line.split("[", 1)[1].split("]", 1)[0]
        return int(datetime.strptime(t, "%d/%b/%Y:%H:%M:%S %z")
                   .timestamp()) * NS
    bob_ts = sorted(stamp(x) for x in lines if " - bob [" in x)
    assert p["bob"]["peak_1s"] == grid_peak(bob_ts, NS, 10 * MS)
    assert rep["report"]["first"].startswith(
        datetime.fromtimestamp(min(stamp(x) for x in lines) / NS,
                               timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))


# ----------------------------------------- agreement with the gateway --

@pytest.mark.timing
def test_simulation_agrees_with_the_gateway(tmp_path, treaty, backend):
    """Traffic through treaty with budgets, then its own access log
    simulated with the same configuration: the two refuse the same
    requests, within a tolerance.  The log has millisecond timestamps and
    stamps a request's start, a little before its admission, so a request
    on the edge of a budget may go either way; the tolerance is 3
    requests of 75 (4 %)."""
    from harness import py_mint, bearer
    import concurrent.futures as cf
    import threading

    backend.script("/work/x", delay=0.15)
    issuer = {"name": "corp", "issuer": harness.DEV_ISS,
              "audiences": [harness.DEV_AUD], "algorithms": ["ES256"],
              "jwks_file": str(harness.DEV_KEYS / "jwks.json")}
    cfg = {
        "upstreams": {"api": {"url": backend.url, "max_connections": 64}},
        "identity": {"issuers": [issuer]},
        "budgets": {
            "human": {"concurrency": 8, "rate": 100, "burst": 200},
            "agent": {"concurrency": 2, "queue": 3, "queue_timeout_ms": 400,
                      "rate": 10, "burst": 12},
        },
        "routes": [{"name": "work", "match": {"methods": ["GET"],
                                              "path": "/work/{rest...}"},
                    "upstream": "api"}],
    }
    t = treaty(cfg)
    agent = py_mint("alice", act=["agent:planner"])
    person = py_mint("bob")

    def wave(n, token):
        barrier = threading.Barrier(n)

        def one(_):
            barrier.wait()
            return requests.get(t.url + "/work/x", headers=bearer(token),
                                timeout=30).status_code
        with cf.ThreadPoolExecutor(n) as ex:
            return list(ex.map(one, range(n)))

    statuses = []
    for _ in range(5):                 # five fan-outs of 12, 0.6 s apart
        statuses += wave(12, agent)
        time.sleep(0.6)
    for _ in range(15):                # a person's sequential clicks
        statuses.append(requests.get(t.url + "/work/x",
                                     headers=bearer(person),
                                     timeout=10).status_code)
    t.stop()
    refused_live = sum(s in (429, 503) for s in statuses)
    assert refused_live > 0 and statuses.count(200) > 0

    rep = analyze_json(t.binary, "--simulate", t.config_path,
                       t.access_log_path)
    assert rep["report"]["requests"] == len(statuses)
    sim = rep["simulation"]
    agree = sim["agreement"]
    compared = (agree["both_admitted"] + agree["both_refused"]
                + agree["only_simulation_refused"]
                + agree["only_log_refused"])
    assert compared == len(statuses)
    assert agree["both_refused"] > 0
    differ = agree["only_simulation_refused"] + agree["only_log_refused"]
    assert differ <= 3, agree
    assert abs(sim["total"]["refused_total"] - refused_live) <= 3
    p = {x["principal"]: x for x in sim["principals"]}
    assert p["corp:bob"]["refused_total"] == 0
