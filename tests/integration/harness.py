"""Integration-test harness: the real ./treaty, scripted backends, tokens.

Everything here talks to 127.0.0.1 only and waits by polling, never by
fixed sleeps.  The pytest fixtures in conftest.py wrap these classes; tests
may also import them directly (``from harness import ScriptedBackend``).

Pieces:
  free_port(), wait_for_port()      ports
  Treaty                            a running `treaty serve -c FILE --dev`
  ScriptedBackend                   threaded HTTP/1.1 backend, recorded
  JsonServer                        json-server 0.17.4 on a fresh db copy
  mint_token(), jwt_sign(), ...     tokens: via `treaty token mint` or PyJWT
  raw_request(), parse_responses()  raw sockets for hardening tests
"""

import base64
import gzip as gzip_mod
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
DEV_KEYS = REPO / "examples" / "dev-keys"
DEV_KID = "treaty-dev-es256"
DEV_ISS = "https://dev.treaty.example/"
DEV_AUD = "treaty-dev"
LOOPBACK = "127.0.0.1"

# Sanitizer builds are several times slower: timeouts scale by this.
SANITIZER = os.environ.get("TREATY_SANITIZER") == "1"
SLOW = 4.0 if SANITIZER else 1.0

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "SUMMARY: AddressSanitizer",
    "WARNING: ThreadSanitizer",
)


def treaty_binary():
    """Path of the gateway under test: $TREATY_BIN or ./treaty."""
    return os.environ.get("TREATY_BIN") or str(REPO / "treaty")


# ---------------------------------------------------------------- ports --

