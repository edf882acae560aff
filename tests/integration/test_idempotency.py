"""Idempotency keys end to end through the real ./treaty (issue 6).

The public scenarios T1-T6 of ../shared/cases/idempotency.md, then the
harder paths: a mismatch while the original is in flight, the bounded
wait, ambiguous upstream failures (pinned or released), responses over the
storage cap, gzip bodies, a client that leaves mid-request, kill -9 and
restart, and the store going away.  Every test asserts how many times the
backend executed the request.
"""

import gzip
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import requests

import harness
from harness import RawConn, parse_responses, raw_request, wait_until

PROBLEM = "application/problem+json"
ORDER_BODY = b'{"sku":"x","qty":1}'
JSON_CT = {"Content-Type": "application/json"}


# ------------------------------------------------------------ fixtures --

def identity():
    return {"issuers": [{
        "name": "dev",
        "issuer": harness.DEV_ISS,
        "audiences": [harness.DEV_AUD],
        "algorithms": ["ES256"],
        "jwks_file": str(harness.DEV_KEYS / "jwks.json"),
    }]}


def idem_config(backend_url, *, mode="required_for_agents", idem=None,
                response_timeout_ms=2000, orders_auth="required",
                extra_routes=()):
    """Orders and refunds are guarded (key required for agents); notes is
    not configured for idempotency; /v1/public takes anonymous callers."""
    def settings():  # a fresh dict each time: the loader refuses aliases
        return {"mode": mode, **(idem or {})}

    def guarded(path):
        return {"methods": ["GET", "POST"], "path": path}
    routes = [
        {"name": "orders", "match": guarded("/v1/orders"),
         "upstream": "backend", "auth": orders_auth,
         "idempotency": settings()},
        {"name": "refunds", "match": guarded("/v1/refunds"),
         "upstream": "backend", "idempotency": settings()},
        {"name": "notes",
         "match": {"methods": ["POST"], "path": "/v1/notes"},
         "upstream": "backend"},
        {"name": "public",
         "match": {"methods": ["POST"], "path": "/v1/public"},
         "upstream": "backend", "auth": "optional",
         "idempotency": settings()},
    ]
    routes.extend(extra_routes)
    return {
        "upstreams": {"backend": {
            "url": backend_url,
            "response_timeout_ms": response_timeout_ms}},
        "identity": identity(),
        "routes": routes,
    }


@pytest.fixture(scope="module")
def tokens():
    """A1 and A2 are agents (tokens with act), H1 is a person."""
    return {
        "A1": harness.py_mint("A1", act="bot-a1"),
        "A2": harness.py_mint("A2", act="bot-a2"),
        "H1": harness.py_mint("H1"),
    }


def hdrs(token=None, key=None, **extra):
    h = dict(JSON_CT)
    if token:
        h["Authorization"] = f"Bearer {token}"
    if key is not None:
        h["Idempotency-Key"] = key
    h.update(extra)
    return h


def post(t, path, token=None, key=None, body=ORDER_BODY, **kw):
    return t.request("POST", path, data=body, headers=hdrs(token, key),
                     **kw)


def problem_type(r):
    assert r.headers.get("Content-Type") == PROBLEM, r.text
    return r.json()["type"].rpartition("#")[2]


def until_settled(fn, timeout=3.0):
    """Retries fn() while it answers 409 key-conflict: the first outcome is
    written a moment after its response reached the client, which is what
    a client does on that 409 too (wait, retry with the same key)."""
    box = {}

    def attempt():
        r = fn()
        box["r"] = r
        return not (r.status_code == 409 and
                    problem_type(r) == "idempotency-key-conflict")
    wait_until(attempt, timeout * harness.SLOW, "a settled outcome")
    return box["r"]


