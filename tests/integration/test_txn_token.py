"""Transaction Tokens in the running gateway (issue 7 items 5 and 6): with
propagation.txn_token on, every forwarded authenticated request carries a
Txn-Token that a backend verifies against the JWKS treaty serves on its
admin listener, with the right sub, txn and chain; a Txn-Token sent by a
client never reaches the backend.  Tokens come from a real issuer
(oauth2-mock-server, see mock_idp.py)."""

import json
import os
import stat
import subprocess
import sys

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import harness
from harness import bearer
from mock_idp import MockIdp

sys.path.insert(0, str(harness.REPO / "examples"))
import downstream_verify  # noqa: E402

TRUST_DOMAIN = "trust.example"
EXAMPLE = harness.REPO / "examples" / "downstream_verify.py"


@pytest.fixture
def idp(tmp_path):
    i = MockIdp(tmp_path / "idp").start()
    yield i
    i.stop()


def config(backend_url, idp, txn=True, **prop):
    propagation = {"txn_token": txn}
    if txn:
        propagation["txn_token_audience"] = TRUST_DOMAIN
    propagation.update(prop)
    return {
        "upstreams": {"mail": {"url": backend_url,
                               "authorization": "strip"}},
        "identity": {"issuers": [idp.issuer_config()]},
        "propagation": propagation,
        "routes": [
            {"name": "mail-read",
             "match": {"methods": ["GET"],
                       "path": "/users/{user}/mail/{rest...}"},
             "upstream": "mail",
             "policy": {"actors": ["agent:mailbot", "agent:planner"],
                        "scopes": ["mail.read"],
                        "owner_param": "user",
                        "max_delegation_depth": 2}},
            {"name": "health",
             "match": {"methods": ["GET"], "path": "/healthz"},
             "upstream": "mail", "auth": "none"},
            {"name": "any",
             "match": {"path": "/any/{rest...}"},
             "upstream": "mail"},
        ],
    }


