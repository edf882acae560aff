"""What Debian's llhttp 8.1 lets through and treaty must refuse (SPEC.md
"Hardening"): each case is a regression test.  Every refusal is a 400
problem, the connection is closed, and nothing reaches the backend."""

import pytest

from harness import proxy_config, raw_request, parse_responses, RawConn


CASES = {
    "bare_cr_in_header_value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bare_cr_as_line_end":
        b"GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n",
    "bare_lf_line_end":
        b"GET / HTTP/1.1\nHost: x\n\n",
    "obs_fold_space":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "obs_fold_tab":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n",
    "nul_in_value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "control_char_in_value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "del_in_value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
    "two_hosts":
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "no_host_http11":
        b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "cl_and_te":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_not_chunked":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
        b"\r\n\r\n0\r\n\r\n",
    "te_twice":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "differing_content_lengths":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
    "negative_content_length":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "space_before_colon":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
    "empty_field_name":
        b"GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n",
    "bad_host_quote": b"GET / HTTP/1.1\r\nHost: a\"b<script>\r\n\r\n",
    "bad_host_userinfo": b"GET / HTTP/1.1\r\nHost: u@evil\r\n\r\n",
    "bad_host_path": b"GET / HTTP/1.1\r\nHost: a/b?c\r\n\r\n",
    "bad_host_space": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "bad_host_port": b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
    "http20_request_line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "http10_chunked":
        b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\n",
    "garbage_request_line":
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_smuggling_vector_refused_and_connection_closed(treaty, backend,
                                                        name):
    t = treaty(proxy_config(backend.url))
    with RawConn(t.host, t.port) as c:
        c.send(CASES[name])
        data = c.recv_until_closed()
    resps = parse_responses(data)
    assert resps, f"no response to {name}"
    assert resps[0].status == 400, (name, resps[0].status)
    assert resps[0].headers.get("content-type") == \
        "application/problem+json"
    assert backend.count() == 0


def test_chunk_extension_over_cap_refused(treaty, backend):
    cfg = proxy_config(backend.url, limits={"chunk_ext_max": 64})
    t = treaty(cfg)
    ext = b";" + b"a" * 500
    raw = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n5" + ext + b"\r\nhello\r\n0\r\n\r\n")
    with RawConn(t.host, t.port) as c:
        c.send(raw)
        data = c.recv_until_closed()
    resps = parse_responses(data)
    assert resps and resps[0].status == 400


def test_request_after_refusal_is_not_processed(treaty, backend):
    # A smuggled second request behind a refused one never reaches the
    # backend: the connection is closed after the 400.
    t = treaty(proxy_config(backend.url))
    raw = (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"
           b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    data = raw_request(t.host, t.port, raw)
    assert len(parse_responses(data)) == 1
    assert backend.count() == 0


def test_gateway_survives_garbage_and_keeps_serving(treaty, backend):
    t = treaty(proxy_config(backend.url))
    for blob in (b"\x00" * 100, b"\r\n" * 100, b"GET", b"G" * 20000,
                 b"GET / HTTP/9.9\r\n\r\n", b"\xff\xfe\xfd\r\n\r\n"):
        raw_request(t.host, t.port, blob, read_timeout=1.0)
    assert t.request("GET", "/ok").status_code == 200


def test_valid_host_forms_pass(treaty, backend):
    t = treaty(proxy_config(backend.url))
    for host in (b"example.com", b"example.com:8080", b"127.0.0.1",
                 b"[::1]:80", b"xn--bcher-kva.example"):
        data = raw_request(t.host, t.port,
                           b"GET /h HTTP/1.1\r\nHost: " + host +
                           b"\r\n\r\n")
        assert parse_responses(data)[0].status == 200, host
    assert backend.last().headers["X-Forwarded-Host"] == \
        "xn--bcher-kva.example"


def test_refused_head_is_logged_with_time_id_and_client(treaty, backend):
    t = treaty(proxy_config(backend.url))
    data = raw_request(t.host, t.port,
                       b"GET / HTTP/1.1\nHost: x\n\n")
    r = parse_responses(data)[0]
    assert r.status == 400
    assert r.json()["request_id"]
    line = t.access_log_lines(wait_for=1)[-1]
    assert line["status"] == 400
    assert line["time"] > 1_600_000_000_000
    assert line["request_id"] == r.json()["request_id"]
    assert line["client"] == "127.0.0.1"
    assert 0 <= line["duration_ms"] < 10_000


def test_traceparent_invalid_or_duplicate_is_replaced(treaty, backend):
    t = treaty(proxy_config(backend.url))
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    zero = "00-00000000000000000000000000000000-b7ad6b7169203331-01"
    for sent in (["zz-garbage"], [zero], [good, good]):
        raw = b"GET /t HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"traceparent: " + v.encode() + b"\r\n" for v in sent) + \
            b"\r\n"
        raw_request(t.host, t.port, raw)
        got = backend.last().headers.get_all("traceparent")
        assert len(got) == 1
        assert got[0] not in sent
        version, trace, parent, flags = got[0].split("-")
        assert version == "00" and len(trace) == 32 and len(parent) == 16
        assert trace != "0" * 32 and parent != "0" * 16
    line = t.access_log_lines(wait_for=3)[-1]
    assert line["traceparent"] == got[0]