def run_in_thread(fn):
    out = {}

    def body():
        try:
            out["r"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["e"] = e
    th = threading.Thread(target=body, daemon=True)
    th.start()
    return th, out


def count(backend, method="POST", path="/v1/orders"):
    return backend.count(method, path)


# ------------------------------------------------------------------ T1 --

def test_t1_completed_request_is_replayed_byte_for_byte(treaty, backend,
                                                        tokens):
    backend.script("/v1/orders", method="POST", status=201,
                   headers={"Location": "/v1/orders/9",
                            "Set-Cookie": "s=1", "X-Request-Id": "r1",
                            "ETag": '"v9"', "X-Other": "o"},
                   body={"id": 9, "sku": "x", "qty": 1})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], '"k-1"')
    assert first.status_code == 201
    assert first.headers.get("Idempotent-Replayed") == "false"
    assert first.headers.get("Set-Cookie") == "s=1"

    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-1"'))
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["Location"] == "/v1/orders/9"
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.headers["ETag"] == '"v9"'
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Set-Cookie" not in again.headers
    assert again.headers.get("X-Request-Id") != "r1"
    assert "X-Other" not in again.headers
    assert "Date" in again.headers
    assert count(backend) == 1


def test_t1_replay_carries_a_fresh_date(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201,
                   headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"},
                   body={"id": 1})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], '"k-date"')
    assert first.status_code == 201
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-date"'))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "2001" not in again.headers["Date"]
    assert count(backend) == 1


def test_replay_and_outcomes_show_in_access_log_and_metrics(treaty,
                                                            backend,
                                                            tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 1})
    t = treaty(idem_config(backend.url))
    assert post(t, "/v1/orders", tokens["A1"], "k-log").status_code == 201
    r = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                   "k-log"))
    assert r.headers.get("Idempotent-Replayed") == "true"
    lines = [x for x in t.access_log_lines(wait_for=2)
             if x.get("path") == "/v1/orders"]
    hashes = {x.get("idempotency_key_hash") for x in lines}
    assert len(hashes) == 1 and None not in hashes
    (h,) = hashes
    assert len(h) == 16 and "k-log" not in h
    assert [x.get("replayed") for x in lines][-1] is True
    assert lines[0].get("replayed") is False
    m = t.metrics()
    assert m["treaty_idempotency_claims_total"] == 1
    assert m["treaty_idempotency_replays_total"] == 1
    assert m["treaty_idempotency_stored_total"] == 1
    assert count(backend) == 1


# ------------------------------------------------------------------ T2 --

def test_t2_concurrent_duplicate_gets_409_then_replay(treaty, backend,
                                                      tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.5,
                   body={"id": 2})
    t = treaty(idem_config(backend.url))
    th, a = run_in_thread(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-2"'))
    wait_until(lambda: count(backend) == 1, 5, "A reaches the backend")
    b = post(t, "/v1/orders", tokens["A1"], '"k-2"')
    assert b.status_code == 409
    assert problem_type(b) == "idempotency-key-conflict"
    assert int(b.headers["Retry-After"]) >= 1
    th.join(10)
    assert a["r"].status_code == 201
    c = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                   '"k-2"'))
    assert c.status_code == 201
    assert c.headers.get("Idempotent-Replayed") == "true"
    assert c.content == a["r"].content
    assert count(backend) == 1
    assert t.metrics()["treaty_idempotency_conflicts_total"] >= 1


