"""Parallel demo clients for scripts/demo: real HTTP traffic through treaty.

  demo_clients.py --url http://127.0.0.1:8480 [--rounds 10] [--json FILE]

Several clients run at once, each a thread with its own keep-alive
requests.Session: browsers list events and calendars, a planner creates
events, editors PATCH and PUT existing ones, a tidier creates and deletes.
Each request states the status it expects; the summary counts statuses
per client and lists anything unexpected.  At the end the event count seen
through the gateway must equal the starting count plus what was created
minus what was deleted.  Exit status 1 on any unexpected answer.

Later demo sections give clients identities: a Client's `headers` are sent
with every request (e.g. a bearer token per person or agent).
"""

import argparse
import collections
import json
import sys
import threading
import time

import requests


class Client:
    def __init__(self, name, url, headers=None):
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self.session = requests.Session()
        self.counts = collections.Counter()   # "GET 200" -> n
        self.unexpected = []
        self.created = []
        self.deleted = []
        self.lock = threading.Lock()

    def call(self, method, path, expect, **kw):
        """One request; `expect` is a status or a tuple of statuses."""
        expect = (expect,) if isinstance(expect, int) else expect
        kw.setdefault("timeout", 15)
        try:
            r = self.session.request(method, self.url + path,
                                     headers=self.headers, **kw)
        except requests.RequestException as e:
            self.counts[f"{method} error"] += 1
            self.unexpected.append(f"{method} {path}: {type(e).__name__}")
            return None
        self.counts[f"{method} {r.status_code}"] += 1
        if r.status_code not in expect:
            self.unexpected.append(
                f"{method} {path}: {r.status_code} (wanted "
                f"{'/'.join(map(str, expect))}) {r.text[:160]!r}")
        return r


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


ROLES = [("browser-1", browser), ("browser-2", browser),
         ("planner", planner), ("editor-1", editor), ("editor-2", editor),
         ("tidier", tidier)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()

    first = requests.get(a.url + "/events", timeout=15)
    first.raise_for_status()
    before = first.json()
    ids = [e["id"] for e in before]

    clients = [(Client(name, a.url), fn) for name, fn in ROLES]
    threads = [threading.Thread(target=fn, args=(c, a.rounds, ids),
                                name=c.name) for c, fn in clients]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0

    after = requests.get(a.url + "/events", timeout=15).json()
    created = sum(len(c.created) for c, _ in clients)
    deleted = sum(len(c.deleted) for c, _ in clients)
    want = len(before) + created - deleted
    consistent = len(after) == want

    total = 0
    print(f"{'client':<11} {'requests':>8}  statuses")
    for c, _ in clients:
        n = sum(c.counts.values())
        total += n
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(c.counts.items()))
        print(f"{c.name:<11} {n:>8}  {statuses}")
    print(f"{total} requests from {len(clients)} parallel clients in "
          f"{elapsed:.1f}s; events: {len(before)} before, +{created} "
          f"created, -{deleted} deleted, {len(after)} after "
          f"({'consistent' if consistent else f'EXPECTED {want}'})")
    bad = [u for c, _ in clients for u in (f"{c.name}: {x}"
                                           for x in c.unexpected)]
    for u in bad[:20]:
        print("  unexpected:", u)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({c.name: dict(c.counts) for c, _ in clients}, f,
                      indent=2)
    return 0 if consistent and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
