"""Budgets for bursty callers through the real binary (issue 5): the
concurrency cap with its bounded queue, fairness across principals, the
rate, named quotas, no double charging, and the signalling fields.  Exact
timing lives in the unit tests on a virtual clock (test_budgets_scenarios);
here real-time tolerances are at least 50 ms and skipped under
sanitizers."""

import concurrent.futures as cf
import random
import re
import socket
import threading
import time

import requests

import harness
from harness import py_mint, bearer

ISSUER = {
    "name": "corp", "issuer": harness.DEV_ISS,
    "audiences": [harness.DEV_AUD], "algorithms": ["ES256"],
    "jwks_file": str(harness.DEV_KEYS / "jwks.json"),
}


def budget_config(url, *, agent=None, human=None, quotas=None, tools=None,
                  routes=None):
    cfg = {
        "upstreams": {"api": {"url": url, "max_connections": 64}},
        "identity": {"issuers": [ISSUER]},
        "budgets": {
            "human": human or {"concurrency": 8, "queue": 8,
                               "queue_timeout_ms": 2000, "rate": 100,
                               "burst": 200},
            "agent": agent or {"concurrency": 4, "queue": 4,
                               "queue_timeout_ms": 2000, "rate": 100,
                               "burst": 200},
        },
        "routes": routes or [
            {"name": "work", "match": {"methods": ["GET", "POST"],
                                       "path": "/work/{rest...}"},
             "upstream": "api"},
        ],
    }
    if quotas:
        cfg["quotas"] = quotas
    if tools:
        cfg["tools"] = tools
    return cfg


def agent_token(user="alice", worker=0):
    return py_mint(user, act=[f"agent:worker-{worker}"])


def human_token(user="bob"):
    return py_mint(user)


def fire(url, tokens, path="/work/x"):
    """Send one request per token at once; return the responses."""
    barrier = threading.Barrier(len(tokens))

    def one(tok):
        barrier.wait()
        t0 = time.monotonic()
        r = requests.get(url + path, headers=bearer(tok), timeout=30)
        return r, time.monotonic() - t0
    with cf.ThreadPoolExecutor(len(tokens)) as ex:
        return list(ex.map(one, tokens))


def test_concurrency_cap_queue_and_refusals_for_one_principal(treaty,
                                                             backend):
    backend.script("/work/x", delay=1.0)
    t = treaty(budget_config(backend.url))
    results = fire(t.url, [agent_token(worker=i) for i in range(12)])
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses.count(200) == 8
    assert statuses.count(429) == 4
    assert backend.peak <= 4
    assert backend.count() == 8
    for r, elapsed in results:
        assert "RateLimit-Policy" in r.headers
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "1"
            assert r.headers["Content-Type"] == "application/problem+json"
            assert r.headers["Cache-Control"] == "no-store"
            assert '"inflight";r=0' in r.headers["RateLimit"]
            assert '"inflight";q=4;qu="concurrent-requests"' in \
                r.headers["RateLimit-Policy"]
            assert "inflight" in r.json()["violated-policies"]
            if not harness.SANITIZER:
                assert elapsed < 0.5
    if not harness.SANITIZER:
        slow = sorted(e for r, e in results if r.status_code == 200)
        assert slow[3] < 1.5           # the first four: one backend time
        assert 1.9 < slow[4] < 2.6     # the queued four: two


def test_other_principal_not_delayed_by_a_full_queue(treaty, backend):
    backend.script("/work/x", delay=1.0)
    t = treaty(budget_config(backend.url))
    out = {}

    def other():
        time.sleep(0.1)
        t0 = time.monotonic()
        r = requests.get(t.url + "/work/x", headers=bearer(human_token()),
                         timeout=10)
        out["r"], out["t"] = r, time.monotonic() - t0
    th = threading.Thread(target=other)
    th.start()
    fire(t.url, [agent_token(worker=i) for i in range(12)])
    th.join()
    assert out["r"].status_code == 200
    if not harness.SANITIZER:
        assert out["t"] < 1.0 + 0.3


def test_person_not_queued_behind_her_own_agents(treaty, backend):
    backend.script("/work/x", delay=1.0)
    t = treaty(budget_config(backend.url))
    out = {}

    def person():
        time.sleep(0.1)
        t0 = time.monotonic()
        r = requests.get(t.url + "/work/x",
                         headers=bearer(py_mint("alice")), timeout=10)
        out["r"], out["t"] = r, time.monotonic() - t0
    th = threading.Thread(target=person)
    th.start()
    fire(t.url, [agent_token("alice", i) for i in range(12)])
    th.join()
    assert out["r"].status_code == 200
    if not harness.SANITIZER:
        assert out["t"] < 1.3


def test_queue_timeout_is_503_and_never_forwarded(treaty, backend):
    backend.script("/work/x", delay=3.0)
    cfg = budget_config(backend.url)
    t = treaty(cfg)
    results = fire(t.url, [agent_token(worker=i) for i in range(8)])
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [200] * 4 + [503] * 4
    for r, elapsed in results:
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["type"].endswith("#temporary-reduced-capacity")
            if not harness.SANITIZER:
                assert 1.9 < elapsed < 2.5
    assert backend.count() == 4


