"""The gateway core carrying real traffic: framing, keep-alive, pipelining,
hop-by-hop handling, forwarding metadata, errors and timeouts (issue 2)."""

import socket
import threading
import time

import pytest
import requests

import harness
from harness import proxy_config, raw_request, parse_responses, RawConn


PROBLEM = "application/problem+json"


def test_get_is_forwarded_and_answered(treaty, backend):
    backend.script("/hello", body={"hi": 1})
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/hello?x=1")
    assert r.status_code == 200
    assert r.json() == {"hi": 1}
    rec = backend.last()
    assert rec.method == "GET"
    assert rec.target == "/hello?x=1"


def test_post_body_reaches_backend_byte_exact(treaty, backend):
    t = treaty(proxy_config(backend.url))
    body = bytes(range(256)) * 100
    r = t.request("POST", "/upload", data=body,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    assert backend.last().body == body
    assert backend.last().headers["Content-Length"] == str(len(body))


def test_chunked_request_is_reframed_without_extensions(treaty, backend):
    t = treaty(proxy_config(backend.url))
    raw = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n"
           b"\r\n")
    resps = parse_responses(raw_request(t.host, t.port, raw))
    assert resps[0].status == 200
    rec = backend.last()
    assert rec.body == b"hello world"


def test_large_response_streams_intact(treaty, backend):
    backend.script("/big", body_size=5 * 1024 * 1024)
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/big")
    assert r.status_code == 200
    assert r.content == harness.pattern_bytes(5 * 1024 * 1024)


def test_chunked_response_is_reframed_for_http11_client(treaty, backend):
    backend.script("/ch", body=b"x" * 100000, chunked=True, chunk_size=777)
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/ch")
    assert r.status_code == 200
    assert r.content == b"x" * 100000
    assert r.headers.get("Transfer-Encoding") == "chunked"


def test_http10_client_gets_close_delimited_body(treaty, backend):
    backend.script("/ch", body=b"y" * 5000, chunked=True)
    t = treaty(proxy_config(backend.url))
    data = raw_request(t.host, t.port,
                       b"GET /ch HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert b"chunked" not in head.lower()
    assert body == b"y" * 5000


def test_keep_alive_reuses_client_and_upstream_connections(treaty, backend):
    t = treaty(proxy_config(backend.url))
    with requests.Session() as s:
        for i in range(20):
            assert s.get(t.url + f"/k{i}").status_code == 200
    conns = {r.conn_id for r in backend.requests}
    assert len(conns) <= 2


def test_pipelined_requests_answered_in_order(treaty, backend):
    backend.script("/slow", delay=0.2, body={"n": "slow"})
    backend.script("/fast", body={"n": "fast"})
    t = treaty(proxy_config(backend.url))
    with RawConn(t.host, t.port) as c:
        c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        resps = c.recv_responses(3)
    assert [r.json()["n"] for r in resps] == ["slow", "fast", "fast"]


def test_hop_by_hop_and_connection_named_fields_not_forwarded(treaty,
                                                              backend):
    t = treaty(proxy_config(backend.url))
    raw = (b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret"
           b"\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
           b"Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n")
    raw_request(t.host, t.port, raw)
    h = backend.last().headers
    for name in ("X-Secret", "Keep-Alive", "TE", "Proxy-Connection"):
        assert name not in h, name
    assert h["X-Kept"] == "yes"
    assert "x-secret" not in h.get("Connection", "").lower()


def test_response_hop_by_hop_fields_removed(treaty, backend):
    backend.script("/r", headers={"Connection": "X-Internal",
                                  "X-Internal": "1", "X-Public": "2",
                                  "Keep-Alive": "timeout=9"})
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/r")
    assert "X-Internal" not in r.headers
    assert "Keep-Alive" not in r.headers
    assert r.headers["X-Public"] == "2"


def test_forwarding_metadata_set_and_client_copies_replaced(treaty, backend):
    t = treaty(proxy_config(backend.url))
    t.request("GET", "/m", headers={"X-Forwarded-For": "6.6.6.6",
                                    "Forwarded": "for=6.6.6.6",
                                    "X-Forwarded-Proto": "https"})
    h = backend.last().headers
    assert h["X-Forwarded-For"] == "127.0.0.1"
    assert h["X-Forwarded-Proto"] == "http"
    assert "Forwarded" not in h
    assert "treaty" in h["Via"]
    assert h["traceparent"].startswith("00-")


def test_trusted_proxy_x_forwarded_for_is_extended(treaty, backend):
    cfg = proxy_config(backend.url, trusted_proxies=["127.0.0.0/8"])
    t = treaty(cfg)
    t.request("GET", "/m", headers={"X-Forwarded-For": "203.0.113.9"})
    assert backend.last().headers["X-Forwarded-For"] == \
        "203.0.113.9, 127.0.0.1"
    line = t.access_log_lines(wait_for=1)[-1]
    assert line["client"] == "203.0.113.9"


def test_traceparent_passes_through(treaty, backend):
    t = treaty(proxy_config(backend.url))
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    t.request("GET", "/t", headers={"traceparent": tp})
    assert backend.last().headers["traceparent"] == tp


def test_unknown_path_is_404_problem(treaty, backend):
    t = treaty(proxy_config(backend.url, path="/api/{rest...}"))
    r = t.request("GET", "/other")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith("#no-route")
    assert body["status"] == 404 and body["detail"]
    assert backend.count() == 0


def test_wrong_method_is_405_with_allow(treaty, backend):
    t = treaty(proxy_config(backend.url, methods=["GET", "POST"]))
    r = t.request("DELETE", "/x")
    assert r.status_code == 405
    # GET implies HEAD (RFC 9110 §9.3.2).
    assert r.headers["Allow"] == "GET, HEAD, POST"
    assert r.headers["Content-Type"] == PROBLEM


@pytest.mark.parametrize("target", [
    b"/a/%2Fetc", b"/a/../b", b"/a/%2e%2e/b", b"/a/.%2E/b", b"/a%5Cb",
    b"/a%00b", b"http://evil.example/x",
])
def test_dangerous_targets_refused_with_400(treaty, backend, target):
    t = treaty(proxy_config(backend.url))
    data = raw_request(t.host, t.port,
                       b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\n\r\n")
    r = parse_responses(data)[0]
    assert r.status == 400
    assert r.json()["type"].endswith("#invalid-target")
    assert backend.count() == 0


def test_websocket_upgrade_refused_with_problem(treaty, backend):
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/ws", headers={"Connection": "Upgrade",
                                         "Upgrade": "websocket"})
    assert r.status_code == 501
    assert r.json()["type"].endswith("#upgrade-not-supported")
    assert backend.count() == 0


