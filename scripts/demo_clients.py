"""Parallel demo clients for scripts/demo: real HTTP traffic through treaty.

  demo_clients.py traffic --url URL --cast FILE [--rounds N] [--json FILE]
  demo_clients.py team    --url URL --cast FILE [--rounds N] --log FILE
  demo_clients.py burst   --url URL --cast FILE --backend URL
  demo_clients.py edit    --url URL --cast FILE --backend URL [--edits N]

The cast FILE (written by scripts/demo) maps a name to a development token
and what it says: {"alice": {"token": ..., "sub": "alice", "act": [],
"scope": ...}, "worker-8": {..., "act": ["agent:worker-8",
"agent:planner"]}}.  `act` is the delegation chain, current actor first.

traffic  several people at once, each a thread with its own keep-alive
         requests.Session: browsers list events and calendars, a planner
         creates events, editors PATCH and PUT existing ones, a tidier
         creates and deletes.  The event count seen through the gateway
         must equal the starting count plus created minus deleted.
team     alice and 8 agent workers acting for her (one through a planner)
         list, create and edit events in parallel; every answer's request
         id is looked up in the access log, whose line must name the
         token's principal and actor.  Then a few requests treaty refuses.
burst    30 searches from alice's workers at once against a slow route,
         while alice searches too: her agents' budget (4 in flight, 4
         waiting) absorbs the burst, her own requests pass.
edit     three agents append to one event's agenda, each edit
         conditional (If-Match) and retried on 412: nothing is lost.  The
         same clients talking to json-server directly are measured.

Each request states the status it expects; anything else is listed and
makes the exit status 1.  Tokens are never printed whole.
"""

import argparse
import base64
import collections
import json
import os
import sys
import threading
import time
import uuid

import requests


def load_cast(path):
    with open(path) as f:
        return json.load(f)


def chain_text(who):
    return " > ".join(who["act"]) if who["act"] else "-"


def actor_of(who):
    return who["act"][0] if who["act"] else who["sub"]


class Client:
    def __init__(self, name, url, token=None, patient=False):
        self.name = name
        self.url = url
        # A patient client does what the contract asks of an agent: on 429
        # it waits Retry-After and tries again (at most 3 times).
        self.patient = patient
        self.headers = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.session = requests.Session()
        self.counts = collections.Counter()   # "GET 200" -> n
        self.unexpected = []
        self.created = []
        self.deleted = []
        self.traces = []        # each request's W3C traceparent

    def call(self, method, path, expect, headers=None, **kw):
        """One request; `expect` is a status or a tuple of statuses."""
        expect = (expect,) if isinstance(expect, int) else expect
        kw.setdefault("timeout", 15)
        r = None
        for _ in range(4 if self.patient else 1):
            if r is not None:       # a 429: wait as told, at most 3 s
                time.sleep(min(float(r.headers.get("Retry-After", 1)), 3))
            # A trace context of our own: treaty keeps a valid one, so
            # the access log line of this very request can be found.
            tp = f"00-{uuid.uuid4().hex}-{os.urandom(8).hex()}-01"
            self.traces.append(tp)
            try:
                r = self.session.request(method, self.url + path,
                                         headers={**self.headers,
                                                  "traceparent": tp,
                                                  **(headers or {})}, **kw)
            except requests.RequestException as e:
                self.counts[f"{method} error"] += 1
                self.unexpected.append(f"{method} {path}: "
                                       f"{type(e).__name__}")
                return None
            self.counts[f"{method} {r.status_code}"] += 1
            if r.status_code != 429 or 429 in expect:
                break
        if r.status_code not in expect:
            self.unexpected.append(
                f"{method} {path}: {r.status_code} (wanted "
                f"{'/'.join(map(str, expect))}) {r.text[:160]!r}")
        return r

    def total(self):
        return sum(self.counts.values())

    def statuses(self):
        return ", ".join(f"{k} x{v}" for k, v in sorted(self.counts.items()))


def run_parallel(clients):
    """clients: [(Client, fn, args)]; returns the elapsed seconds."""
    threads = [threading.Thread(target=fn, args=(c, *args), name=c.name)
               for c, fn, args in clients]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0