def test_t2_wait_mode_blocks_then_replays(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.5,
                   body={"id": 22})
    t = treaty(idem_config(backend.url, idem={"wait_ms": 3000}))
    th, a = run_in_thread(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-2w"'))
    wait_until(lambda: count(backend) == 1, 5, "A reaches the backend")
    b = post(t, "/v1/orders", tokens["A1"], '"k-2w"')
    th.join(10)
    assert a["r"].status_code == 201
    assert b.status_code == 201, b.text
    assert b.headers.get("Idempotent-Replayed") == "true"
    assert b.content == a["r"].content
    assert count(backend) == 1


def test_wait_mode_gives_409_when_the_wait_runs_out(treaty, backend,
                                                    tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.5,
                   body={"id": 23})
    t = treaty(idem_config(backend.url, idem={"wait_ms": 200}))
    th, a = run_in_thread(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-2s"'))
    wait_until(lambda: count(backend) == 1, 5, "A reaches the backend")
    b = post(t, "/v1/orders", tokens["A1"], '"k-2s"')
    assert b.status_code == 409
    assert problem_type(b) == "idempotency-key-conflict"
    th.join(10)
    assert a["r"].status_code == 201
    assert count(backend) == 1


# ------------------------------------------------------------------ T3 --

def test_t3_key_reuse_with_a_different_request_is_422(treaty, backend,
                                                      tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 3})
    t = treaty(idem_config(backend.url))
    a1 = tokens["A1"]
    assert post(t, "/v1/orders", a1, '"k-3"',
                body=b'{"qty":1}').status_code == 201

    def expect_422(r):
        assert r.status_code == 422, r.text
        assert problem_type(r) == "idempotency-key-mismatch"
        assert "describedby" in r.headers.get("Link", "")

    expect_422(until_settled(lambda: post(t, "/v1/orders", a1, '"k-3"',
                                          body=b'{"qty":2}')))
    expect_422(post(t, "/v1/refunds", a1, '"k-3"', body=b'{"qty":1}'))
    expect_422(post(t, "/v1/orders?dry=1", a1, '"k-3"',
                    body=b'{"qty":1}'))
    expect_422(t.request("POST", "/v1/orders", data=b'{"qty":1}',
                         headers=hdrs(a1, '"k-3"',
                                      **{"Content-Type": "text/plain"})))
    assert count(backend) == 1
    assert count(backend, path="/v1/refunds") == 0


def test_t3_mismatch_while_in_flight_is_422_not_409(treaty, backend,
                                                    tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.5,
                   body={"id": 31})
    t = treaty(idem_config(backend.url))
    th, a = run_in_thread(lambda: post(t, "/v1/orders", tokens["A1"],
                                       '"k-3f"', body=b'{"qty":1}'))
    wait_until(lambda: count(backend) == 1, 5, "A reaches the backend")
    b = post(t, "/v1/orders", tokens["A1"], '"k-3f"', body=b'{"qty":2}')
    assert b.status_code == 422
    assert problem_type(b) == "idempotency-key-mismatch"
    th.join(10)
    assert a["r"].status_code == 201
    assert count(backend) == 1


def test_canonical_json_route_ignores_key_order_and_spacing(treaty, backend,
                                                            tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 32})
    t = treaty(idem_config(backend.url, idem={"canonical_json": True}))
    a1 = tokens["A1"]
    assert post(t, "/v1/orders", a1, "k-cj",
                body=b'{"sku":"x","qty":1}').status_code == 201
    r = until_settled(lambda: post(t, "/v1/orders", a1, "k-cj",
                                   body=b'{ "qty": 1, "sku": "x" }'))
    assert r.status_code == 201
    assert r.headers.get("Idempotent-Replayed") == "true"
    r = post(t, "/v1/orders", a1, "k-cj", body=b'{"qty":2,"sku":"x"}')
    assert r.status_code == 422
    assert count(backend) == 1


# ------------------------------------------------------------------ T4 --

def test_t4_agent_without_key_is_refused_with_a_link(treaty, backend,
                                                     tokens):
    t = treaty(idem_config(backend.url))
    r = post(t, "/v1/orders", tokens["A1"])
    assert r.status_code == 400
    assert problem_type(r) == "idempotency-key-required"
    link = r.headers["Link"]
    assert 'rel="describedby"' in link and "idempotency" in link
    assert "Idempotency-Key" in r.json()["detail"]
    assert count(backend) == 0


def test_t4_human_without_key_passes_and_is_not_deduplicated(treaty,
                                                             backend,
                                                             tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 4})
    t = treaty(idem_config(backend.url))
    for n in (1, 2):
        r = post(t, "/v1/orders", tokens["H1"])
        assert r.status_code == 201
        assert "Idempotent-Replayed" not in r.headers
        assert count(backend) == n


def test_t4_agent_without_key_on_unconfigured_route_passes(treaty, backend,
                                                           tokens):
    t = treaty(idem_config(backend.url))
    r = post(t, "/v1/notes", tokens["A1"])
    assert r.status_code == 200
    assert count(backend, path="/v1/notes") == 1