def test_webdav_methods_pass_through(treaty, backend):
    cfg = proxy_config(backend.url, methods=["PROPFIND", "MKCOL", "REPORT"])
    t = treaty(cfg)
    r = t.request("PROPFIND", "/cal/", headers={"Depth": "1"})
    assert r.status_code == 200
    assert backend.last().method == "PROPFIND"


def test_header_block_over_limit_is_431(treaty, backend):
    cfg = proxy_config(backend.url, limits={"header_bytes": 2048})
    t = treaty(cfg)
    r = t.request("GET", "/x", headers={"X-Big": "a" * 4000})
    assert r.status_code == 431
    assert r.json()["type"].endswith("#headers-too-large")


def test_too_many_header_fields_is_431(treaty, backend):
    cfg = proxy_config(backend.url, limits={"header_count": 10})
    t = treaty(cfg)
    hdrs = {f"X-H{i}": "v" for i in range(20)}
    r = t.request("GET", "/x", headers=hdrs)
    assert r.status_code == 431


def test_body_over_limit_is_413_before_reading(treaty, backend):
    cfg = proxy_config(backend.url, limits={"body_max": 1000})
    t = treaty(cfg)
    r = t.request("POST", "/x", data=b"z" * 5000)
    assert r.status_code == 413
    assert backend.count() == 0