def report_unexpected(clients):
    bad = [f"{c.name}: {x}" for c in clients for x in c.unexpected]
    for u in bad[:20]:
        print("   unexpected:", u)
    if len(bad) > 20:
        print(f"   ... and {len(bad) - 20} more")
    return bad


def problem_type(r):
    try:
        return r.json().get("type", "").rpartition("#")[2]
    except ValueError:
        return ""


# ---- traffic: several people at once -------------------------------------

def browser(c, rounds, ids):
    for i in range(rounds):
        c.call("GET", "/events", 200)
        c.call("GET", "/calendars", 200)
        c.call("GET", f"/calendars/{1 + i % 2}/events", 200)
        c.call("GET", f"/events/{ids[i % len(ids)]}", 200)
        c.call("GET", "/events?calendarId=1&_sort=start", 200)


def planner(c, rounds, ids):
    for i in range(rounds):
        r = c.call("POST", "/events", 201, json={
            "calendarId": 1, "title": f"Planned by {c.name} #{i}",
            "start": f"2026-12-{20 + i % 8:02d}T10:00:00Z",
            "end": f"2026-12-{20 + i % 8:02d}T10:30:00Z",
            "attendees": ["alice@example.com"], "notes": "demo"})
        if r is not None and r.status_code == 201:
            new = r.json()["id"]
            c.created.append(new)
            c.call("GET", f"/events/{new}", 200)


def editor(c, rounds, ids):
    # Each editor works on its own events so the edits do not race.
    mine = ids[int(c.name.rsplit("-", 1)[1]) - 1::2]
    for i in range(rounds):
        eid = mine[i % len(mine)]
        c.call("PATCH", f"/events/{eid}", 200,
               json={"notes": f"edited by {c.name}, pass {i}"})
        r = c.call("GET", f"/events/{eid}", 200)
        if r is not None and r.status_code == 200 and i % 3 == 0:
            ev = r.json()
            ev["title"] = ev["title"].split(" (")[0] + f" ({c.name})"
            c.call("PUT", f"/events/{eid}", 200, json=ev)


def tidier(c, rounds, ids):
    for i in range(rounds):
        r = c.call("POST", "/events", 201, json={
            "calendarId": 2, "title": "Temporary hold", "attendees": [],
            "start": "2026-12-30T09:00:00Z", "end": "2026-12-30T09:15:00Z",
            "notes": ""})
        if r is not None and r.status_code == 201:
            new = r.json()["id"]
            c.created.append(new)
            c.call("DELETE", f"/events/{new}", 200)
            c.deleted.append(new)
            # json-server hands a freed id to the next event created, so
            # the id may already hold the planner's event: only our own
            # temporary hold must be gone.
            r = c.call("GET", f"/events/{new}", (404, 200))
            if r is not None and r.status_code == 200 and \
                    r.json().get("title") == "Temporary hold":
                c.unexpected.append(f"GET /events/{new}: still there "
                                    f"after DELETE")


# client name, the person in the cast whose token it sends, what it does
ROLES = [("browser-1", "bob", browser), ("browser-2", "carol", browser),
         ("planner", "dave", planner), ("editor-1", "erin", editor),
         ("editor-2", "frank", editor), ("tidier", "grace", tidier)]


def cmd_traffic(a, cast):
    lister = Client("lister", a.url, cast["bob"]["token"])
    first = lister.call("GET", "/events", 200)
    if first is None or first.status_code != 200:
        print("   cannot list events:", lister.unexpected)
        return 1
    before = first.json()
    ids = [e["id"] for e in before]

    clients = [(Client(name, a.url, cast[who]["token"]), fn, (a.rounds, ids))
               for name, who, fn in ROLES]
    elapsed = run_parallel(clients)

    after = lister.call("GET", "/events", 200).json()
    created = sum(len(c.created) for c, _, _ in clients)
    deleted = sum(len(c.deleted) for c, _, _ in clients)
    want = len(before) + created - deleted
    consistent = len(after) == want

    total = 0
    print(f"   {'client':<11} {'person':<7} {'requests':>8}  statuses")
    for (c, _, _), (_, who, _) in zip(clients, ROLES):
        total += c.total()
        print(f"   {c.name:<11} {who:<7} {c.total():>8}  {c.statuses()}")
    print(f"   {total} requests from {len(clients)} python clients in "
          f"{elapsed:.1f}s; events: {len(before)} before, +{created} "
          f"created, -{deleted} deleted, {len(after)} after "
          f"({'consistent' if consistent else f'EXPECTED {want}'})")
    bad = report_unexpected([c for c, _, _ in clients])
    if a.json:
        with open(a.json, "w") as f:
            json.dump({c.name: dict(c.counts) for c, _, _ in clients}, f,
                      indent=2)
    return 0 if consistent and not bad else 1