def test_t4_get_with_a_key_is_never_replayed(treaty, backend, tokens):
    t = treaty(idem_config(backend.url))
    for n in (1, 2, 3):
        r = t.request("GET", "/v1/orders",
                      headers=hdrs(tokens["A1"], '"k-4"'))
        assert r.status_code == 200
        assert "Idempotent-Replayed" not in r.headers
        assert count(backend, "GET") == n
    # Even a malformed key is ignored on GET.
    r = t.request("GET", "/v1/orders", headers=hdrs(tokens["A1"], '""'))
    assert r.status_code == 200
    assert count(backend, "GET") == 4


def test_required_mode_refuses_humans_without_a_key(treaty, backend,
                                                    tokens):
    t = treaty(idem_config(backend.url, mode="required"))
    r = post(t, "/v1/orders", tokens["H1"])
    assert r.status_code == 400
    assert problem_type(r) == "idempotency-key-required"
    assert count(backend) == 0


# ------------------------------------------------------------------ T5 --

def raw_post(t, path, key_lines, token, body=ORDER_BODY):
    head = [f"POST {path} HTTP/1.1", "Host: gw",
            f"Authorization: Bearer {token}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"Idempotency-Key: {k}" for k in key_lines]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    return parse_responses(raw_request(t.host, t.port, data))[0]


def test_t5_malformed_keys_are_400(treaty, backend, tokens):
    t = treaty(idem_config(backend.url))
    a1 = tokens["A1"]

    def expect_invalid(r):
        assert r.status == 400, r.body
        assert r.json()["type"].endswith("#idempotency-key-invalid")

    expect_invalid(raw_post(t, "/v1/orders", ['""'], a1))
    expect_invalid(raw_post(t, "/v1/orders", ['"' + "k" * 256 + '"'], a1))
    expect_invalid(raw_post(t, "/v1/orders", ["k" * 256], a1))
    expect_invalid(raw_post(t, "/v1/orders", ['"a;b"', '"c"'], a1))
    expect_invalid(raw_post(t, "/v1/orders", ['"k";a=1'], a1))
    expect_invalid(raw_post(t, "/v1/orders", ['"a", "b"'], a1))
    # A control character is refused (by the key check or the parser).
    r = raw_post(t, "/v1/orders", ['"a\x01b"'], a1)
    assert r.status == 400
    assert count(backend) == 0


def test_t5_256_byte_key_is_invalid_and_255_is_fine(treaty, backend,
                                                    tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 5})
    t = treaty(idem_config(backend.url))
    r = post(t, "/v1/orders", tokens["A1"], "k" * 256)
    assert r.status_code == 400
    assert problem_type(r) == "idempotency-key-invalid"
    assert count(backend) == 0
    r = post(t, "/v1/orders", tokens["A1"], "k" * 255)
    assert r.status_code == 201
    assert count(backend) == 1


def test_t5_quoted_and_bare_forms_are_the_same_key(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 55})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], '"abc-5"')
    assert first.status_code == 201
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "abc-5"))
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(backend) == 1


# ------------------------------------------------------------------ T6 --

def test_t6_scope_is_the_principal_not_the_token(treaty, backend, tokens):
    n = {"i": 0}

    def handler(rec):
        n["i"] += 1
        who = rec.headers.get("X-Principal", "?")
        return 201, {"Location": f"/v1/orders/{n['i']}"}, \
            {"id": n["i"], "for": who}
    backend.script("/v1/orders", method="POST", handler=handler)
    t = treaty(idem_config(backend.url))
    a1 = post(t, "/v1/orders", tokens["A1"], '"k-6"')
    assert a1.status_code == 201 and count(backend) == 1

    a2 = until_settled(lambda: post(t, "/v1/orders", tokens["A2"],
                                    '"k-6"'))
    assert a2.status_code == 201
    assert a2.headers.get("Idempotent-Replayed") == "false"
    assert count(backend) == 2
    assert a2.headers["Location"] != a1.headers["Location"]
    assert a2.content != a1.content

    refreshed = harness.py_mint("A1", act="bot-a1")
    assert refreshed != tokens["A1"]
    again = until_settled(lambda: post(t, "/v1/orders", refreshed,
                                       '"k-6"'))
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == a1.content
    assert again.headers["Location"] == a1.headers["Location"]
    assert count(backend) == 2