def free_port(host=LOOPBACK):
    """A TCP port that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host, port, timeout=10.0, proc=None):
    """Poll until (host, port) accepts a connection.

    Raises TimeoutError after `timeout` seconds, or RuntimeError at once if
    `proc` (a Popen) exits first.  Backs off from 5 ms to 100 ms.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode} before "
                f"{host}:{port} opened")
        if port_open(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} not open after {timeout}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def start_radicale(workdir, extra_conf=""):
    """Radicale (Debian) on a free loopback port with its storage under
    `workdir`; `extra_conf` adds config sections (auth, rights).  Returns
    (url, proc); stop it with stop_process(proc)."""
    workdir = Path(workdir)
    port = free_port()
    conf = workdir / "radicale.conf"
    conf.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[storage]\nfilesystem_folder = {workdir / 'collections'}\n"
        "[logging]\nlevel = warning\n[web]\ntype = none\n" + extra_conf)
    with open(workdir / "radicale.log", "ab") as log:
        proc = subprocess.Popen(["/usr/bin/python3", "-m", "radicale",
                                 "--config", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 20 * SLOW, proc)
    except (RuntimeError, TimeoutError):
        stop_process(proc)
        raise
    return f"http://127.0.0.1:{port}", proc


def stop_process(proc, grace=10.0):
    """SIGTERM a helper process (a backend, an IdP), SIGKILL it after
    `grace` seconds, and reap it.  None or an exited process is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(cond, timeout=5.0, what="condition"):
    """Poll cond() until truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


# --------------------------------------------------------------- treaty --

def _addr(host, port):
    return f"{host}:{port}"


def _split_addr(value):
    host, _, port = str(value).rpartition(":")
    return host.strip("[]") or LOOPBACK, int(port)


class Treaty:
    """One `treaty serve -c FILE --dev` process.

    config: a dict (dumped as YAML) or YAML text.  Unless given, `listen`
    and `admin` get free loopback ports and `state_dir` / `access_log` go
    under `workdir`.  In text, the placeholders ${listen} ${admin}
    ${state_dir} ${access_log} ${workdir} and any key of `subst` are
    replaced; top-level keys the text lacks are appended.

    stdout/stderr go to workdir/treaty.{stdout,stderr}; every (re)start
    appends, so a restart keeps the earlier output.
    """

    def __init__(self, workdir, config, *, binary=None, dev=True,
                 args=(), env=None, subst=None, ready_timeout=10.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or treaty_binary()
        self.dev = dev
        self.args = list(args)
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout * SLOW
        self.proc = None
        self.exit_code = None
        self.config_path = self.workdir / "treaty.yaml"
        self.stdout_path = self.workdir / "treaty.stdout"
        self.stderr_path = self.workdir / "treaty.stderr"
        self.state_dir = self.workdir / "state"
        self.access_log_path = self.workdir / "access.log"
        self.host = LOOPBACK
        self.port = free_port()
        self.admin_port = free_port()
        self.write_config(config, subst)

    # -- configuration
    def write_config(self, config, subst=None):
        """(Re)write the config file; ports and paths as described above."""
        if isinstance(config, dict):
            cfg = dict(config)
            cfg.setdefault("listen", _addr(self.host, self.port))
            cfg.setdefault("admin", _addr(self.host, self.admin_port))
            cfg.setdefault("state_dir", str(self.state_dir))
            cfg.setdefault("access_log", str(self.access_log_path))
            text = yaml.dump(cfg, Dumper=_NoAliasDumper, sort_keys=False,
                             default_flow_style=False)
        else:
            values = {
                "listen": _addr(self.host, self.port),
                "admin": _addr(self.host, self.admin_port),
                "state_dir": str(self.state_dir),
                "access_log": str(self.access_log_path),
                "workdir": str(self.workdir),
            }
            values.update(subst or {})
            text = str(config)
            for k, v in values.items():
                text = text.replace("${" + k + "}", str(v))
            top = _top_level_keys(text)
            if not text.endswith("\n"):
                text += "\n"
            for k in ("listen", "admin", "state_dir", "access_log"):
                if k not in top:
                    text += f"{k}: {json.dumps(values[k])}\n"
            cfg = _safe_load(text)
        self._read_addresses(cfg)
        self.config_text = text
        self.config_path.write_text(text)
        return self.config_path

    def _read_addresses(self, cfg):
        if not isinstance(cfg, dict):
            return
        if cfg.get("listen"):
            self.host, self.port = _split_addr(cfg["listen"])
        if cfg.get("admin"):
            self.admin_host, self.admin_port = _split_addr(cfg["admin"])
        else:
            self.admin_host, self.admin_port = self.host, None
        if cfg.get("access_log") and cfg["access_log"] != "-":
            self.access_log_path = Path(cfg["access_log"])
        if cfg.get("state_dir"):
            self.state_dir = Path(cfg["state_dir"])

    # -- urls
    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self):
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle
    def command(self):
        cmd = [self.binary, "serve", "-c", str(self.config_path)]
        if self.dev:
            cmd.append("--dev")
        return cmd + self.args

    def start(self, wait=True):
        """Start the process; with wait, block until both ports accept."""
        assert not self.running, "already running"
        env = dict(os.environ)
        env.update(self.env)
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, env=env, cwd=str(self.workdir),
                start_new_session=True)
        if wait:
            try:
                wait_for_port(self.host, self.port, self.ready_timeout,
                              self.proc)
                if self.admin_port:
                    wait_for_port(self.admin_host, self.admin_port,
                                  self.ready_timeout, self.proc)
            except (RuntimeError, TimeoutError) as e:
                if self.running:
                    self.proc.kill()
                    self.proc.wait()
                self.exit_code = self.proc.returncode
                self.proc = None  # nothing left for stop() to check
                raise RuntimeError(f"treaty did not start: {e}\n"
                                   f"--- stderr ---\n{self.stderr()}"
                                   f"--- config ---\n{self.config_text}")
        return self

    def wait_ready(self, timeout=10.0):
        """Poll the admin /readyz until it answers 200."""
        import requests

        def ready():
            try:
                return requests.get(self.admin_url + "/readyz",
                                    timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout * SLOW, "treaty /readyz 200")
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20.0, expect_code=0):
        """SIGTERM, wait, assert the exit code and a clean stderr.

        Returns the exit code.  Asserts `expect_code` (None: any) and that
        stderr holds no sanitizer report.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"treaty ignored SIGTERM for {timeout * SLOW}s\n"
                    f"--- stderr ---\n{self.stderr()}")
        code = self.exit_code = self.proc.returncode
        self.assert_no_sanitizer_report()
        if expect_code is not None:
            assert code == expect_code, (
                f"treaty exited with {code}, expected {expect_code}\n"
                f"--- stderr ---\n{self.stderr()}")
        return code

    def kill9(self):
        """SIGKILL and reap: a crash, as far as treaty can tell."""
        if self.running:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self, config=None, subst=None, kill=False):
        """Stop (SIGTERM, or SIGKILL with kill=True) and start again on the
        same ports and state_dir, optionally with a new config."""
        if kill:
            self.kill9()
        else:
            self.stop()
        if config is not None:
            self.write_config(config, subst)
        # The old listening sockets may linger for an instant.
        return self.start()

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            # Do not mask the test's own failure with a shutdown assertion.
            try:
                self.stop(expect_code=None)
            except AssertionError:
                pass
        return False

    # -- output
    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def assert_no_sanitizer_report(self):
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, (
                f"sanitizer report in treaty stderr:\n{err}")

    def log_lines(self):
        """treaty's structured log (stderr), one dict per line: JSON lines
        or logfmt (`ts=... level=info event=x key="quoted value"`)."""
        return _log_lines(self.stderr())

    def access_log_lines(self, wait_for=0, timeout=5.0):
        """The access log, one dict per JSON line.

        With wait_for=N, polls until at least N lines are there (the log is
        written off the event loop and may trail the response a little).
        """
        def read():
            try:
                text = self.access_log_path.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            lines = [json.loads(x) for x in text.splitlines() if x.strip()]
            return lines

        if wait_for:
            wait_until(lambda: len(read()) >= wait_for, timeout * SLOW,
                       f"{wait_for} access log lines")
        return read()

    # -- convenience
    def request(self, method, path, **kw):
        """requests.request against the gateway; timeout defaults to 10 s."""
        import requests
        kw.setdefault("timeout", 10 * SLOW)
        return requests.request(method, self.url + path, **kw)

    def admin(self, path, **kw):
        import requests
        kw.setdefault("timeout", 10 * SLOW)
        return requests.get(self.admin_url + path, **kw)

    def metrics(self):
        """Prometheus text of /metrics as {"name{labels}": float}."""
        out = {}
        for line in self.admin("/metrics").text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, val = line.rpartition(" ")
            try:
                out[key] = float(val)
            except ValueError:
                pass
        return out


class _NoAliasDumper(yaml.SafeDumper):
    """treaty refuses YAML aliases by design; a test that reuses one
    Python object twice must still produce a config it accepts."""

    def ignore_aliases(self, data):
        return True


def _safe_load(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # deliberately broken config: addresses stay as filled


def _top_level_keys(text):
    keys = set()
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            k, sep, _ = line.partition(":")
            if sep:
                keys.add(k.strip().strip("\"'"))
    return keys


_LOGFMT = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _log_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
            continue
        pairs = _LOGFMT.findall(line)
        if pairs:
            rec = {}
            for k, v in pairs:
                if v.startswith('"'):
                    try:
                        v = json.loads(v)
                    except ValueError:
                        v = v[1:-1]
                rec[k] = v
            out.append(rec)
    return out


def proxy_config(upstream_url, *, methods=None, path="/{rest...}",
                 auth="none", route_name="all", **top):
    """A minimal config dict: one upstream `backend`, one route to it
    (every method unless `methods` lists some).

    Extra keyword arguments become top-level keys (e.g. identity=...).
    Route fields beyond the basics: pass routes=[...] yourself.
    """
    match = {"path": path}
    if methods is not None:
        match["methods"] = list(methods)
    route = {"name": route_name, "match": match, "upstream": "backend",
             "auth": auth}
    cfg = {"upstreams": {"backend": {"url": upstream_url}},
           "routes": [route]}
    cfg.update(top)
    return cfg


# ------------------------------------------------------ scripted backend --

class Recorded:
    """One request as the backend saw it."""

    def __init__(self, method, target, version, headers, body, conn_id,
                 expect_100):
        self.method = method
        self.target = target            # raw request target
        self.path, _, self.query = target.partition("?")
        self.version = version
        self.header_list = headers      # [(name, value)] in wire order
        self.headers = _CIDict(headers)
        self.body = body
        self.conn_id = conn_id          # which backend connection
        self.expect_100 = expect_100
        self.time = time.monotonic()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Recorded {self.method} {self.target} {len(self.body)}B>"


class _CIDict(dict):
    """Case-insensitive header view; repeated fields joined by ', '.

    get_all(name) returns every value in order.
    """

    def __init__(self, pairs):
        super().__init__()
        self._all = {}
        for k, v in pairs:
            lk = k.lower()
            self._all.setdefault(lk, []).append(v)
            dict.__setitem__(self, lk, ", ".join(self._all[lk]))

    def __getitem__(self, k):
        return dict.__getitem__(self, k.lower())

    def __contains__(self, k):
        return dict.__contains__(self, k.lower())

    def get(self, k, default=None):
        return dict.get(self, k.lower(), default)

    def get_all(self, k):
        return list(self._all.get(k.lower(), []))


class Rule:
    """What the backend does for a matching request.

    status, headers, body      the response (body: bytes, str, or a dict /
                               list sent as JSON); default is a JSON echo of
                               the request
    body_size                  instead of body: N deterministic bytes
    handler                    callable(Recorded) -> (status, headers, body)
    delay                      seconds before answering
    chunked, chunk_size,       send the body as chunks (Transfer-Encoding:
    chunk_delay                chunked if chunked=True), pausing between them
    gzip                       gzip the body, set Content-Encoding
    raw                        bytes written verbatim instead of a response
    action                     'close' (FIN after reading the request, no
                               answer) or 'reset' (RST after reading it)
    reset_after / close_after  send this many bytes of the response, then
                               RST / FIN
    keep_alive                 False: answer with Connection: close
    no_continue                on Expect: 100-continue, answer at once
                               without reading the body, then close
    times                      match this many times, then fall through
    """

    def __init__(self, method=None, path=None, *, status=200, headers=None,
                 body=None, body_size=None, handler=None, delay=0.0,
                 chunked=False, chunk_size=16384, chunk_delay=0.0,
                 gzip=False, raw=None, action=None, reset_after=None,
                 close_after=None, keep_alive=True, no_continue=False,
                 times=None):
        if action not in (None, "close", "reset"):
            raise ValueError(f"unknown action {action!r}")
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.body_size = body_size
        self.handler = handler
        self.delay = delay
        self.chunked = chunked
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.gzip = gzip
        self.raw = raw
        self.action = action
        self.reset_after = reset_after
        self.close_after = close_after
        self.keep_alive = keep_alive
        self.no_continue = no_continue
        self.times = times

    def matches(self, method, path):
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.path is None:
            return True
        if callable(self.path):
            return self.path(path)
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def pattern_bytes(n):
    """n deterministic bytes (a repeating printable pattern)."""
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    reps = n // len(unit) + 1
    return (unit * reps)[:n]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-backend"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.backend.idle_timeout
        super().setup()
        self.backend = self.server.backend
        self.conn_id = self.backend._new_connection(self.connection)
        self.rule = None
        self.sent_continue = False

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.backend._drop_connection(self.connection)

    def log_message(self, fmt, *args):
        pass

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            self.rule = None
            self.sent_continue = False
            if not self.parse_request():
                return
            self._serve()
            if not self.close_connection:
                self.wfile.flush()
        except OSError:
            # Timeouts, resets and broken pipes: the peer (treaty) closed
            # or stalled; the connection is over, nothing to report.
            self.close_connection = True

    def handle_expect_100(self):
        path = self.path.partition("?")[0]
        self.rule = self.backend._take_rule(self.command, path)
        if self.rule is not None and self.rule.no_continue:
            return True  # answer without reading the body (see _serve)
        self.sent_continue = True
        return super().handle_expect_100()

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                             b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        b = self.backend
        path = self.path.partition("?")[0]
        rule = self.rule
        if rule is None and not self.sent_continue:
            rule = b._take_rule(self.command, path)
        skip_body = (rule is not None and rule.no_continue and
                     (self.headers.get("Expect") or "").lower() ==
                     "100-continue")
        body = b"" if skip_body else self._read_body()
        rec = Recorded(self.command, self.path, self.request_version,
                       list(self.headers.items()), body, self.conn_id,
                       self.sent_continue)
        b._enter(rec)
        try:
            self._respond(rule or Rule(), rec)
            if skip_body:
                self.close_connection = True
        finally:
            b._leave()

    def _respond(self, rule, rec):
        if rule.delay:
            time.sleep(rule.delay)
        sock = self.connection
        if rule.action == "close":
            sock.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if rule.action == "reset":
            _reset(sock)
            self.close_connection = True
            return
        if rule.raw is not None:
            data = rule.raw
            self.close_connection = not rule.keep_alive
            return self._send(data, rule)

        if rule.handler is not None:
            status, headers, body = rule.handler(rec)
            headers = dict(headers or {})
        else:
            status, headers = rule.status, dict(rule.headers)
            if rule.body_size is not None:
                body = pattern_bytes(rule.body_size)
            elif rule.body is None:
                body = {"method": rec.method, "path": rec.path,
                        "query": rec.query,
                        "headers": rec.header_list,
                        "body": rec.body.decode("utf-8", "replace")}
            else:
                body = rule.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if rule.gzip:
            body = gzip_mod.compress(body)
            headers["Content-Encoding"] = "gzip"

        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lower = {k.lower() for k in headers}
        no_body = rec.method == "HEAD" or status in (204, 304) or \
            100 <= status < 200
        if rule.chunked:
            headers.setdefault("Transfer-Encoding", "chunked")
        elif "content-length" not in lower and status not in (204, 304) \
                and not 100 <= status < 200:
            headers["Content-Length"] = str(len(body))
        if not rule.keep_alive or self.close_connection:
            headers["Connection"] = "close"
            self.close_connection = True
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if no_body:
            return self._send(head, rule)

        pieces = []
        step = max(1, rule.chunk_size)
        for i in range(0, len(body), step):
            part = body[i:i + step]
            pieces.append(b"%x\r\n%s\r\n" % (len(part), part)
                          if rule.chunked else part)
        if rule.chunked:
            pieces.append(b"0\r\n\r\n")
        if not rule.chunk_delay:
            pieces = [b"".join(pieces)]
        self._send(head, rule, pieces)

    def _send(self, head, rule, pieces=()):
        """Write head then pieces, honouring reset_after / close_after."""
        limit = rule.reset_after if rule.reset_after is not None \
            else rule.close_after
        sent = 0
        for i, data in enumerate([head] + list(pieces)):
            if i > 1 and rule.chunk_delay:
                time.sleep(rule.chunk_delay)
            if limit is not None and sent + len(data) >= limit:
                self.wfile.write(data[:limit - sent])
                self.wfile.flush()
                if rule.reset_after is not None:
                    _reset(self.connection)
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(data)
            self.wfile.flush()
            sent += len(data)


def _reset(sock):
    """Close with RST: SO_LINGER on with a zero timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def _reason(status):
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Kept for the test to inspect (backend.errors), not printed from
        # a server thread into some other test's output.
        import traceback
        with self.backend._lock:
            self.backend.errors.append(traceback.format_exc())


