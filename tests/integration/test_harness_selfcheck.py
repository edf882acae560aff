"""The harness itself, checked without treaty: the scripted backend,
json-server, port helpers, token crafting, raw sockets, and the Treaty
lifecycle driven through a stand-in process."""

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import harness
from harness import (JsonServer, RawConn, ScriptedBackend, Treaty,
                     free_port, jwt_sign, parse_responses, py_mint,
                     raw_request, wait_for_port)


# ------------------------------------------------------------- ports --

def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_wait_for_port_returns_once_something_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        wait_for_port("127.0.0.1", s.getsockname()[1], timeout=2)


def test_wait_for_port_times_out_on_a_closed_port():
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)


def test_wait_for_port_gives_up_when_the_process_exits():
    proc = subprocess.Popen(["true"])
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="exited"):
        wait_for_port("127.0.0.1", free_port(), timeout=30, proc=proc)
    assert time.monotonic() - t0 < 10


# -------------------------------------------------- scripted backend --

def test_backend_echoes_and_records_each_request(backend):
    r = requests.post(backend.url + "/things?x=1", data=b"hello",
                      headers={"X-Test": "a"}, timeout=5)
    assert r.status_code == 200
    echo = r.json()
    assert echo["method"] == "POST" and echo["path"] == "/things"
    assert echo["query"] == "x=1" and echo["body"] == "hello"
    rec = backend.last()
    assert rec.method == "POST" and rec.target == "/things?x=1"
    assert rec.headers["x-test"] == "a" and rec.body == b"hello"
    assert backend.count("POST", "/things") == 1
    assert backend.count("GET", "/things") == 0
    assert backend.counts() == {("POST", "/things"): 1}


def test_backend_keeps_connections_alive(backend):
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(backend.url + "/a", timeout=5).status_code == 200
    assert backend.connections == 1
    assert {r.conn_id for r in backend.requests} == {1}


def test_backend_records_webdav_and_unknown_methods(backend):
    for m in ("PROPFIND", "MKCALENDAR", "BREW"):
        assert requests.request(m, backend.url + "/cal/",
                                timeout=5).status_code == 200
    assert [r.method for r in backend.requests] == \
        ["PROPFIND", "MKCALENDAR", "BREW"]


def test_backend_script_sets_status_headers_body(backend):
    backend.script("/x", status=201, headers={"ETag": '"v1"'},
                   body={"id": 7})
    r = requests.get(backend.url + "/x", timeout=5)
    assert r.status_code == 201 and r.headers["ETag"] == '"v1"'
    assert r.json() == {"id": 7}
    assert r.headers["Content-Type"] == "application/json"


def test_backend_rule_with_times_falls_through_in_order(backend):
    backend.script("/flaky", method="POST", status=502, times=2)
    backend.script("/flaky", status=201, body="ok")
    codes = [requests.post(backend.url + "/flaky", timeout=5).status_code
             for _ in range(3)]
    assert codes == [502, 502, 201]
    assert requests.get(backend.url + "/flaky", timeout=5).text == "ok"


def test_backend_prefix_and_method_matching(backend):
    backend.script("/api/*", method="DELETE", status=204)
    assert requests.delete(backend.url + "/api/1", timeout=5)\
        .status_code == 204
    assert requests.delete(backend.url + "/other", timeout=5)\
        .status_code == 200
    assert requests.get(backend.url + "/api/1", timeout=5).status_code == 200


def test_backend_tracks_peak_concurrency(backend):
    barrier = threading.Barrier(5, timeout=10)

    def wait_for_all(rec):
        barrier.wait()
        return 200, {}, b"done"

    backend.script("/slow", handler=wait_for_all)
    with ThreadPoolExecutor(5) as pool:
        res = list(pool.map(
            lambda _: requests.get(backend.url + "/slow", timeout=15),
            range(5)))
    assert [r.text for r in res] == ["done"] * 5
    assert backend.peak == 5
    assert backend.in_flight == 0


