"""Keys from an identity provider by URL (issue 7 item 1), end to end: a
real token issuer (oauth2-mock-server from npm, tests/integration/
mock_idp.mjs) serves its JWKS over loopback http, treaty fetches it by URL
on its fetch thread, and tokens from the issuer's token endpoint are
checked against it.  JWKS fetches are counted at the issuer."""

import concurrent.futures
import os
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import harness
from harness import bearer
from mock_idp import AUDIENCE, MockIdp


@pytest.fixture
def idp_factory(tmp_path):
    started = []

    def make(**kw):
        i = MockIdp(tmp_path / f"idp{len(started)}", **kw).start()
        started.append(i)
        return i

    yield make
    for i in started:
        i.stop()


@pytest.fixture
def idp(idp_factory):
    return idp_factory()


def config(backend_url, *issuers):
    return harness.proxy_config(backend_url, auth="required",
                                identity={"issuers": list(issuers)})


def get(t, tok, path="/r"):
    return t.request("GET", path, headers=bearer(tok) if tok else {})


def metric(t, name, issuer="idp"):
    return t.metrics().get(f'{name}{{issuer="{issuer}"}}')


def random_kid_token(idp, n=0):
    """A well-formed token of this issuer, signed by a key it never had,
    under a kid it never published."""
    key = ec.generate_private_key(ec.SECP256R1())
    claims = harness.dev_claims("alice", iss=idp.url, aud=AUDIENCE)
    return harness.jwt_sign(claims, key=key, kid=f"random-{n}-"
                            + os.urandom(8).hex(), typ="JWT")


def ready(t):
    return t.admin("/readyz").status_code == 200


# ------------------------------------------------------------ basics --

def test_token_from_the_issuer_is_verified_with_keys_fetched_by_url(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config()))
    t.wait_ready()
    r = get(t, idp.token("alice", act=["agent:mailbot"], scope="mail.read"))
    assert r.status_code == 200, r.text
    seen = backend.last().headers
    assert seen["X-Principal"] == '"alice"'
    assert seen["X-Actor"] == '"agent:mailbot"'
    assert idp.jwks_gets() == 1
    assert metric(t, "treaty_jwks_fetches_total") == 1
    assert metric(t, "treaty_jwks_keys") == 1
    fetched = [x for x in t.log_lines() if x.get("event") == "jwks_fetched"]
    assert len(fetched) == 1
    assert fetched[0]["keys"] == "1" and fetched[0]["kids"] == idp.kid


def test_readyz_is_false_until_the_first_fetch_succeeds(
        treaty, backend, idp):
    idp.set_jwks(mode="down")
    t = treaty(config(backend.url, idp.issuer_config()))
    idp.wait_jwks_gets(1)
    r = t.admin("/readyz")
    assert r.status_code == 503
    assert r.json()["ready"] is False
    assert get(t, idp.token()).status_code == 401
    idp.set_jwks(mode="up")
    # retried after 1 s, then 2 s, ...
    harness.wait_until(lambda: ready(t), 6 * harness.SLOW, "ready")
    assert get(t, idp.token()).status_code == 200
    failed = [x for x in t.log_lines()
              if x.get("event") == "jwks_fetch_failed"]
    assert failed and "503" in failed[0]["http_status"]


def test_request_during_the_first_fetch_waits_for_it(treaty, backend, idp):
    idp.set_jwks(delay_ms=800)
    t = treaty(config(backend.url, idp.issuer_config()))
    tok = idp.token()
    started = time.monotonic()
    r = get(t, tok)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3 * harness.SLOW
    assert idp.jwks_gets() == 1
    assert metric(t, "treaty_jwks_held_requests_total") == 1


def test_several_issuers_each_fetched_from_its_own_url(
        treaty, backend, idp_factory):
    a, b = idp_factory(), idp_factory()
    t = treaty(config(backend.url, a.issuer_config("a"),
                      b.issuer_config("b")))
    t.wait_ready()
    assert get(t, a.token("alice")).status_code == 200
    assert backend.last().headers["X-Principal"] == '"alice"'
    assert get(t, b.token("bob")).status_code == 200
    assert backend.last().headers["X-Principal"] == '"bob"'
    assert a.jwks_gets() == 1 and b.jwks_gets() == 1
    # a token of one issuer is never checked with the other's keys
    forged = harness.jwt_sign(harness.dev_claims("mallory", iss=a.url,
                                                 aud=AUDIENCE),
                              key=None, kid=b.kid, typ="JWT")
    assert get(t, forged).status_code == 401