# ---- team: alice and her agents ------------------------------------------

def person(c, rounds, tag):
    """alice herself: browses, books, and edits her events directly (a
    person's write needs no If-Match on this route)."""
    for i in range(rounds):
        c.call("GET", "/events", 200)
        c.call("GET", f"/calendars/{1 + i % 2}/events", 200)
        r = c.call("POST", "/events", 201, json={
            "calendarId": 2, "title": f"{tag} alice #{i}",
            "start": "2026-12-19T18:00:00Z", "end": "2026-12-19T19:00:00Z",
            "attendees": [], "notes": ""})
        if r is not None and r.status_code == 201:
            c.created.append(r.json()["id"])
        c.call("PATCH", f"/events/{1 + i % 5}", 200,
               json={"notes": f"alice looked at this ({i})"})


def conditional_patch(c, eid, change, tries=10):
    """GET for the ETag, PATCH with If-Match, again on 412."""
    for _ in range(tries):
        r = c.call("GET", f"/events/{eid}", 200)
        if r is None or r.status_code != 200:
            return None
        if "ETag" not in r.headers:
            c.unexpected.append(f"GET /events/{eid}: no ETag")
            return None
        w = c.call("PATCH", f"/events/{eid}", (200, 412),
                   json=change(r.json()),
                   headers={"If-Match": r.headers["ETag"]})
        if w is None or w.status_code != 412:
            return w
    c.unexpected.append(f"PATCH /events/{eid}: still 412 after {tries}")
    return None


def worker(c, rounds, tag):
    """An agent: lists, drafts an event (with an Idempotency-Key, so a
    retry cannot book it twice), then edits its draft conditionally."""
    for i in range(rounds):
        c.call("GET", "/events?calendarId=1", 200)
        r = c.call("POST", "/events", 201, json={
            "calendarId": 1, "title": f"{tag} {c.name} #{i}",
            "start": f"2026-12-{10 + i % 10:02d}T08:00:00Z",
            "end": f"2026-12-{10 + i % 10:02d}T08:30:00Z",
            "attendees": ["alice@example.com"], "notes": "draft"},
            headers={"Idempotency-Key": f'"{uuid.uuid4()}"'})
        if r is None or r.status_code != 201:
            continue
        eid = r.json()["id"]
        c.created.append(eid)
        conditional_patch(c, eid, lambda ev: {"notes": f"checked by "
                                              f"{c.name}"})


def access_log_lines(path, ids, wait_s=3.0):
    """The access log lines of these traceparents (the log is written off
    the event loop, so wait a little for the last ones)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {}
        with open(path) as f:
            for line in f:
                try:
                    x = json.loads(line)
                except ValueError:
                    continue
                if x.get("traceparent") in ids:
                    found[x["traceparent"]] = x
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def forged(token, sub):
    """The token with its payload edited to another sub, signature kept."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = sub
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return ".".join([head, base64.urlsafe_b64encode(raw).rstrip(b"=")
                     .decode(), sig])