def test_chunked_body_over_limit_is_413(treaty, backend):
    cfg = proxy_config(backend.url, limits={"body_max": 1000})
    t = treaty(cfg)
    chunk = b"1f4\r\n" + b"q" * 500 + b"\r\n"
    with RawConn(t.host, t.port) as c:
        c.send(b"POST /x HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3)
        data = c.recv_until_closed()
    resps = parse_responses(data)
    # Streaming had begun when the cap was crossed: the client gets 413
    # if nothing went out yet, and the upstream never sees a whole body.
    assert resps and resps[0].status == 413
    assert all(len(r.body) < 1500 for r in backend.requests)


def test_expect_100_continue_is_honoured(treaty, backend):
    t = treaty(proxy_config(backend.url))
    with RawConn(t.host, t.port) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        first = c.recv_responses(1, interim=True)[0]
        assert first.status == 100
        c.send(b"hello")
        final = c.recv_responses(1)[0]
    assert final.status == 200
    assert backend.last().body == b"hello"
    assert "Expect" not in backend.last().headers


def test_unsupported_expectation_is_417(treaty, backend):
    t = treaty(proxy_config(backend.url))
    r = t.request("POST", "/e", data=b"x", headers={"Expect": "magic"})
    assert r.status_code == 417


def test_upstream_down_is_502_problem(treaty):
    t = treaty(proxy_config(f"http://127.0.0.1:{harness.free_port()}"))
    r = t.request("GET", "/x")
    assert r.status_code == 502
    assert r.headers["Content-Type"] == PROBLEM
    assert r.json()["type"].endswith("#upstream-unavailable")


def test_upstream_slow_is_504(treaty, backend):
    backend.script("/slow", delay=2.0)
    cfg = proxy_config(backend.url)
    cfg["upstreams"]["backend"]["response_timeout_ms"] = 300
    t = treaty(cfg)
    r = t.request("GET", "/slow")
    assert r.status_code == 504
    assert r.json()["type"].endswith("#upstream-timeout")


def test_upstream_reset_before_answer_is_502(treaty, backend):
    backend.script("/reset", action="reset")
    t = treaty(proxy_config(backend.url))
    r = t.request("GET", "/reset")
    assert r.status_code == 502


def test_slow_header_block_gets_408(treaty, backend):
    cfg = proxy_config(backend.url,
                       limits={"client_header_timeout_ms": 300})
    t = treaty(cfg)
    with RawConn(t.host, t.port) as c:
        c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        r = c.recv_responses(1)[0]
    assert r.status == 408


def test_backend_idle_close_never_breaks_next_request(treaty,
                                                      backend_factory):
    # The backend closes idle sockets after 0.5 s; treaty's pool must not
    # send on a socket the backend closed.
    b = backend_factory(idle_timeout=0.5)
    cfg = proxy_config(b.url)
    cfg["upstreams"]["backend"]["idle_timeout_ms"] = 5000
    t = treaty(cfg)
    for _ in range(3):
        assert t.request("POST", "/p", data=b"x").status_code == 200
        time.sleep(0.8)
    assert b.count("POST") == 3


def test_sigterm_drains_in_flight_request_and_exits_zero(treaty, backend):
    backend.script("/slow", delay=1.0, body={"done": True})
    t = treaty(proxy_config(backend.url))
    result = {}

    def call():
        result["r"] = requests.get(t.url + "/slow", timeout=10)
    th = threading.Thread(target=call)
    th.start()
    backend.wait_for_requests(1)
    t.signal(15)
    th.join(10)
    assert result["r"].status_code == 200
    assert result["r"].json() == {"done": True}
    t.proc.wait(10)
    assert t.proc.returncode == 0


def test_access_log_line_has_every_field(treaty, backend):
    t = treaty(proxy_config(backend.url))
    t.request("GET", "/log?q=1")
    line = t.access_log_lines(wait_for=1)[-1]
    for key in ("time", "request_id", "client", "principal", "actor",
                "class", "route", "tool", "method", "path", "status",
                "duration_ms", "bytes", "decision", "reason"):
        assert key in line, key
    assert line["route"] == "all"
    assert line["method"] == "GET" and line["path"] == "/log"
    assert line["status"] == 200


def test_admin_endpoints(treaty, backend):
    t = treaty(proxy_config(backend.url))
    t.request("GET", "/x")
    assert t.admin("/healthz").status_code == 200
    assert t.admin("/readyz").json()["ready"] is True
    m = t.metrics()
    assert m['treaty_requests_total{route="all",status="200"}'] >= 1
    assert "treaty_upstream_latency_seconds_count" in m


def test_connection_cap_per_client_address(treaty, backend):
    cfg = proxy_config(backend.url,
                       limits={"max_connections_per_client": 3})
    t = treaty(cfg)
    socks = [socket.create_connection((t.host, t.port)) for _ in range(3)]
    try:
        extra = socket.create_connection((t.host, t.port))
        extra.settimeout(3)
        data = extra.recv(4096)
        assert b" 503 " in data.split(b"\r\n")[0]
        extra.close()
    finally:
        for s in socks:
            s.close()
    # Freed slots are usable again.
    harness.wait_until(lambda: t.request("GET", "/x").status_code == 200,
                       timeout=5)


def test_options_asterisk_answered_by_gateway(treaty, backend):
    t = treaty(proxy_config(backend.url))
    data = raw_request(t.host, t.port,
                       b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    r = parse_responses(data)[0]
    assert r.status == 204
    assert "GET" in r.headers["allow"]
    assert backend.count() == 0


def test_header_timeout_is_a_deadline_not_reset_by_each_byte(treaty,
                                                             backend):
    cfg = proxy_config(backend.url,
                       limits={"client_header_timeout_ms": 600})
    t = treaty(cfg)
    with RawConn(t.host, t.port) as c:
        c.send(b"GET /x HTTP/1.1\r\n")
        t0 = time.monotonic()
        got = b""
        c.sock.settimeout(0.15)
        # Trickle a byte every 150 ms: an inactivity timer would never
        # fire; the deadline does.
        for _ in range(30):
            try:
                c.send(b"X")
            except OSError:
                break
            try:
                got += c.sock.recv(4096)
                if got:
                    break
            except socket.timeout:
                pass
        elapsed = time.monotonic() - t0
    assert b" 408 " in got.split(b"\r\n")[0]
    if not harness.SANITIZER:
        assert elapsed < 0.6 + 0.4


def test_response_head_split_across_reads_is_relayed_intact(treaty):
    # A backend that writes its header block line by line, pausing, as
    # Radicale does: every field must survive, and the framing with them.
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        for piece in (b"HTTP/1.1 200 OK\r\nX-First-Fi", b"eld: aaaa\r\n",
                      b"Content-Type: text/plain\r\nX-Spl",
                      b"it: bb", b"bb\r\nContent-Length: 2\r\n\r\n", b"ok"):
            conn.sendall(piece)
            time.sleep(0.05)
        time.sleep(0.2)
        conn.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = treaty(proxy_config(f"http://127.0.0.1:{port}"))
    r = t.request("GET", "/split")
    th.join(5)
    srv.close()
    assert r.status_code == 200
    assert r.headers["X-First-Field"] == "aaaa"
    assert r.headers["X-Split"] == "bbbb"
    assert r.text == "ok"
