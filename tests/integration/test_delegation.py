"""Who is calling for whom, end to end (issues 3 and 7): the public
delegation scenarios 1-8 through the real binary, header spoofing in every
spelling, auth modes, and a negative-token sample (the full negative suite
is in tests/unit/test_jwt.c; here each refusal is checked to keep the
request away from the backend)."""


import pytest

import harness
from harness import py_mint, jwt_sign, dev_claims, bearer

ISSUER = {
    "name": "corp",
    "issuer": harness.DEV_ISS,
    "audiences": [harness.DEV_AUD],
    "algorithms": ["ES256"],
    "jwks_file": str(harness.DEV_KEYS / "jwks.json"),
    "leeway_s": 60,
}


def mail_config(upstream_url, **extra):
    cfg = {
        "upstreams": {"mail": {"url": upstream_url,
                               "authorization": "strip"}},
        "identity": {"issuers": [ISSUER]},
        "routes": [
            {"name": "mail-read",
             "match": {"methods": ["GET"],
                       "path": "/users/{user}/mail/{rest...}"},
             "upstream": "mail",
             "policy": {"actors": ["agent:mailbot", "agent:planner"],
                        "scopes": ["mail.read"],
                        "owner_param": "user",
                        "max_delegation_depth": 2}},
            {"name": "mail-send",
             "match": {"methods": ["POST"],
                       "path": "/users/{user}/mail/send"},
             "upstream": "mail",
             "policy": {"actors": ["agent:mailbot"],
                        "scopes": ["mail.send"],
                        "owner_param": "user",
                        "max_delegation_depth": 1,
                        "consent_claim": "consent_id"}},
            {"name": "health",
             "match": {"methods": ["GET"], "path": "/healthz"},
             "upstream": "mail", "auth": "none"},
            {"name": "open",
             "match": {"methods": ["GET"], "path": "/open/{rest...}"},
             "upstream": "mail", "auth": "optional"},
        ],
    }
    cfg.update(extra)
    return cfg


def token(sub="alice", act=None, scope="mail.read", **kw):
    return py_mint(sub, act=act, scope=scope, **kw)


@pytest.fixture
def gw(treaty, backend):
    return treaty(mail_config(backend.url)), backend


def get_inbox(t, tok, user="alice", headers=None):
    h = dict(headers or {})
    if tok:
        h["Authorization"] = "Bearer " + tok
    return t.request("GET", f"/users/{user}/mail/inbox", headers=h)


def test_case1_agent_reads_own_principals_mail(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:mailbot"]))
    assert r.status_code == 200
    h = b.last().headers
    assert h["X-Principal"] == '"alice"'
    assert h["X-Actor"] == '"agent:mailbot"'
    assert h["X-Delegation-Chain"] == '"agent:mailbot"'
    assert "Authorization" not in h
    line = t.access_log_lines(wait_for=1)[-1]
    assert line["principal"] == "alice"
    assert line["actor"] == "agent:mailbot"
    assert line["class"] == "agent"


def test_case2_current_actor_is_outermost(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:planner", "agent:mailbot"]))
    assert r.status_code == 200
    h = b.last().headers
    assert h["X-Actor"] == '"agent:planner"'
    assert h["X-Delegation-Chain"] == '"agent:planner", "agent:mailbot"'


def test_case3_three_level_chain_exceeds_depth(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:planner", "agent:router",
                                "agent:mailbot"]))
    assert r.status_code == 403
    body = r.json()
    assert body["reason"] == "delegation_depth_exceeded"
    assert b.count() == 0