class ScriptedBackend:
    """A threaded HTTP/1.1 backend on a free loopback port.

    Every request is recorded (see Recorded); `count(method, path)` counts
    them, `peak` is the highest number answered at once, `connections` the
    TCP connections accepted, `errors` the tracebacks of requests the
    backend itself failed on (a malformed chunked body, say).  Behaviour is scripted with `script(...)`
    (arguments as for Rule): rules are tried in the order they were added,
    a rule with `times=N` is used N times and then falls through, and a
    request no rule matches gets 200 with a JSON echo of itself.

    idle_timeout: seconds an idle keep-alive connection is kept (None: for
    ever), e.g. 5 to behave like json-server.
    """

    def __init__(self, host=LOOPBACK, port=0, idle_timeout=None):
        self.host = host
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._rules = []
        self._socks = set()
        self.requests = []
        self.errors = []        # tracebacks of requests it could not parse
        self.in_flight = 0
        self.peak = 0
        self.connections = 0
        self._server = _Server((host, port), _Handler)
        self._server.backend = self
        self.port = self._server.server_address[1]
        self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is None:
            return
        self._server.shutdown()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(5)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- scripting
    def script(self, path=None, method=None, **kw):
        """Add a rule (see Rule); returns it.  path may end in '*' for a
        prefix, or be a callable(path) -> bool."""
        rule = Rule(method, path, **kw)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_script(self):
        with self._lock:
            self._rules.clear()

    def _take_rule(self, method, path):
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    # -- bookkeeping
    def _new_connection(self, sock):
        with self._lock:
            self.connections += 1
            self._socks.add(sock)
            return self.connections

    def _drop_connection(self, sock):
        with self._lock:
            self._socks.discard(sock)

    def _enter(self, rec):
        with self._cond:
            self.requests.append(rec)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._cond.notify_all()

    def _leave(self):
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def count(self, method=None, path=None):
        """Requests seen, optionally only those with this method / path."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and
                       (path is None or r.path == path))

    def counts(self):
        """{(method, path): n} over every request seen."""
        out = {}
        with self._lock:
            for r in self.requests:
                out[(r.method, r.path)] = out.get((r.method, r.path), 0) + 1
        return out

    def last(self):
        with self._lock:
            return self.requests[-1] if self.requests else None

    def wait_for_requests(self, n, timeout=5.0):
        """Block until at least n requests arrived; return them."""
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"backend saw {len(self.requests)} of {n} requests")
                self._cond.wait(left)
            return list(self.requests)

    def wait_idle(self, timeout=5.0):
        """Block until no request is being answered."""
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while self.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.in_flight} still in flight")
                self._cond.wait(left)

    def reset_stats(self):
        with self._lock:
            self.requests = []
            self.peak = self.in_flight
            self.connections = len(self._socks)


# ------------------------------------------------------------ json-server --

class JsonServer:
    """node_modules/.bin/json-server 0.17.4 on a fresh copy of a db file.

    db: a file name under tests/integration/data/, or a path.  The copy
    lives in workdir; json-server rewrites it on every change, so db()
    shows the backend's state.  Note json-server closes idle keep-alive
    connections after 5 s (Node's default).
    """

    def __init__(self, workdir, db="calendar.json", *, port=None,
                 args=(), ready_timeout=20.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        src = Path(db)
        if not src.is_absolute() and not src.exists():
            src = DATA_DIR / db
        self.db_path = self.workdir / src.name
        shutil.copyfile(src, self.db_path)
        self.bin = REPO / "node_modules" / ".bin" / "json-server"
        if not self.bin.exists():
            raise RuntimeError(f"{self.bin} missing: run scripts/install-deps")
        self.host = LOOPBACK
        self.port = port or free_port()
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.log_path = self.workdir / f"json-server-{self.port}.log"
        self.proc = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin), str(self.db_path), "--host", self.host,
                 "--port", str(self.port), "--quiet"] + self.args,
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=str(self.workdir),
                start_new_session=True)
        try:
            wait_for_port(self.host, self.port, self.ready_timeout,
                          self.proc)
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            raise RuntimeError(f"json-server did not start: {e}\n"
                               f"{self.log_path.read_text()}")
        return self

    def stop(self):
        stop_process(self.proc, 10)
        self.proc = None

    def db(self):
        """The db file as json-server last saved it (it saves after
        answering, so poll with wait_until for a change to show)."""
        for _ in range(50):
            try:
                return json.loads(self.db_path.read_text())
            except ValueError:
                time.sleep(0.01)  # caught mid-write
        return json.loads(self.db_path.read_text())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------- tokens --

def _act_claim(act):
    """'a' -> {"sub": "a"}; ['a', 'b'] -> {"sub": "a", "act": {"sub": "b"}}.

    The first name is the current (outermost) actor, as SPEC.md's chain
    order has it; `treaty token mint --act A,B` means the same.
    """
    if act is None:
        return None
    names = [act] if isinstance(act, str) else list(act)
    claim = None
    for name in reversed(names):
        claim = {"sub": name, **({"act": claim} if claim else {})}
    return claim


def mint_token(sub, act=None, scope=None, client=None, ttl=300, *,
               binary=None, dev_keys=None, issuer=None, aud=None, typ=None,
               **claims):
    """A token from `treaty token mint` (the real dev-key signer).

    act: a name or a list (current actor first); scope: a string or list;
    aud: a string or list; other keyword arguments become `--claim k=v`
    for strings and `--claim-json k=JSON` otherwise (which also overrides
    iat, exp, ...).  dev_keys defaults to examples/dev-keys.
    """
    cmd = [binary or treaty_binary(), "token", "mint", "--sub", sub,
           "--ttl", str(ttl), "--dev-keys", str(dev_keys or DEV_KEYS)]
    if act is not None:
        cmd += ["--act", act if isinstance(act, str) else ",".join(act)]
    if scope is not None:
        cmd += ["--scope", scope if isinstance(scope, str) else
                " ".join(scope)]
    if client is not None:
        cmd += ["--client", client]
    if issuer is not None:
        cmd += ["--issuer", issuer]
    for a in ([aud] if isinstance(aud, str) else aud or []):
        cmd += ["--aud", a]
    if typ is not None:
        cmd += ["--typ", typ]
    for k, v in claims.items():
        if isinstance(v, str):
            cmd += ["--claim", f"{k}={v}"]
        else:
            cmd += ["--claim-json", f"{k}={json.dumps(v)}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}:\n"
                           f"{res.stderr}")
    return res.stdout.strip()


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(path=None):
    """A PEM private key; default examples/dev-keys/es256.pem."""
    from cryptography.hazmat.primitives import serialization
    p = Path(path) if path else DEV_KEYS / "es256.pem"
    return serialization.load_pem_private_key(p.read_bytes(), password=None)


def dev_claims(sub, act=None, scope=None, client=None, ttl=300, now=None,
               iss=DEV_ISS, aud=DEV_AUD, **extra):
    """The claims `treaty token mint` puts in (iss sub aud iat exp jti,
    then client_id, scope, act), as a dict to tamper with.  Keyword
    arguments add claims (nbf=..., consent_id=...); a value of None
    removes one (exp=None)."""
    now = int(time.time() if now is None else now)
    c = {"iss": iss, "sub": sub, "aud": aud, "iat": now,
         "exp": now + ttl, "jti": os.urandom(16).hex()}
    if act is not None:
        c["act"] = _act_claim(act)
    if scope is not None:
        c["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    if client is not None:
        c["client_id"] = client
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def _jws_signature(alg, key, signing_input):
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import \
        decode_dss_signature

    if alg == "none":
        return b""
    if alg.startswith("HS"):
        h = hmac.HMAC(key, {"HS256": hashes.SHA256(),
                            "HS384": hashes.SHA384(),
                            "HS512": hashes.SHA512()}[alg])
        h.update(signing_input)
        return h.finalize()
    if alg == "EdDSA":
        return key.sign(signing_input)
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(),
              "512": hashes.SHA512()}[alg[2:]]
    if alg.startswith("ES"):
        der = key.sign(signing_input, ec.ECDSA(digest))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), digest)
    if alg.startswith("PS"):
        return key.sign(signing_input,
                        padding.PSS(mgf=padding.MGF1(digest),
                                    salt_length=digest.digest_size),
                        digest)
    raise ValueError(f"unsupported alg {alg}")


def jwt_sign(claims, *, key=None, alg="ES256", kid=DEV_KID, typ="at+jwt",
             header=None, signature=None):
    """A compact JWS over exactly the bytes given, for crafting bad tokens.

    claims / header: dict (JSON-encoded compactly) or str/bytes used
    verbatim (duplicate keys, odd spacing).  header=None builds
    {"alg", "typ", "kid"} (typ / kid omitted when None).  key: a
    cryptography private key, HMAC secret bytes, or None for the dev ES256
    key.  signature: bytes to use instead of signing (b"" for empty).
    """
    if header is None:
        header = {"alg": alg}
        if typ is not None:
            header["typ"] = typ
        if kid is not None:
            header["kid"] = kid
    h = header if isinstance(header, (str, bytes)) else \
        json.dumps(header, separators=(",", ":"))
    p = claims if isinstance(claims, (str, bytes)) else \
        json.dumps(claims, separators=(",", ":"))
    signing_input = f"{b64url(h)}.{b64url(p)}".encode()
    if signature is None:
        if key is None and alg not in ("none",):
            key = load_private_key()
        signature = _jws_signature(alg, key, signing_input)
    return signing_input.decode() + "." + b64url(signature)


def py_mint(sub, act=None, scope=None, client=None, ttl=300, *, key=None,
            alg="ES256", kid=DEV_KID, typ="at+jwt", **extra):
    """The pure-Python twin of mint_token (dev ES256 key by default): same
    header (alg, typ at+jwt, kid) and claims; `extra` as in dev_claims."""
    return jwt_sign(dev_claims(sub, act, scope, client, ttl, **extra),
                    key=key, alg=alg, kid=kid, typ=typ)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# ----------------------------------------------------------- raw sockets --

def raw_request(host, port, data, read_timeout=2.0, *, half_close=False,
                max_bytes=16 << 20):
    """Send bytes, return every byte read until EOF or read_timeout
    seconds of silence.  half_close=True shuts down our write side after
    sending (some servers answer only then)."""
    chunks = []
    total = 0
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(read_timeout * SLOW)
        while total < max_bytes:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            total += len(b)
    return b"".join(chunks)


class RawResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = _CIDict(headers)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<RawResponse {self.status} {len(self.body)}B>"


def _parse_one(data, pos, is_head, eof):
    """(RawResponse, next_pos) for the response at pos, or None when the
    bytes so far do not hold all of it."""
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = data[pos:end].decode("latin-1").split("\r\n")
    version, status, reason = (lines[0].split(" ", 2) + ["", ""])[:3]
    status = int(status)
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k, v.strip()))
    h = _CIDict(headers)
    pos = end + 4
    if 100 <= status < 200 or status in (204, 304) or is_head:
        body = b""
    elif "chunked" in (h.get("transfer-encoding") or "").lower():
        body = bytearray()
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(data[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                tend = data.find(b"\r\n\r\n", pos - 2)
                if tend < 0:
                    return None
                pos = tend + 4
                break
            if pos + size + 2 > len(data):
                return None
            body += data[pos:pos + size]
            pos += size + 2
        body = bytes(body)
    elif h.get("content-length") is not None:
        n = int(h["content-length"])
        if pos + n > len(data):
            return None
        body = data[pos:pos + n]
        pos += n
    else:
        if not eof:
            return None
        body = data[pos:]
        pos = len(data)
    return RawResponse(version, status, reason, headers, body), pos


def parse_responses(data, head_only=()):
    """Split raw bytes (a whole exchange, read to EOF) into RawResponse
    objects: Content-Length, chunked or read-to-EOF framing; 1xx interim
    responses included.  head_only: indexes of the responses that answer a
    HEAD (no body).  Bytes that do not form a whole response raise
    ValueError."""
    out = []
    pos = 0
    while pos < len(data):
        got = _parse_one(data, pos, len(out) in head_only, eof=True)
        if got is None:
            raise ValueError(f"incomplete response at byte {pos}: "
                             f"{data[pos:pos + 80]!r}")
        resp, pos = got
        out.append(resp)
    return out


class RawConn:
    """A kept-open client socket for pipelining and slow-sending tests.

    recv_responses() keeps bytes beyond the responses it returns for the
    next call, so interim (1xx) and final responses can be read in steps.
    """

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_until_closed(self, max_bytes=16 << 20):
        chunks = [self.buf]
        self.buf = b""
        while sum(map(len, chunks)) < max_bytes:
            try:
                b = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)

    def recv_responses(self, n, head_only=(), interim=False):
        """Read until n responses are complete and return them (plus any
        1xx before the n-th final one).  interim=True counts 1xx
        responses towards n.  head_only: indexes, within this call, of
        responses to HEAD."""
        out = []
        pos = 0
        while True:
            while True:
                got = _parse_one(self.buf, pos, len(out) in head_only,
                                 eof=False)
                if got is None:
                    break
                resp, pos = got
                out.append(resp)
                counted = [r for r in out if interim or r.status >= 200]
                if len(counted) >= n:
                    self.buf = self.buf[pos:]
                    return out
            b = self.sock.recv(65536)
            if not b:
                raise ConnectionError(
                    f"closed after {len(self.buf)} bytes: "
                    f"{self.buf[:200]!r}")
            self.buf += b

    def closed_by_peer(self, timeout=2.0):
        """True if the peer closes (EOF or RST) within timeout seconds."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


__all__ = [
    "REPO", "DATA_DIR", "DEV_KEYS", "DEV_KID", "DEV_ISS", "DEV_AUD",
    "SANITIZER", "SLOW", "treaty_binary", "free_port", "port_open",
    "wait_for_port", "wait_until", "Treaty", "proxy_config",
    "ScriptedBackend", "Rule", "Recorded", "pattern_bytes", "JsonServer",
    "mint_token", "py_mint", "jwt_sign", "dev_claims", "load_private_key",
    "b64url", "b64url_decode", "bearer", "raw_request", "parse_responses",
    "RawResponse", "RawConn",
]