def test_t6_anonymous_caller_never_shares_a_principals_record(treaty,
                                                              backend,
                                                              tokens):
    backend.script("/v1/public", method="POST", status=201, body={"id": 7})
    t = treaty(idem_config(backend.url))
    # A guarded route that needs a token: 401, nothing executed.
    r = post(t, "/v1/orders", None, '"k-6a"')
    assert r.status_code == 401
    assert count(backend) == 0
    # A route open to anonymous callers scopes them by client address.
    first = post(t, "/v1/public", tokens["A1"], '"k-6a"')
    assert first.status_code == 201
    anon = until_settled(lambda: post(t, "/v1/public", None, '"k-6a"'))
    assert anon.status_code == 201
    assert anon.headers.get("Idempotent-Replayed") == "false"
    assert count(backend, path="/v1/public") == 2
    anon2 = until_settled(lambda: post(t, "/v1/public", None, '"k-6a"'))
    assert anon2.headers.get("Idempotent-Replayed") == "true"
    assert count(backend, path="/v1/public") == 2


# -------------------------------------------------- ambiguous failures --

def test_reset_after_commit_is_pinned_and_replayed(treaty, backend,
                                                   tokens):
    backend.script("/v1/orders", method="POST", action="reset", times=1)
    backend.script("/v1/orders", method="POST", status=201, body={"id": 8})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], "k-reset")
    assert first.status_code == 502
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-reset"))
    assert again.status_code == 502
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert problem_type(again) == "upstream-unavailable"
    assert count(backend) == 1
    assert t.metrics()["treaty_idempotency_pinned_total"] == 1


def test_reset_after_commit_is_released_when_the_route_says_so(treaty,
                                                               backend,
                                                               tokens):
    backend.script("/v1/orders", method="POST", action="reset", times=1)
    backend.script("/v1/orders", method="POST", status=201, body={"id": 8})
    t = treaty(idem_config(backend.url, idem={"ambiguous": "release"}))
    first = post(t, "/v1/orders", tokens["A1"], "k-rel")
    assert first.status_code == 502
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-rel"))
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "false"
    assert count(backend) == 2


def test_upstream_timeout_is_pinned_as_504(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.0,
                   body={"id": 81})
    t = treaty(idem_config(backend.url, response_timeout_ms=300))
    first = post(t, "/v1/orders", tokens["A1"], "k-slow")
    assert first.status_code == 504
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-slow"))
    assert again.status_code == 504
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(backend) == 1


def test_backend_503_is_released_and_retried(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=503, times=1,
                   body={"busy": True})
    backend.script("/v1/orders", method="POST", status=201, body={"id": 82})
    t = treaty(idem_config(backend.url))
    assert post(t, "/v1/orders", tokens["A1"], "k-503").status_code == 503
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-503"))
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "false"
    assert count(backend) == 2


def test_backend_422_is_stored_and_replayed(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=422,
                   body={"error": "no such sku"})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], "k-422")
    assert first.status_code == 422
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-422"))
    assert again.status_code == 422
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert count(backend) == 1


def test_connect_failure_releases_the_key(treaty, backend, tokens):
    dead = harness.free_port()
    t = treaty(idem_config(f"http://127.0.0.1:{dead}"))
    r = post(t, "/v1/orders", tokens["A1"], "k-conn")
    assert r.status_code == 502
    # Released: the retry goes upstream again (and fails the same way)
    # instead of replaying, and nothing is pinned.
    r = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                   "k-conn"))
    assert r.status_code == 502
    assert "Idempotent-Replayed" not in r.headers
    m = t.metrics()
    assert m["treaty_idempotency_releases_total"] == 2
    assert m["treaty_idempotency_pinned_total"] == 0


# ---------------------------------------------------- large and gzip --

def test_response_over_storage_cap_is_not_replayed(treaty, backend,
                                                   tokens):
    size = 200_000
    backend.script("/v1/orders", method="POST", status=201,
                   body_size=size, chunked=True, chunk_size=7000,
                   headers={"Content-Type": "application/octet-stream"})
    t = treaty(idem_config(backend.url, idem={"storage_cap": 65536}))
    first = post(t, "/v1/orders", tokens["A1"], "k-big")
    assert first.status_code == 201
    assert first.content == harness.pattern_bytes(size)
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-big"))
    assert again.status_code == 409
    assert problem_type(again) == "idempotency-response-not-stored"
    assert again.json()["original_status"] == 201
    assert count(backend) == 1