def test_case4_actor_not_allowlisted(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:shopbot"]))
    assert r.status_code == 403
    assert r.json()["reason"] == "actor_not_allowed"
    assert b.count() == 0


def test_case5_missing_scope_gets_rfc6750_challenge(gw):
    t, b = gw
    tok = token(act=["agent:mailbot"], consent_id="c-1")
    r = t.request("POST", "/users/alice/mail/send", data=b"{}",
                  headers=bearer(tok))
    assert r.status_code == 403
    www = r.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in www
    assert 'scope="mail.send"' in www
    assert r.json()["reason"] == "insufficient_scope"
    assert b.count() == 0


def test_case6_agent_cannot_read_another_principals_mail(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:mailbot"]), user="bob")
    assert r.status_code == 403
    assert r.json()["reason"] == "principal_resource_mismatch"
    assert b.count() == 0


def test_case7_spoofed_identity_headers_stripped_in_every_spelling(gw):
    t, b = gw
    r = get_inbox(t, token(act=["agent:mailbot"]), headers={
        "X-Principal": "bob", "x-actor": "admin", "X_Principal": "bob",
        "X-Delegation-Chain": '"x"', "Connection": "X-Principal",
        "x-caller-class": "human", "Txn_Token": "forged"})
    assert r.status_code == 200
    rec = b.last()
    assert rec.headers.get_all("X-Principal") == ['"alice"']
    assert rec.headers.get_all("X-Actor") == ['"agent:mailbot"']
    assert rec.headers.get_all("X-Delegation-Chain") == ['"agent:mailbot"']
    assert rec.headers.get_all("X-Caller-Class") == ["agent"]
    names = [k.lower() for k, _ in rec.header_list]
    assert "x_principal" not in names
    assert "txn_token" not in names and "txn-token" not in names
    assert "connection" not in names or \
        "x-principal" not in rec.headers.get("Connection", "").lower()


def test_case8_no_token_is_401_and_never_proxied(gw):
    t, b = gw
    r = get_inbox(t, None, headers={"X-Principal": "alice"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["type"].endswith("#token-missing")
    assert b.count() == 0


def test_human_request_has_no_chain_header(gw):
    t, b = gw
    # A human reading her own mail: no actor rule applies to humans.
    r = get_inbox(t, token())
    assert r.status_code == 200
    h = b.last().headers
    assert h["X-Actor"] == '"alice"'
    assert "X-Delegation-Chain" not in h
    assert h["X-Caller-Class"] == "human"


def test_auth_none_route_ignores_tokens(gw):
    t, b = gw
    r = t.request("GET", "/healthz",
                  headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 200
    assert "X-Principal" not in b.last().headers


def test_auth_optional_passes_anonymous_but_refuses_bad_token(gw):
    t, b = gw
    assert t.request("GET", "/open/x").status_code == 200
    r = t.request("GET", "/open/x",
                  headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


NEGATIVE = {
    "alg_none": lambda: jwt_sign(dev_claims("alice"), alg="none"),
    "expired": lambda: jwt_sign(dev_claims("alice", ttl=-120)),
    "wrong_audience": lambda: jwt_sign(dict(dev_claims("alice"),
                                            aud="someone-else")),
    "wrong_issuer": lambda: jwt_sign(dict(dev_claims("alice"),
                                          iss="https://evil.example/")),
    "unknown_kid": lambda: jwt_sign(dev_claims("alice"), kid="nope"),
    "path_kid": lambda: jwt_sign(dev_claims("alice"),
                                 kid="../../../dev/null"),
    "typ_confusion": lambda: jwt_sign(dev_claims("alice"),
                                      typ="txntoken+jwt"),
    "truncated_signature": lambda: jwt_sign(dev_claims("alice"))[:-10],
    "empty_signature": lambda: jwt_sign(dev_claims("alice"))
    .rsplit(".", 1)[0] + ".",
    "garbage": lambda: "not-a-token",
    "deep_act": lambda: py_mint("alice", act=[f"a{i}" for i in range(12)]),
    "oversized": lambda: py_mint("alice", pad="x" * 9000),
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_bad_tokens_get_401_and_never_reach_backend(gw, name):
    t, b = gw
    r = get_inbox(t, NEGATIVE[name]())
    assert r.status_code == 401, (name, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json"
    assert b.count() == 0


def test_dev_keys_refused_without_dev_flag(tmp_path, backend):
    t = harness.Treaty(tmp_path, mail_config(backend.url), dev=False)
    with pytest.raises(RuntimeError) as e:
        t.start()
    assert "dev" in str(e.value).lower()