def test_backend_chunked_response_is_framed_as_chunks(backend):
    backend.script("/c", body=b"x" * 10000, chunked=True, chunk_size=4096)
    raw = raw_request(backend.host, backend.port,
                      b"GET /c HTTP/1.1\r\nHost: b\r\n"
                      b"Connection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in raw
    assert b"\r\n1000\r\n" in raw
    (resp,) = parse_responses(raw)
    assert resp.body == b"x" * 10000


def test_backend_streams_chunks_with_pauses(backend):
    backend.script("/sse", body=b"a" * 30, chunked=True, chunk_size=10,
                   chunk_delay=0.05,
                   headers={"Content-Type": "text/event-stream"})
    with requests.get(backend.url + "/sse", stream=True, timeout=5) as r:
        parts = list(r.iter_content(chunk_size=None))
    assert b"".join(parts) == b"a" * 30


def test_backend_gzip_body(backend):
    payload = b'{"k": "' + b"v" * 5000 + b'"}'
    backend.script("/gz", body=payload, gzip=True)
    r = requests.get(backend.url + "/gz", timeout=5)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.content == payload
    raw = parse_responses(raw_request(
        backend.host, backend.port,
        b"GET /gz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"))[0]
    assert gzip.decompress(raw.body) == payload


def test_backend_large_body_arrives_intact(backend):
    n = 5 * 1024 * 1024
    backend.script("/big", body_size=n)
    r = requests.get(backend.url + "/big", timeout=20)
    assert len(r.content) == n
    assert r.content == harness.pattern_bytes(n)


def test_backend_reads_chunked_request_bodies(backend):
    def gen():
        yield b"abc"
        yield b"defg"
    requests.post(backend.url + "/up", data=gen(), timeout=5)
    rec = backend.last()
    assert rec.headers["transfer-encoding"] == "chunked"
    assert rec.body == b"abcdefg"


def test_backend_close_after_request_sends_no_answer(backend):
    backend.script("/gone", action="close")
    raw = raw_request(backend.host, backend.port,
                      b"POST /gone HTTP/1.1\r\nHost: b\r\n"
                      b"Content-Length: 2\r\n\r\nhi")
    assert raw == b""
    assert backend.count("POST", "/gone") == 1
    assert backend.last().body == b"hi"


def test_backend_reset_after_request(backend):
    backend.script("/rst", action="reset")
    with socket.create_connection((backend.host, backend.port)) as s:
        s.sendall(b"GET /rst HTTP/1.1\r\nHost: b\r\n\r\n")
        s.settimeout(5)
        with pytest.raises(ConnectionResetError):
            while s.recv(100):
                pass


def test_backend_reset_after_part_of_the_response(backend):
    backend.script("/half", body_size=100000, reset_after=200)
    got = b""
    with socket.create_connection((backend.host, backend.port)) as s:
        s.sendall(b"GET /half HTTP/1.1\r\nHost: b\r\n\r\n")
        s.settimeout(5)
        with pytest.raises(ConnectionResetError):
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
    assert len(got) <= 200
    assert got.startswith(b"HTTP/1.1 200")


def test_backend_close_after_part_of_the_response(backend):
    backend.script("/cut", body_size=100000, close_after=300)
    raw = raw_request(backend.host, backend.port,
                      b"GET /cut HTTP/1.1\r\nHost: b\r\n\r\n")
    assert len(raw) == 300
    with pytest.raises(ValueError):
        parse_responses(raw)


def test_backend_raw_response_bytes(backend):
    backend.script("/raw", raw=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\nhello",
                   keep_alive=False)
    raw = raw_request(backend.host, backend.port,
                      b"GET /raw HTTP/1.1\r\nHost: b\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked")


def test_backend_sends_100_continue_then_reads_the_body(backend):
    with RawConn(backend.host, backend.port) as c:
        c.send(b"PUT /e HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\n"
               b"Expect: 100-continue\r\n\r\n")
        (interim,) = c.recv_responses(1, interim=True)
        assert interim.status == 100
        assert backend.count() == 0  # the body has not been sent yet
        c.send(b"data")
        (final,) = c.recv_responses(1)
    assert final.status == 200
    assert backend.last().body == b"data" and backend.last().expect_100


def test_backend_no_continue_answers_without_the_body(backend):
    backend.script("/e", status=413, body="too big", no_continue=True)
    with RawConn(backend.host, backend.port) as c:
        c.send(b"PUT /e HTTP/1.1\r\nHost: b\r\nContent-Length: 99999\r\n"
               b"Expect: 100-continue\r\n\r\n")
        (resp,) = c.recv_responses(1)
        assert resp.status == 413 and resp.body == b"too big"
        assert c.closed_by_peer(5)


def test_backend_answers_pipelined_requests_in_order(backend):
    backend.script("/one", body="1")
    backend.script("/two", body="2")
    raw = raw_request(backend.host, backend.port,
                      b"GET /one HTTP/1.1\r\nHost: b\r\n\r\n"
                      b"HEAD /two HTTP/1.1\r\nHost: b\r\n\r\n"
                      b"GET /two HTTP/1.1\r\nHost: b\r\n"
                      b"Connection: close\r\n\r\n")
    resps = parse_responses(raw, head_only=(1,))
    assert [r.body for r in resps] == [b"1", b"", b"2"]
    assert resps[1].headers["content-length"] == "1"


def test_backend_idle_timeout_closes_idle_connections(backend_factory):
    b = backend_factory(idle_timeout=0.2)
    with RawConn(b.host, b.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
        c.recv_responses(1)
        assert c.closed_by_peer(5)


def test_backend_wait_for_requests_and_reset_stats(backend):
    threading.Timer(0.05, lambda: requests.get(backend.url + "/late",
                                               timeout=5)).start()
    (rec,) = backend.wait_for_requests(1, timeout=5)
    assert rec.path == "/late"
    with pytest.raises(TimeoutError):
        backend.wait_for_requests(2, timeout=0.2)
    backend.wait_idle()
    backend.reset_stats()
    assert backend.count() == 0 and backend.peak == 0


# ------------------------------------------------------- json-server --

def test_json_server_serves_a_fresh_copy_of_the_db(json_server):
    js = json_server("calendar.json")
    r = requests.get(js.url + "/events", timeout=5)
    assert r.status_code == 200
    original = json.loads((harness.DATA_DIR / "calendar.json").read_text())
    assert r.json() == original["events"]
    r = requests.post(js.url + "/events", json={"title": "new"}, timeout=5)
    assert r.status_code == 201
    new_id = r.json()["id"]
    # json-server writes the file after answering: poll.
    harness.wait_until(
        lambda: any(e["id"] == new_id for e in js.db()["events"]), 5,
        "json-server saving the new event")
    # The source file is untouched.
    assert json.loads((harness.DATA_DIR / "calendar.json").read_text()) \
        == original
    js.stop()
    assert not harness.port_open(js.host, js.port)


def test_json_server_is_0_17_4():
    pkg = harness.REPO / "node_modules" / "json-server" / "package.json"
    assert json.loads(pkg.read_text())["version"] == "0.17.4"


# ------------------------------------------------------------- tokens --

def _verify(token, key, alg):
    return jwt.decode(token, key, algorithms=[alg], audience=harness.DEV_AUD,
                      issuer=harness.DEV_ISS)


def test_py_mint_es256_verifies_with_pyjwt():
    key = ec.generate_private_key(ec.SECP256R1())
    tok = py_mint("alice", act=["planner", "worker-3"], scope="cal:read",
                  client="agent-app", key=key)
    head = jwt.get_unverified_header(tok)
    assert head == {"alg": "ES256", "typ": "at+jwt",
                    "kid": harness.DEV_KID}
    claims = _verify(tok, key.public_key(), "ES256")
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "planner",
                             "act": {"sub": "worker-3"}}
    assert claims["scope"] == "cal:read"
    assert claims["client_id"] == "agent-app"
    assert claims["exp"] - claims["iat"] == 300
    assert len(harness.b64url_decode(tok.split(".")[2])) == 64


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA", "ES384"])
def test_jwt_sign_other_algorithms_verify(alg):
    if alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = rsa.generate_private_key(65537, 2048)
    tok = jwt_sign(harness.dev_claims("bob"), key=key, alg=alg)
    assert _verify(tok, key.public_key(), alg)["sub"] == "bob"


def test_jwt_sign_hs256_and_none_and_verbatim_json():
    secret = b"s" * 32
    tok = jwt_sign(harness.dev_claims("bob"), key=secret, alg="HS256")
    assert _verify(tok, secret, "HS256")["sub"] == "bob"
    none = jwt_sign({"sub": "x"}, alg="none", kid=None)
    assert none.endswith(".")
    assert jwt.get_unverified_header(none) == {"alg": "none",
                                               "typ": "at+jwt"}
    dup = jwt_sign('{"sub":"a","sub":"b"}', key=secret, alg="HS256")
    assert harness.b64url_decode(dup.split(".")[1]) == \
        b'{"sub":"a","sub":"b"}'


def test_dev_claims_none_removes_a_claim():
    c = harness.dev_claims("a", exp=None, jti=None, nbf=5, extra="x")
    assert "exp" not in c and "jti" not in c
    assert c["nbf"] == 5 and c["extra"] == "x"


def test_py_mint_with_the_dev_key_when_present():
    pem = harness.DEV_KEYS / "es256.pem"
    if not pem.exists():
        pytest.skip("examples/dev-keys/es256.pem not written yet")
    key = harness.load_private_key()
    tok = py_mint("alice")
    assert _verify(tok, key.public_key(), "ES256")["sub"] == "alice"


# -------------------------------------------------------- raw sockets --

def test_raw_request_returns_bytes_until_silence():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()

        def serve():
            c, _ = srv.accept()
            c.recv(100)
            c.sendall(b"partial")
            time.sleep(1)  # held open: the client must stop on silence
            c.close()
        threading.Thread(target=serve, daemon=True).start()
        got = raw_request("127.0.0.1", srv.getsockname()[1], b"x",
                          read_timeout=0.2)
    assert got == b"partial"


# --------------------------------------------- Treaty via a stand-in --

FAKE = textwrap.dedent('''
    import json, os, signal, sys, threading, yaml
    # Blocked before any thread starts, so sigwait below receives it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    assert sys.argv[1] == "serve" and sys.argv[2] == "-c"
    cfg = yaml.safe_load(open(sys.argv[3]))
    assert "--dev" in sys.argv
    def addr(v):
        h, _, p = v.rpartition(":")
        return h, int(p)
    log = open(cfg["access_log"], "a", buffering=1)
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            # Logged before answering, so a kill -9 right after the
            # response cannot lose the line.
            if self.server is main:
                log.write(json.dumps({"path": self.path,
                                      "status": 200}) + "\\n")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *a):
            pass
    main = ThreadingHTTPServer(addr(cfg["listen"]), H)
    admin = ThreadingHTTPServer(addr(cfg["admin"]), H)
    for s in (main, admin):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    if os.environ.get("FAKE_ASAN"):
        sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free\\n")
        sys.stderr.flush()
    signal.sigwait({signal.SIGTERM})
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
''')


@pytest.fixture
def fake_treaty(tmp_path):
    path = tmp_path / "fake-treaty"
    path.write_text(f"#!{sys.executable}\n" + FAKE)
    path.chmod(0o755)
    return str(path)


def test_treaty_dict_config_gets_ports_and_paths(tmp_path):
    t = Treaty(tmp_path / "t", harness.proxy_config("http://127.0.0.1:9"),
               binary="/bin/false")
    cfg = harness.yaml.safe_load(t.config_path.read_text())
    assert cfg["listen"] == f"127.0.0.1:{t.port}"
    assert cfg["admin"] == f"127.0.0.1:{t.admin_port}"
    assert cfg["state_dir"] == str(tmp_path / "t" / "state")
    assert cfg["access_log"] == str(tmp_path / "t" / "access.log")
    assert cfg["routes"][0]["match"]["path"] == "/{rest...}"
    assert t.url == f"http://127.0.0.1:{t.port}"


def test_treaty_text_config_placeholders_and_missing_keys(tmp_path):
    t = Treaty(tmp_path / "t", "listen: ${listen}\nupstreams:\n"
               "  b: {url: \"${up}\"}\n", subst={"up": "http://x:1"},
               binary="/bin/false")
    text = t.config_path.read_text()
    assert f"listen: 127.0.0.1:{t.port}\n" in text
    assert 'url: "http://x:1"' in text
    assert f'admin: "127.0.0.1:{t.admin_port}"' in text
    assert "state_dir: " in text and "access_log: " in text


def test_treaty_text_config_with_explicit_listen_is_respected(tmp_path):
    port = free_port()
    t = Treaty(tmp_path / "t", f"listen: 127.0.0.1:{port}\n",
               binary="/bin/false")
    assert t.port == port


def test_treaty_start_reports_an_early_exit(tmp_path):
    t = Treaty(tmp_path / "t", {}, binary="/bin/false")
    with pytest.raises(RuntimeError, match="did not start"):
        t.start()
    assert not t.running and t.exit_code == 1
    assert t.stop() is None


def test_treaty_lifecycle_with_a_stand_in(tmp_path, fake_treaty):
    t = Treaty(tmp_path / "t", {}, binary=fake_treaty).start()
    assert t.request("GET", "/a").text == "ok"
    assert t.admin("/healthz").status_code == 200
    assert t.access_log_lines(wait_for=1) == [{"path": "/a", "status": 200}]
    old_pid = t.pid
    t.restart()
    assert t.pid != old_pid
    assert t.request("GET", "/b").status_code == 200
    t.kill9()
    assert not t.running and t.proc.returncode == -signal.SIGKILL
    t.start()
    assert t.stop() == 0
    assert [x["path"] for x in t.access_log_lines()] == ["/a", "/b"]


def test_treaty_stop_asserts_the_exit_code(tmp_path, fake_treaty):
    t = Treaty(tmp_path / "t", {}, binary=fake_treaty,
               env={"FAKE_EXIT": "3"}).start()
    with pytest.raises(AssertionError, match="exited with 3"):
        t.stop()


def test_treaty_stop_asserts_no_sanitizer_report(tmp_path, fake_treaty):
    t = Treaty(tmp_path / "t", {}, binary=fake_treaty,
               env={"FAKE_ASAN": "1"}).start()
    with pytest.raises(AssertionError, match="sanitizer report"):
        t.stop()


def test_treaty_context_manager_stops(tmp_path, fake_treaty):
    with Treaty(tmp_path / "t", {}, binary=fake_treaty) as t:
        pid = t.pid
        assert t.running
    assert not t.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_log_lines_parses_logfmt_and_json():
    lines = harness._log_lines(
        'ts=2026-01-01T00:00:00Z level=info event=listening port=80\n'
        'not a log line\n'
        '{"level": "warn", "event": "x"}\n'
        'level=error event=upstream why="connect refused \\"x\\"" n=\n')
    assert lines[0] == {"ts": "2026-01-01T00:00:00Z", "level": "info",
                        "event": "listening", "port": "80"}
    assert lines[1] == {"level": "warn", "event": "x"}
    assert lines[2] == {"level": "error", "event": "upstream",
                        "why": 'connect refused "x"', "n": ""}
    assert len(lines) == 3


def test_mint_token_cli_and_py_mint_agree(treaty_bin):
    """The CLI signer (needs ./treaty) and the Python twin produce the same
    header and claim names, and both verify with the dev public key."""
    key = harness.load_private_key()
    cli = harness.mint_token("alice", act=["planner", "w1"], scope="a b",
                             client="app", ttl=120, consent_id="c1",
                             depth=2)
    py = py_mint("alice", act=["planner", "w1"], scope="a b", client="app",
                 ttl=120, consent_id="c1", depth=2)
    assert jwt.get_unverified_header(cli) == jwt.get_unverified_header(py)
    c1 = _verify(cli, key.public_key(), "ES256")
    c2 = _verify(py, key.public_key(), "ES256")
    assert sorted(c1) == sorted(c2)
    for k in ("iss", "sub", "aud", "scope", "client_id", "act",
              "consent_id", "depth"):
        assert c1[k] == c2[k], k
    assert c1["exp"] - c1["iat"] == 120


def test_backend_keeps_handler_errors_for_the_test(backend):
    raw = raw_request(backend.host, backend.port,
                      b"POST /bad HTTP/1.1\r\nHost: b\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert raw == b""
    harness.wait_until(lambda: backend.errors, 5, "a recorded error")
    assert "ValueError" in backend.errors[0]
    assert backend.count() == 0