def test_response_at_storage_cap_is_replayed(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201,
                   body_size=65536,
                   headers={"Content-Type": "application/octet-stream"})
    t = treaty(idem_config(backend.url, idem={"storage_cap": 65536}))
    first = post(t, "/v1/orders", tokens["A1"], "k-fit")
    assert first.status_code == 201
    again = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-fit"))
    assert again.status_code == 201
    assert again.content == first.content
    assert count(backend) == 1


def test_gzip_body_is_replayed_byte_exact(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201, gzip=True,
                   body={"id": 10, "pad": "z" * 5000})
    t = treaty(idem_config(backend.url))

    def raw_post_body():
        r = post(t, "/v1/orders", tokens["A1"], "k-gz", stream=True)
        data = r.raw.read(decode_content=False)
        r.close()
        return r, data

    r1, d1 = raw_post_body()
    assert r1.status_code == 201
    assert r1.headers["Content-Encoding"] == "gzip"
    box = {}

    def settled():
        r, d = raw_post_body()
        box["r"], box["d"] = r, d
        return r.status_code != 409
    wait_until(settled, 3 * harness.SLOW, "the gzip outcome")
    r2, d2 = box["r"], box["d"]
    assert r2.status_code == 201
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.headers["Content-Encoding"] == "gzip"
    assert d2 == d1
    assert json.loads(gzip.decompress(d2))["id"] == 10
    assert count(backend) == 1


# ----------------------------------------- client leaves, crash, store --

def test_client_that_leaves_mid_request_finds_the_outcome(treaty, backend,
                                                          tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=0.8,
                   body={"id": 11})
    t = treaty(idem_config(backend.url))
    head = ("POST /v1/orders HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer {tokens['A1']}\r\n"
            "Content-Type: application/json\r\n"
            "Idempotency-Key: k-gone\r\n"
            f"Content-Length: {len(ORDER_BODY)}\r\n\r\n").encode()
    conn = RawConn(t.host, t.port)
    conn.send(head + ORDER_BODY)
    wait_until(lambda: count(backend) == 1, 5, "the request upstream")
    conn.close()  # the answer is lost on the way back
    wait_until(lambda: backend.in_flight == 0, 5, "the backend answer")
    r = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                   "k-gone"))
    assert r.status_code == 201
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert r.json() == {"id": 11}
    assert count(backend) == 1


def test_client_that_leaves_during_a_wait_is_not_forwarded(treaty, backend,
                                                           tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=1.0,
                   body={"id": 12})
    t = treaty(idem_config(backend.url, idem={"wait_ms": 3000}))
    th, a = run_in_thread(lambda: post(t, "/v1/orders", tokens["A1"],
                                       "k-wg"))
    wait_until(lambda: count(backend) == 1, 5, "A upstream")
    head = ("POST /v1/orders HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer {tokens['A1']}\r\n"
            "Content-Type: application/json\r\n"
            "Idempotency-Key: k-wg\r\n"
            f"Content-Length: {len(ORDER_BODY)}\r\n\r\n").encode()
    conn = RawConn(t.host, t.port)
    conn.send(head + ORDER_BODY)
    wait_until(lambda: t.metrics().get(
        "treaty_idempotency_waits_total", 0) >= 1, 5, "B waiting")
    conn.close()
    th.join(10)
    assert a["r"].status_code == 201
    r = until_settled(lambda: post(t, "/v1/orders", tokens["A1"], "k-wg"))
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert count(backend) == 1


def crash_config(backend_url, **idem):
    # Upstream timeout 2 s + 1 s grace: a 3 s lease, renewed every 1 s.
    return idem_config(backend_url, response_timeout_ms=2000, idem=idem)


def start_and_crash(t, backend, token, key):
    th, _ = run_in_thread(lambda: post(t, "/v1/orders", token, key,
                                       timeout=10))
    wait_until(lambda: count(backend) == 1, 5, "the request upstream")
    t.kill9()
    th.join(10)
    t.start()


