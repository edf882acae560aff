"""GET at a fixed rate on one keep-alive connection; print latencies.

  paced_reads.py PORT RATE SECONDS [PATH]

Request i is due at start + i / RATE.  Its latency runs from when it was
due (not when it was sent), so a stall that delays the following requests
counts against all of them, as a user would feel it.  Prints one JSON
line: sent, non200, p50_ms, p99_ms, max_ms.  Used by bench/audit to see
what a read costs while mutations are written to the audit trail.
"""

import http.client
import json
import sys
import time


def main():
    port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), \
        float(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/bench"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat, non200 = [], 0
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            non200 += 1
        if resp.will_close:
            conn.close()
        lat.append((time.perf_counter() - due) * 1000.0)
    conn.close()
    lat.sort()
    print(json.dumps({
        "sent": n, "non200": non200,
        "p50_ms": round(lat[len(lat) // 2], 3),
        "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 3),
        "max_ms": round(lat[-1], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