def test_plain_http_url_needs_the_insecure_flag(tmp_path, backend, idp,
                                                treaty_bin):
    cfg = idp.issuer_config()
    del cfg["jwks_insecure_http"]
    t = harness.Treaty(tmp_path / "t", config(backend.url, cfg),
                       binary=treaty_bin)
    res = subprocess.run([treaty_bin, "check", "-c", str(t.config_path)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "jwks_insecure_http" in res.stderr + res.stdout
    with pytest.raises(RuntimeError):
        t.start()
    assert idp.jwks_gets() == 0


# ----------------------------------------------------------- rotation --

def test_rotation_new_kid_succeeds_after_exactly_one_refetch(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(jwks_min_refetch_s=1)))
    t.wait_ready()
    assert get(t, idp.token("alice")).status_code == 200
    assert idp.jwks_gets() == 1
    time.sleep(1.1)   # past min_refetch_s since the start-up fetch

    new_kid = idp.rotate()
    tok = idp.token("bob")
    r = get(t, tok)                       # the very first new-kid token
    assert r.status_code == 200, r.text
    assert backend.last().headers["X-Principal"] == '"bob"'
    assert idp.jwks_gets() == 2           # exactly one refetch
    assert metric(t, "treaty_jwks_refetches_total") == 1

    # the new key is cached: more new-kid tokens cost no fetch
    for sub in ("carol", "dave", "erin"):
        assert get(t, idp.token(sub)).status_code == 200
    assert idp.jwks_gets() == 2
    fetched = [x for x in t.log_lines() if x.get("event") == "jwks_fetched"]
    assert fetched[-1]["kids"] == new_kid
    assert fetched[-1]["reason"] == "unknown_kid"


def test_rotation_with_overlap_keeps_old_tokens_valid(treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(jwks_min_refetch_s=1)))
    t.wait_ready()
    old_tok = idp.token("alice")
    time.sleep(1.1)
    idp.rotate(keep_old=True)
    assert get(t, idp.token("bob")).status_code == 200
    assert get(t, old_tok).status_code == 200
    assert idp.jwks_gets() == 2


def test_rotation_without_overlap_drops_old_tokens(treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(jwks_min_refetch_s=1)))
    t.wait_ready()
    old_tok = idp.token("alice")
    assert get(t, old_tok).status_code == 200     # now cached
    time.sleep(1.1)
    idp.rotate()
    assert get(t, idp.token("bob")).status_code == 200
    r = get(t, old_tok)
    assert r.status_code == 401
    assert "unknown_kid" in r.headers["WWW-Authenticate"]


def test_burst_of_random_kids_causes_at_most_one_refetch(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(jwks_min_refetch_s=2)))
    t.wait_ready()
    time.sleep(2.1)   # a refetch is allowed again
    before = idp.jwks_gets()
    tokens = [random_kid_token(idp, i) for i in range(50)]
    more = [random_kid_token(idp, 100 + i) for i in range(50)]

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda tok: get(t, tok).status_code, tokens))
    assert codes == [401] * 50
    assert idp.jwks_gets() - before == 1
    assert backend.count() == 0

    # a second burst right after: the refetch is rate-limited, so each
    # token is refused at once and nothing is fetched
    refused_before = metric(t, "treaty_jwks_refetches_refused_total")
    held_before = metric(t, "treaty_jwks_held_requests_total")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda tok: get(t, tok).status_code, more))
    assert codes == [401] * 50
    assert idp.jwks_gets() - before == 1
    assert metric(t, "treaty_jwks_refetches_refused_total") \
        - refused_before == 50
    assert metric(t, "treaty_jwks_held_requests_total") == held_before

    # the issuer's real tokens are unaffected
    assert get(t, idp.token("alice")).status_code == 200


def test_unknown_kid_is_refused_with_its_reason(treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config()))
    t.wait_ready()
    r = get(t, random_kid_token(idp))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "unknown_kid" in r.json()["detail"]
    # min_refetch_s defaults to 30: the start-up fetch was just now
    assert idp.jwks_gets() == 1


# -------------------------------------------------------------- grace --

@pytest.mark.timing
def test_endpoint_down_within_grace_serves_stale_keys_then_withdraws(
        treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(
        jwks_refresh_s=1, jwks_grace_s=2, jwks_min_refetch_s=30)))
    t.wait_ready()
    assert get(t, idp.token()).status_code == 200
    idp.set_jwks(mode="down")
    down_at = time.monotonic()
    # the last good fetch was at most 1 s before: keys serve until that
    # fetch + refresh_s + grace_s, i.e. 2 to 3 s from now

    idp.wait_jwks_gets(idp.jwks_gets() + 1)   # a refresh has failed
    time.sleep(max(0.0, down_at + 1.2 - time.monotonic()))
    assert time.monotonic() - down_at < 2.0
    r = get(t, idp.token("within-grace"))        # fresh token: cold check
    assert r.status_code == 200, r.text
    assert metric(t, "treaty_jwks_fetch_failures_total") >= 1
    assert ready(t)

    def refused():
        return get(t, idp.token("beyond-grace")).status_code == 401
    harness.wait_until(refused, 5 * harness.SLOW, "401 beyond grace")
    gone_after = time.monotonic() - down_at
    assert gone_after >= 1.9, gone_after
    r = t.admin("/readyz")
    assert r.status_code == 503
    assert metric(t, "treaty_jwks_keys") == 0
    assert metric(t, "treaty_jwks_withdrawals_total") == 1
    assert any(x.get("event") == "jwks_withdrawn" for x in t.log_lines())

    # the endpoint comes back: keys return with the next retry
    idp.set_jwks(mode="up")
    harness.wait_until(lambda: ready(t), 5 * harness.SLOW, "ready again")
    assert get(t, idp.token("back")).status_code == 200


@pytest.mark.timing
def test_stop_is_prompt_while_a_jwks_fetch_hangs(treaty, backend, idp):
    t = treaty(config(backend.url, idp.issuer_config(jwks_min_refetch_s=0)))
    t.wait_ready()
    idp.set_jwks(delay_ms=60000)          # the next fetch hangs
    before = idp.jwks_gets()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(lambda: get(t, random_kid_token(idp)))
        idp.wait_jwks_gets(before + 1)
        started = time.monotonic()
        t.stop()                          # exit 0, no sanitizer report
        # the held request gives up after TR_JWKS_HOLD_MS (3 s) and the
        # fetch in flight is aborted rather than waited for
        assert time.monotonic() - started < 6 * harness.SLOW
        assert held.result().status_code == 401