@pytest.mark.timing
def test_kill9_in_flight_gives_409_then_outcome_unknown(treaty, backend,
                                                        tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=6,
                   body={"id": 13})
    t = treaty(crash_config(backend.url))
    start_and_crash(t, backend, tokens["A1"], "k-crash")

    r = post(t, "/v1/orders", tokens["A1"], "k-crash")
    assert r.status_code == 409, r.text
    assert problem_type(r) == "idempotency-key-conflict"
    assert int(r.headers["Retry-After"]) >= 1

    def unknown():
        r = post(t, "/v1/orders", tokens["A1"], "k-crash")
        assert r.status_code == 409
        return problem_type(r) == "idempotency-outcome-unknown"
    wait_until(unknown, 6, "outcome unknown after the lease")
    r = post(t, "/v1/orders", tokens["A1"], "k-crash")
    assert problem_type(r) == "idempotency-outcome-unknown"
    assert "Retry-After" not in r.headers
    assert count(backend) == 1


@pytest.mark.timing
def test_kill9_with_reexecute_runs_again_after_the_lease(treaty, backend,
                                                         tokens):
    backend.script("/v1/orders", method="POST", status=201, delay=6,
                   times=1, body={"id": 14})
    backend.script("/v1/orders", method="POST", status=201, body={"id": 15})
    t = treaty(crash_config(backend.url, after_crash="reexecute"))
    start_and_crash(t, backend, tokens["A1"], "k-rx")
    r = post(t, "/v1/orders", tokens["A1"], "k-rx")
    assert r.status_code == 409
    assert problem_type(r) == "idempotency-key-conflict"

    def reran():
        r = post(t, "/v1/orders", tokens["A1"], "k-rx")
        return r.status_code == 201
    wait_until(reran, 6, "re-execution after the lease")
    assert count(backend) == 2


def test_outcome_survives_a_restart(treaty, backend, tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 16})
    t = treaty(idem_config(backend.url))
    first = post(t, "/v1/orders", tokens["A1"], "k-restart")
    assert first.status_code == 201
    until_settled(lambda: post(t, "/v1/orders", tokens["A1"], "k-restart"))
    t.restart(kill=True)
    r = post(t, "/v1/orders", tokens["A1"], "k-restart")
    assert r.status_code == 201
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert r.content == first.content
    assert count(backend) == 1


def _chattr(flag, paths):
    try:
        for p in paths:
            if os.path.exists(p):
                subprocess.run(["chattr", flag, str(p)], check=True,
                               capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


def test_store_unavailable_refuses_required_routes_with_503(treaty, backend,
                                                            tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 17})
    backend.script("/v1/public", method="POST", status=201, body={"id": 18})
    cfg = idem_config(backend.url)
    cfg["routes"][3]["idempotency"] = {"mode": "optional"}
    t = treaty(cfg)
    t.wait_ready()
    assert post(t, "/v1/orders", tokens["A1"], "k-up").status_code == 201
    db = t.state_dir / "idempotency.db"
    files = [db, db.with_name(db.name + "-wal")]
    if not _chattr("+i", files):
        pytest.skip("chattr +i not possible here (needs root on ext4)")
    try:
        r = post(t, "/v1/orders", tokens["A1"], "k-down")
        assert r.status_code == 503, r.text
        assert problem_type(r) == "idempotency-store-unavailable"
        assert int(r.headers["Retry-After"]) >= 1
        r = post(t, "/v1/orders", tokens["A1"], "k-down2")
        assert r.status_code == 503
        assert t.admin("/readyz").status_code == 503
        # Optional routes fail open: forwarded without deduplication.
        r = post(t, "/v1/public", tokens["A1"], "k-open")
        assert r.status_code == 201
        assert count(backend, path="/v1/public") == 1
        assert count(backend) == 1
    finally:
        _chattr("-i", files)
    wait_until(lambda: post(t, "/v1/orders", tokens["A1"],
                            "k-back").status_code == 201, 10,
               "the store back")
    t.wait_ready()
    assert count(backend) == 2


