#!/usr/bin/python3
"""Event-loop lag probe for bench/jwks_refresh: one keep-alive connection,
one GET every INTERVAL_MS (fixed schedule, not back to back), for
SECONDS; prints one JSON line with the latency percentiles in ms.

    jwks_lag_probe.py HOST PORT TOKEN SECONDS [INTERVAL_MS]
"""

import http.client
import json
import statistics
import sys
import time


def main():
    host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seconds = float(sys.argv[4])
    interval = float(sys.argv[5] if len(sys.argv) > 5 else 2) / 1000.0
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Authorization": "Bearer " + token}
    lat, errors = [], 0
    start = time.monotonic()
    nxt = start
    while time.monotonic() - start < seconds:
        pause = nxt - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        nxt += interval
        t0 = time.monotonic()
        try:
            conn.request("GET", "/probe", headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            continue
        lat.append((time.monotonic() - t0) * 1000.0)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p / 100.0))]
    print(json.dumps({
        "requests": len(lat), "errors": errors,
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(pct(99), 3), "p999_ms": round(pct(99.9), 3),
        "max_ms": round(lat[-1], 3)}))


if __name__ == "__main__":
    main()