def served_jwks(t):
    r = t.admin("/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/jwk-set+json"
    return r.json()


def txn_tokens_seen(rec):
    """Every header the backend got whose name is Txn-Token in any
    spelling, as (name, value)."""
    return [(k, v) for k, v in rec.header_list
            if k.lower().replace("_", "-") == "txn-token"]


def test_backend_gets_one_txn_token_that_verifies_against_treatys_jwks(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    tok = idp.token("alice", act=["agent:planner", "agent:mailbot"],
                    scope="mail.read mail.send", client_id="planner-app")
    r = t.request("GET", "/users/alice/mail/inbox", headers=bearer(tok))
    assert r.status_code == 200, r.text

    seen = txn_tokens_seen(backend.last())
    assert len(seen) == 1
    txn = seen[0][1]
    header = jwt.get_unverified_header(txn)
    assert header["typ"] == "txntoken+jwt" and header["alg"] == "EdDSA"
    jwks = served_jwks(t)
    assert header["kid"] in [k["kid"] for k in jwks["keys"]]

    claims = downstream_verify.verify_txn_token(txn, TRUST_DOMAIN,
                                                jwks=jwks)
    request_id = t.access_log_lines(wait_for=1)[-1]["request_id"]
    assert claims["txn"] == request_id
    assert claims["sub"] == "alice"
    assert claims["iss"] == claims["req_wl"] == "treaty"
    assert claims["aud"] == TRUST_DOMAIN
    assert claims["exp"] - claims["iat"] == 300
    assert claims["scope"] == "mail.read"       # narrowed to the route
    assert claims["act"] == {"sub": "agent:planner",
                             "act": {"sub": "agent:mailbot"}}
    assert claims["tctx"] == {
        "principal_issuer": "idp",
        "actor": "agent:planner",
        "delegation_chain": ["agent:planner", "agent:mailbot"],
        "caller_class": "agent",
        "client_id": "planner-app",
        "route": "mail-read",
        "method": "GET",
    }
    assert claims["rctx"] == {"req_ip": "127.0.0.1"}
    # the access token itself is not what the backend got as Txn-Token
    assert tok not in txn
    assert t.metrics()["treaty_txn_tokens_minted_total"] == 1


def test_human_request_token_has_an_empty_chain(treaty, backend, idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    r = t.request("POST", "/any/thing", headers=bearer(idp.token("bob")))
    assert r.status_code == 200
    txn = txn_tokens_seen(backend.last())[0][1]
    claims = downstream_verify.verify_txn_token(txn, TRUST_DOMAIN,
                                                jwks=served_jwks(t))
    assert claims["sub"] == "bob"
    assert "act" not in claims
    assert claims["tctx"]["caller_class"] == "human"
    assert claims["tctx"]["delegation_chain"] == []
    assert claims["tctx"]["method"] == "POST"


def test_token_lifetime_is_configurable(treaty, backend, idp):
    t = treaty(config(backend.url, idp, txn_token_ttl_s=60))
    t.wait_ready()
    t.request("GET", "/any/x", headers=bearer(idp.token()))
    claims = jwt.decode(txn_tokens_seen(backend.last())[0][1],
                        options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


SPELLINGS = ["Txn-Token", "txn-token", "TXN-TOKEN", "Txn_Token",
             "txn_token"]


def raw_get(t, path, token, extra):
    head = (f"GET {path} HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer {token}\r\n" + extra +
            "Connection: close\r\n\r\n")
    return harness.parse_responses(
        harness.raw_request(t.host, t.port, head.encode()))[0]


@pytest.mark.parametrize("name", SPELLINGS)
def test_client_txn_token_never_reaches_the_backend(treaty, backend, idp,
                                                    name):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    forged = harness.py_mint("mallory")
    r = raw_get(t, "/any/x", idp.token("alice"), f"{name}: {forged}\r\n")
    assert r.status == 200
    seen = txn_tokens_seen(backend.last())
    assert len(seen) == 1 and seen[0][0] == "Txn-Token"
    assert seen[0][1] != forged
    claims = downstream_verify.verify_txn_token(seen[0][1], TRUST_DOMAIN,
                                                jwks=served_jwks(t))
    assert claims["sub"] == "alice"


def test_every_client_spelling_at_once_and_named_in_connection(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    extra = "".join(f"{n}: forged-{i}\r\n" for i, n in enumerate(SPELLINGS))
    r = raw_get(t, "/any/x", idp.token("alice"),
                extra + "Connection: keep-alive, Txn-Token\r\n")
    assert r.status == 200
    rec = backend.last()
    seen = txn_tokens_seen(rec)
    assert len(seen) == 1
    assert not seen[0][1].startswith("forged")
    assert "txn" not in (rec.headers.get("Connection") or "").lower()


def test_client_txn_token_removed_when_the_feature_is_off(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp, txn=False))
    t.wait_ready()
    r = raw_get(t, "/any/x", idp.token("alice"),
                "Txn-Token: forged\r\ntxn_token: forged2\r\n")
    assert r.status == 200
    assert txn_tokens_seen(backend.last()) == []
    assert t.admin("/.well-known/jwks.json").status_code == 404


def test_no_txn_token_without_a_verified_identity(treaty, backend, idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    r = raw_get(t, "/healthz", idp.token("alice"), "Txn-Token: forged\r\n")
    assert r.status == 200
    assert txn_tokens_seen(backend.last()) == []


def test_downstream_example_verifies_a_live_token(treaty, backend, idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    tok = idp.token("alice", act=["agent:mailbot"], scope="mail.read")
    assert t.request("GET", "/users/alice/mail/inbox",
                     headers=bearer(tok)).status_code == 200
    txn = txn_tokens_seen(backend.last())[0][1]
    url = t.admin_url + "/.well-known/jwks.json"

    res = subprocess.run(["/usr/bin/python3", str(EXAMPLE), "--jwks-url",
                          url, "--audience", TRUST_DOMAIN, txn],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["principal"] == "alice"
    assert out["actor"] == "agent:mailbot"
    assert out["delegation_chain"] == ["agent:mailbot"]
    assert out["request_id"] == t.access_log_lines(wait_for=1)[-1][
        "request_id"]

    res = subprocess.run(["/usr/bin/python3", str(EXAMPLE), "--jwks-url",
                          url, "--audience", "other.example", txn],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert "refused" in res.stderr


def test_signing_key_is_0600_and_kept_across_restarts(treaty, backend,
                                                      idp):
    t = treaty(config(backend.url, idp))
    t.wait_ready()
    keydir = t.state_dir / "txn-keys"
    files = list(keydir.glob("key-*.pem"))
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(keydir).st_mode) == 0o700
    kid = served_jwks(t)["keys"][0]["kid"]

    t.restart()
    t.wait_ready()
    assert [k["kid"] for k in served_jwks(t)["keys"]] == [kid]
    t.request("GET", "/any/x", headers=bearer(idp.token()))
    txn = txn_tokens_seen(backend.last())[0][1]
    assert jwt.get_unverified_header(txn)["kid"] == kid
    assert list(keydir.glob("key-*.pem")) == files


def test_operator_key_file_signs(tmp_path, treaty, backend, idp):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "txn.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.chmod(0o600)
    t = treaty(config(backend.url, idp, txn_token_key_file=str(path)))
    t.wait_ready()
    t.request("GET", "/any/x", headers=bearer(idp.token()))
    txn = txn_tokens_seen(backend.last())[0][1]
    claims = jwt.decode(txn, key.public_key(), algorithms=["EdDSA"],
                        audience=TRUST_DOMAIN)
    assert claims["sub"] == "alice"
    assert not (t.state_dir / "txn-keys").exists()


def test_txn_token_needs_an_audience(tmp_path, backend, idp, treaty_bin):
    cfg = config(backend.url, idp)
    del cfg["propagation"]["txn_token_audience"]
    t = harness.Treaty(tmp_path / "t", cfg, binary=treaty_bin)
    with pytest.raises(RuntimeError) as e:
        t.start()
    assert "txn_token_audience" in str(e.value)