def refusals(a, cast):
    """Requests treaty turns away before any reaches the backend:
    (what, status wanted, status, problem type, reason)."""
    ev = {"calendarId": 1, "title": "should not exist", "attendees": []}
    tries = [
        ("no token", None, "GET", "/events", None, 401),
        ("worker-1's token edited to say sub=bob",
         forged(cast["worker-1"]["token"], "bob"), "GET", "/events", None,
         401),
        ("agent:reader (scope calendar.read) books an event",
         cast["reader"]["token"], "POST", "/events", ev, 403),
        (f"three hands deep ({chain_text(cast['too-deep'])})",
         cast["too-deep"]["token"], "GET", "/events/1", None, 403),
        ("worker-1 edits an event without If-Match",
         cast["worker-1"]["token"], "PATCH", "/events/1", {"notes": "x"},
         428),
    ]
    out = []
    for what, token, method, path, body, want in tries:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        r = requests.request(method, a.url + path, headers=h, json=body,
                             timeout=10)
        reason = ""
        try:
            p = r.json()
        except ValueError:
            p = {}
        detail = p.get("detail", "")
        if p.get("reason"):
            reason = p["reason"]
        elif p.get("required_header"):
            reason = f"needs {p['required_header']}"
        elif "refused: " in detail:
            reason = detail.rpartition("refused: ")[2]
        out.append((what, want, r.status_code, problem_type(r), reason))
    return out


def cmd_team(a, cast):
    tag = f"Team {uuid.uuid4().hex[:4]}"
    names = ["alice"] + [f"worker-{i}" for i in range(1, 9)]
    clients = []
    for n in names:
        who = cast[n]
        fn = person if not who["act"] else worker
        clients.append((Client(n, a.url, who["token"], patient=True), fn,
                        (a.rounds, tag)))
    elapsed = run_parallel(clients)

    print(f"   {'client':<9} {'principal':<9} {'actor (> through)':<31} "
          f"{'requests':>8}  statuses")
    for c, _, _ in clients:
        who = cast[c.name]
        actor = chain_text(who) if who["act"] else f"{who['sub']} (herself)"
        print(f"   {c.name:<9} {who['sub']:<9} {actor:<31} {c.total():>8}  "
              f"{c.statuses()}")
    total = sum(c.total() for c, _, _ in clients)
    created = [e for c, _, _ in clients for e in c.created]
    lister = Client("lister", a.url, cast["alice"]["token"])
    r = lister.call("GET", "/events", 200)
    present = {e["id"] for e in r.json()
               if str(e.get("title", "")).startswith(tag)} if r else set()
    ok = set(created) == present
    print(f"   {total} requests from {len(clients)} parallel clients in "
          f"{elapsed:.1f}s; {len(created)} events created, "
          f"{len(present)} found ({'all there' if ok else 'MISMATCH'})")

    # The gateway's own account: each request's access log line, found by
    # the traceparent the client sent.
    ids = {tp: c.name for c, _, _ in clients for tp in c.traces}
    lines = access_log_lines(a.log, ids)
    wrong = [] if ids else ["no requests were made"]
    by = collections.Counter()
    for tp, name in ids.items():
        x = lines.get(tp)
        who = cast[name]
        if x is None:
            wrong.append(f"{name}: request {tp} not in the access log")
            continue
        by[(x["principal"], x["actor"], x["class"])] += 1
        if (x["principal"], x["actor"]) != (who["sub"], actor_of(who)):
            wrong.append(f"{name}: logged as {x['principal']}/"
                         f"{x['actor']}")
    right = len(lines) - sum(1 for w in wrong if "logged as" in w)
    print(f"   access log (lines found by each request's traceparent): "
          f"{len(lines)} of {len(ids)} requests logged, {right} with the "
          f"token's principal and actor:")
    for (p, act, cls), n in sorted(by.items()):
        print(f"     principal={p} actor={act:<15} class={cls:<6} x{n}")
    sample = next((lines[tp] for tp, n in ids.items()
                   if n == "worker-8" and tp in lines
                   and lines[tp]["method"] == "PATCH"), None)
    if sample:
        keep = ("principal", "actor", "class", "route", "method", "path",
                "status", "limiter", "precondition")
        print("   one line (worker-8, through the planner):")
        print("    ", json.dumps({k: sample.get(k) for k in keep}))
    for w in wrong[:5]:
        print("   wrong:", w)

    print("   refused before the backend:")
    refused_ok = True
    for what, want, got, ptype, reason in refusals(a, cast):
        mark = "" if got == want else f"  (WANTED {want})"
        refused_ok &= got == want
        print(f"     {got} {ptype:<25} {reason:<26} {what}{mark}")
    bad = report_unexpected([c for c, _, _ in clients])
    return 0 if ok and not wrong and not bad and refused_ok else 1


