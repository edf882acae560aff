"""A real token issuer for the tests: oauth2-mock-server from npm, run by
mock_idp.mjs on a free loopback port.

    idp = MockIdp(tmp_path).start()
    tok = idp.token("alice", act=["agent:mailbot"], scope="mail.read")
    idp.rotate()                 # new signing key; the old one unpublished
    idp.set_jwks(mode="down")    # GET /jwks answers 503
    idp.jwks_gets()              # how many times /jwks was fetched
    idp.stop()

The issuer (`iss`) is http://127.0.0.1:PORT and the JWKS is at
http://127.0.0.1:PORT/jwks; tokens are ES256, typ JWT, with a random kid.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

import harness

SCRIPT = Path(__file__).resolve().parent / "mock_idp.mjs"
PACKAGE = harness.REPO / "node_modules" / "oauth2-mock-server"
AUDIENCE = "treaty-test"


class MockIdp:
    def __init__(self, workdir, alg="ES256", port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.alg = alg
        self.port = port or harness.free_port()
        self.proc = None
        self.log_path = self.workdir / f"mock-idp-{self.port}.log"
        self.node = shutil.which("node")
        if self.node is None:
            raise RuntimeError("node not found: run scripts/install-deps")
        if not PACKAGE.exists():
            raise RuntimeError(f"{PACKAGE} missing: run scripts/install-deps")

    @property
    def url(self):
        """The issuer: the `iss` of every token, exactly."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self):
        return self.url + "/jwks"

    def issuer_config(self, name="idp", **extra):
        """An identity.issuers[] entry that fetches this issuer's JWKS."""
        cfg = {"name": name, "issuer": self.url, "audiences": [AUDIENCE],
               "algorithms": [self.alg], "jwks_url": self.jwks_url,
               "jwks_insecure_http": True}
        cfg.update(extra)
        return cfg

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.node, str(SCRIPT), str(self.port), self.alg],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=str(harness.REPO),
                start_new_session=True)
        try:
            harness.wait_for_port("127.0.0.1", self.port, 20 * harness.SLOW,
                                  self.proc)
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            raise RuntimeError(f"mock IdP did not start: {e}\n"
                               f"{self.log_path.read_text()}")
        return self

    def stop(self):
        harness.stop_process(self.proc, 5)
        self.proc = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- tokens
    def token(self, sub="alice", act=None, scope=None, aud=AUDIENCE,
              client_id="test-client", claims=None):
        """An access token from the issuer's token endpoint
        (client_credentials).  act: actor ids, current actor first."""
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "sub": sub}
        if aud is not None:
            form["aud"] = aud
        if scope is not None:
            form["scope"] = scope if isinstance(scope, str) else \
                " ".join(scope)
        if act:
            form["act"] = ",".join(act)
        if claims:
            form["claims"] = json.dumps(claims)
        r = requests.post(self.url + "/token", data=form, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    # -- control
    def _ctl(self, method, path, **params):
        r = requests.request(method, self.url + "/_ctl/" + path,
                             params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def stats(self):
        return self._ctl("GET", "stats")

    def jwks_gets(self):
        return self.stats()["jwks_gets"]

    @property
    def kid(self):
        return self.stats()["kid"]

    def rotate(self, keep_old=False):
        """A new signing key; returns its kid."""
        return self._ctl("POST", "rotate",
                         keep_old="1" if keep_old else "0")["kid"]

    def set_jwks(self, mode="up", delay_ms=0, extra_keys=0):
        """mode down: /jwks answers 503; delay_ms: it answers that much
        later; extra_keys: that many more EC keys are published."""
        return self._ctl("POST", "jwks", mode=mode, delay_ms=str(delay_ms),
                         extra_keys=str(extra_keys))

    def wait_jwks_gets(self, n, timeout=10.0):
        """Poll until /jwks was fetched at least n times; return the count."""
        return harness.wait_until(
            lambda: self.jwks_gets() >= n and self.jwks_gets(),
            timeout * harness.SLOW, f"{n} JWKS fetches")


def sleep_until(t):
    """Sleep until time.monotonic() reaches t."""
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)