def test_store_that_cannot_open_gives_503_until_it_can(treaty, backend,
                                                       tokens, tmp_path):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 19})
    state = tmp_path / "state-blocked"
    state.mkdir(mode=0o700)
    blocker = state / "idempotency.db"
    blocker.mkdir()  # the store file cannot be opened, whoever we are
    cfg = idem_config(backend.url)
    cfg["state_dir"] = str(state)
    cfg["routes"].append({
        "name": "fail-open",
        "match": {"methods": ["POST"], "path": "/v1/lenient"},
        "upstream": "backend",
        "idempotency": {"mode": "required_for_agents", "fail_open": True}})
    t = treaty(cfg)
    r = post(t, "/v1/orders", tokens["A1"], "k-closed")
    assert r.status_code == 503
    assert problem_type(r) == "idempotency-store-unavailable"
    assert count(backend) == 0
    assert t.admin("/readyz").status_code == 503
    r = post(t, "/v1/lenient", tokens["A1"], "k-lenient")
    assert r.status_code == 200
    assert "Idempotent-Replayed" not in r.headers
    assert count(backend, path="/v1/lenient") == 1

    shutil.rmtree(blocker)
    t.wait_ready()
    assert post(t, "/v1/orders", tokens["A1"], "k-open2").status_code == 201
    assert count(backend) == 1


# ------------------------------------------------------ body buffering --

def test_keyed_body_over_the_route_cap_is_413(treaty, backend, tokens):
    cfg = idem_config(backend.url)
    cfg["routes"][0]["body_cap"] = 1024
    t = treaty(cfg)
    # A raw socket: treaty answers 413 and closes while the body is still
    # coming, which a high-level client may see as a broken pipe.
    head = "".join(f"{k}: {v}\r\n" for k, v in
                   hdrs(tokens["A1"], "k-413").items())
    with harness.RawConn(t.host, t.port) as c:
        c.send(("POST /v1/orders HTTP/1.1\r\nHost: x\r\n" + head +
                "Transfer-Encoding: chunked\r\n\r\n").encode() +
               b"1000\r\n" + b"x" * 4096 + b"\r\n0\r\n\r\n")
        data = c.recv_until_closed()
    r = harness.parse_responses(data)[0]
    assert r.status == 413
    assert count(backend) == 0


def test_chunked_keyed_body_is_buffered_and_forwarded_whole(treaty, backend,
                                                            tokens):
    backend.script("/v1/orders", method="POST", status=201, body={"id": 20})
    t = treaty(idem_config(backend.url))

    def chunks():
        yield b'{"sku":'
        yield b'"x","qty":1}'
    r = t.request("POST", "/v1/orders", data=chunks(),
                  headers=hdrs(tokens["A1"], "k-chunk"))
    assert r.status_code == 201
    rec = backend.last()
    assert rec.body == ORDER_BODY
    assert rec.headers["Content-Length"] == str(len(ORDER_BODY))
    # The same body sent with Content-Length is the same request.
    r = until_settled(lambda: post(t, "/v1/orders", tokens["A1"],
                                   "k-chunk"))
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert count(backend) == 1


def test_client_key_is_replaced_by_the_derived_key_or_dropped(
        treaty, backend, tokens):
    t = treaty(idem_config(backend.url))
    post(t, "/v1/orders", tokens["A1"], '"k-pass"')
    assert "Idempotency-Key" not in backend.last().headers
    # Where treaty does not handle keys the field passes untouched.
    post(t, "/v1/notes", tokens["A1"], '"k-pass"')
    assert backend.last().headers.get("Idempotency-Key") == '"k-pass"'

    t2 = treaty(idem_config(backend.url,
                            idem={"forward_derived_key": True}))
    post(t2, "/v1/orders", tokens["A1"], '"k-pass"')
    sent = backend.last().headers.get_all("Idempotency-Key")
    assert len(sent) == 1
    value = sent[0]
    assert value.startswith('"') and value.endswith('"')
    assert len(value) == 66 and "k-pass" not in value
    # Another key, or another principal with the same key, derives
    # another value.
    post(t2, "/v1/orders", tokens["A1"], '"k-pass2"')
    assert backend.last().headers["Idempotency-Key"] != value
    post(t2, "/v1/orders", tokens["A2"], '"k-pass"')
    assert backend.last().headers["Idempotency-Key"] != value
    assert count(backend) == 4
