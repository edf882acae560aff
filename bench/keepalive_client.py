"""Send N GET requests, one after another, on one keep-alive connection.

  keepalive_client.py PORT N [PATH]

Exits non-zero unless every answer is 200.  Used by bench/callgrind, where
an exact request count (not a duration) makes the instruction total
repeatable.
"""

import http.client
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/bench"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    reconnects = 0
    for i in range(n):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            print(f"request {i}: status {resp.status}", file=sys.stderr)
            return 1
        if resp.will_close:
            reconnects += 1
            conn.close()
    conn.close()
    if reconnects:
        print(f"note: server closed the connection {reconnects} times",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
