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