# ---- burst: alice's agents against her agents' budget ---------------------

def cmd_burst(a, cast):
    path = "/search/events?q=planning"
    workers = [f"worker-{i}" for i in range(1, 9)]
    n_agent, n_alice, alice_threads = 30, 6, 3
    requests.get(a.backend + "/__search_peak", timeout=5)   # reset
    results = []        # (who, status, seconds, response)
    lock = threading.Lock()
    gate = threading.Barrier(n_agent + alice_threads)

    def agent(i):
        s = requests.Session()
        h = {"Authorization":
             f"Bearer {cast[workers[i % len(workers)]]['token']}"}
        gate.wait()
        t = time.monotonic()
        r = s.get(a.url + path, headers=h, timeout=15)
        with lock:
            results.append(("agent", r.status_code, time.monotonic() - t, r))

    def alice():
        s = requests.Session()
        h = {"Authorization": f"Bearer {cast['alice']['token']}"}
        gate.wait()
        time.sleep(0.05)        # her agents have filled their budget
        for _ in range(n_alice // alice_threads):
            t = time.monotonic()
            r = s.get(a.url + path, headers=h, timeout=15)
            with lock:
                results.append(("alice", r.status_code,
                                time.monotonic() - t, r))

    threads = [threading.Thread(target=agent, args=(i,))
               for i in range(n_agent)]
    threads += [threading.Thread(target=alice) for _ in range(alice_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = requests.get(a.backend + "/__search_peak", timeout=5).json()

    def times(rows):
        s = [f"{x:.2f}" for x in sorted(x[2] for x in rows)]
        if not s:
            return "-"
        return f"{s[0]} s" if s[0] == s[-1] else f"{s[0]}-{s[-1]} s"

    ag = [x for x in results if x[0] == "agent"]
    al = [x for x in results if x[0] == "alice"]
    ok200 = [x for x in ag if x[1] == 200]
    first = [x for x in ok200 if x[2] < 0.45]
    later = [x for x in ok200 if x[2] >= 0.45]
    r429 = [x for x in ag if x[1] == 429]
    other = [x for x in ag if x[1] not in (200, 429)]
    print(f"   {n_agent} searches at once from alice's 8 workers (one budget "
          f"for all her agents: 4 in flight, 4 waiting; backend 0.3 s):")
    print(f"     200 x{len(first):<3} {'admitted at once':<22} "
          f"{times(first)}")
    print(f"     200 x{len(later):<3} {'waited in the queue':<22} "
          f"{times(later)}")
    print(f"     429 x{len(r429):<3} {'queue full: refused':<22} "
          f"{times(r429)}")
    for x in other:
        print(f"     {x[1]} {problem_type(x[3])}")
    al_ok = [x for x in al if x[1] == 200]
    print(f"   alice's own {len(al)} searches meanwhile (her human budget): "
          f"200 x{len(al_ok)}, {times(al)} each")
    print(f"   the backend saw at most {peak.get('agent', 0)} agent and "
          f"{peak.get('human', 0)} human searches at once")
    if r429:
        r = r429[0][3]
        print("   one 429:")
        for h in ("Retry-After", "RateLimit-Policy", "RateLimit",
                  "Cache-Control"):
            print(f"     {h}: {r.headers.get(h)}")
        p = r.json()
        print(f"     type: {p.get('type')}")
        print(f"     violated-policies: {p.get('violated-policies')}")
    return 0 if (len(al_ok) == len(al) == n_alice and r429 and not other
                 and peak.get("agent", 99) <= 4) else 1


# ---- edit: three agents, one event ---------------------------------------

def appender(c, eid, n, counts, via_treaty):
    """Append n items to the event's agenda, read-modify-write; through
    treaty each write is conditional and retried on 412."""
    for i in range(n):
        item = f"{c.name}: item {i + 1}"
        while True:
            r = c.call("GET", f"/events/{eid}", 200)
            if r is None or r.status_code != 200:
                return
            agenda = r.json().get("agenda", []) + [item]
            h = {}
            if via_treaty:
                if "ETag" not in r.headers:
                    c.unexpected.append(f"GET /events/{eid}: no ETag")
                    return
                h["If-Match"] = r.headers["ETag"]
            w = c.call("PATCH", f"/events/{eid}", (200, 412),
                       json={"agenda": agenda}, headers=h)
            if w is None:
                return
            if w.status_code != 412:
                break
            counts["412"] += 1


def edit_round(url, tokens, n, eid, via_treaty):
    counts = collections.Counter()
    clients = [Client(name, url, tok, patient=True) for name, tok in tokens]
    elapsed = run_parallel([(c, appender, (eid, n, counts, via_treaty))
                            for c in clients])
    final = clients[0].call("GET", f"/events/{eid}", 200).json()
    return clients, counts, final.get("agenda", []), elapsed


def cmd_edit(a, cast):
    names = ["worker-1", "worker-2", "worker-8"]
    alice = Client("alice", a.url, cast["alice"]["token"])
    ev = {"calendarId": 1, "title": "Team offsite", "agenda": [],
          "start": "2026-12-16T09:00:00Z", "end": "2026-12-16T17:00:00Z",
          "attendees": ["alice@example.com"], "notes": ""}
    r = alice.call("POST", "/events", 201, json=ev)
    eid = r.json()["id"]
    agent = Client("probe", a.url, cast["worker-1"]["token"])
    r = agent.call("GET", f"/events/{eid}", 200)
    etag = r.headers.get("ETag", "")
    if not etag or etag.startswith("W/"):
        print(f"   skipped: GET /events/{eid} through treaty carries no "
              f"strong ETag ({etag or 'none'}): this treaty does not "
              f"synthesize ETags on the event route (the preconditions "
              f"feature, or `etags: synthesize` in examples/demo.yaml, is "
              f"missing), so it cannot guard these edits")
        return 0

    print(f"   alice creates event {eid} \"Team offsite\" with an empty "
          f"agenda; {', '.join(names[:2])} and {names[2]} (through the "
          f"planner) each add {a.edits} items, all at once")
    print(f"   GET /events/{eid} as an agent: ETag {etag} (strong, made "
          f"by treaty)")
    tokens = [(n, cast[n]["token"]) for n in names]
    clients, counts, agenda, elapsed = edit_round(
        a.url, tokens, a.edits, eid, True)
    want = len(names) * a.edits
    per = collections.Counter(x.split(":")[0] for x in agenda)
    print(f"   through treaty: {len(agenda)} of {want} items kept "
          f"({', '.join(f'{k} {v}' for k, v in sorted(per.items()))}); "
          f"{counts['412']} writes got 412 and were redone; "
          f"{elapsed:.1f}s")
    kept = len(agenda) == want and len(set(agenda)) == want

    # The same clients, no treaty: json-server takes every write.
    direct = Client("alice", a.backend)
    r = direct.call("POST", "/events", 201, json={**ev, "title":
                                                  "Team offsite (direct)"})
    _, _, lost_agenda, _ = edit_round(
        a.backend, [(n, None) for n in names], a.edits, r.json()["id"],
        False)
    print(f"   the same three, straight to json-server (no treaty): "
          f"{len(lost_agenda)} of {want} items kept, "
          f"{want - len(lost_agenda)} lost to last-write-wins")
    bad = report_unexpected(clients + [alice, agent])
    print("   nothing lost" if kept and not bad else "   FAILED")
    return 0 if kept and not bad else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["traffic", "team", "burst", "edit"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--cast", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--edits", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--log")
    ap.add_argument("--backend")
    a = ap.parse_args()
    cast = load_cast(a.cast)
    return {"traffic": cmd_traffic, "team": cmd_team, "burst": cmd_burst,
            "edit": cmd_edit}[a.command](a, cast)


if __name__ == "__main__":
    sys.exit(main())