def test_rate_refusal_has_exact_retry_after_that_works(treaty, backend):
    cfg = budget_config(backend.url, agent={
        "concurrency": 100, "queue": 0, "queue_timeout_ms": 1000,
        "rate": 2, "burst": 4})
    t = treaty(cfg)
    tok = agent_token()
    codes = [t.request("GET", "/work/x", headers=bearer(tok)).status_code
             for _ in range(5)]
    assert codes == [200] * 4 + [429]
    r = t.request("GET", "/work/x", headers=bearer(tok))
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert wait >= 1
    assert re.search(r'"rate";r=0;t=\d+', r.headers["RateLimit"])
    assert r.json()["violated-policies"] == ["rate"]
    time.sleep(wait)
    assert t.request("GET", "/work/x", headers=bearer(tok)).status_code == \
        200


EMAIL = {
    "quotas": {"email": {"limit": 30, "period_s": 60}},
    "tools": {"search": {"rate_cost": 1},
              "send_email": {"rate_cost": 1, "charges": {"email": 10}}},
}


def tool_routes():
    return [
        {"name": "send", "match": {"methods": ["POST"],
                                   "path": "/mail/send"},
         "upstream": "api", "tool": "send_email"},
        {"name": "search", "match": {"methods": ["GET"],
                                     "path": "/search"},
         "upstream": "api", "tool": "search"},
    ]


def rate_r(resp):
    m = re.search(r'"rate";r=(\d+)', resp.headers.get("RateLimit", ""))
    return int(m.group(1)) if m else None


def test_quota_refusal_charges_nothing_and_spares_other_tools(treaty,
                                                              backend):
    # A slow refill (one unit per 10 s) so wall-clock time between the
    # third and fourth request cannot return a unit and blur the check.
    cfg = budget_config(backend.url, routes=tool_routes(),
                        agent={"concurrency": 4, "queue": 4,
                               "queue_timeout_ms": 2000, "rate": 0.1,
                               "burst": 20}, **EMAIL)
    t = treaty(cfg)
    h = bearer(agent_token())
    rs = [t.request("POST", "/mail/send", headers=h, data=b"{}")
          for _ in range(4)]
    assert [r.status_code for r in rs] == [200, 200, 200, 429]
    fourth = rs[3]
    assert fourth.json()["violated-policies"] == ["email"]
    assert fourth.headers["Retry-After"] == "20"
    assert '"email";r=0;t=20' in fourth.headers["RateLimit"]
    # The refused request took no rate unit.
    assert rate_r(fourth) == rate_r(rs[2])
    searches = [t.request("GET", "/search", headers=h).status_code
                for _ in range(15)]
    assert searches == [200] * 15
    assert backend.count("POST") == 3


def test_ratelimit_policy_is_byte_identical_and_well_formed(treaty, backend):
    cfg = budget_config(backend.url, routes=tool_routes(), **EMAIL)
    t = treaty(cfg)
    h = bearer(agent_token())
    policies = {t.request("POST", "/mail/send", headers=h,
                          data=b"{}").headers["RateLimit-Policy"]
                for _ in range(5)}
    assert len(policies) == 1
    pol = policies.pop()
    for item in pol.split(", "):
        assert re.fullmatch(r'"[a-z]+"(;q=\d+)(;w=\d+)?'
                            r'(;qu="concurrent-requests")?', item), item


def test_backend_ratelimit_headers_pass_through(treaty, backend):
    backend.script("/work/x", headers={"RateLimit": '"backend";r=5',
                                       "RateLimit-Policy":
                                       '"backend";q=10;w=1'})
    t = treaty(budget_config(backend.url))
    r = t.request("GET", "/work/x", headers=bearer(agent_token()))
    assert '"backend";r=5' in r.headers["RateLimit"]
    assert '"inflight"' in r.headers["RateLimit"]


def test_soak_random_aborts_leave_nothing_held(treaty, backend):
    n = int(__import__("os").environ.get("TREATY_SOAK_REQUESTS", "200"))
    backend.script("/work/slow", delay=0.05)
    backend.script("/work/fail", action="reset")
    t = treaty(budget_config(backend.url))
    rng = random.Random(7)
    toks = [agent_token(worker=i) for i in range(6)]

    def one(i):
        path = rng.choice(["/work/slow", "/work/fail", "/work/x"])
        tok = rng.choice(toks)
        if rng.random() < 0.3:
            s = socket.create_connection((t.host, t.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: "
                      f"Bearer {tok}\r\n\r\n".encode())
            time.sleep(rng.random() * 0.05)
            s.close()
            return
        try:
            requests.get(t.url + path, headers=bearer(tok), timeout=10)
        except requests.RequestException:
            pass
    with cf.ThreadPoolExecutor(12) as ex:
        list(ex.map(one, range(n)))

    def drained():
        m = t.metrics()
        return (m.get("treaty_inflight_requests") == 0 and
                m.get('treaty_budget_inflight{class="agent"}') == 0 and
                m.get('treaty_budget_waiting{class="agent"}') == 0)
    harness.wait_until(drained, timeout=10 * harness.SLOW,
                       what="in-flight and queues back to zero")


def test_metrics_name_the_burstiest_principals(treaty, backend):
    backend.script("/work/x", delay=0.2)
    t = treaty(budget_config(backend.url))
    fire(t.url, [agent_token("carol", i) for i in range(8)])
    time.sleep(0.3)
    fire(t.url, [agent_token("carol", i) for i in range(8)])
    t.request("GET", "/work/x", headers=bearer(human_token("dave")))
    m = t.metrics()
    carol = 'treaty_bursty_principal_burst_max{principal="corp:carol"}'
    assert carol in m
    assert m[carol] >= 4
    assert m['treaty_bursty_principal_inflight_peak{principal="corp:carol"}'] \
        >= 2
