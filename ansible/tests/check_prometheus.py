#!/usr/bin/env python3
"""What the fleet's Prometheus saw of a run, against what the run's report says.

Runs on the monitor host (Prometheus listens on its loopback), stdlib only:

  check_prometheus.py --start S --end E --server-qps Q --client-qps C
                      [--up JOB:HOST,...] [--dashboard FILE] [--tolerance-pct 2]

S and E are the phase's start and end (Unix seconds, report.json's phases[].start and
.end), Q and C the report's server shake QPS and client sent QPS of that phase. It:
  - checks every JOB:HOST listed was scraped (`up` was 1) during the phase;
  - takes the raw samples of the servers' `redpacket_requests_shake_total` and the load
    generators' `redpacket_loadgen_requests_total{kind="shake"}` over the phase's inner
    seconds (a second in from each end, where the rate is steady), each series' rate from
    its first and last sample and their scrape times, summed over series; each must
    agree with the report within the tolerance;
  - with --dashboard, evaluates every target expression of the Grafana dashboard at the
    phase's middle (its $__rate_interval as 10s): each must return data.
Prints one line per figure and exits 0, or 1 naming what disagrees.
"""
import argparse
import json
import sys
import urllib.parse
import urllib.request

PROM = "http://127.0.0.1:9090"


def query(expr, at):
    url = PROM + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": "%.3f" % at})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError("%s: %s" % (expr, body))
    return body["data"]["result"]


def inner_rate(selector, start, end):
    """Sum over series of (last - first) / (t_last - t_first), samples in [start, end]."""
    window = end - start
    total, series = 0.0, 0
    for s in query("%s[%ds]" % (selector, int(window)), end):
        pts = [(float(t), float(v)) for t, v in s["values"] if start <= float(t) <= end]
        if len(pts) < 2 or pts[-1][1] == pts[0][1]:
            continue
        total += (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
        series += 1
    return total, series


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--server-qps", type=float, required=True)
    ap.add_argument("--client-qps", type=float, required=True)
    ap.add_argument("--up", default="")
    ap.add_argument("--dashboard")
    ap.add_argument("--tolerance-pct", type=float, default=2.0)
    a = ap.parse_args()
    failed = []
    span = a.end - a.start
    for pair in filter(None, a.up.split(",")):
        job, host = pair.split(":")
        r = query('max_over_time(up{job="%s",host="%s"}[%ds])' % (job, host, int(span)), a.end)
        if not r or float(r[0]["value"][1]) != 1.0:
            failed.append("%s on %s was not scraped during the phase (%s)" % (job, host, r))
    print("targets up during the phase: %s" % (a.up or "(none asked)"))
    lo, hi = a.start + 1.0, a.end - 1.0
    for name, selector, want in [
        ("server shake rate", 'redpacket_requests_shake_total{job="redpacket-server"}', a.server_qps),
        ("client shake rate", 'redpacket_loadgen_requests_total{job="redpacket-loadgen",kind="shake"}', a.client_qps),
    ]:
        got, series = inner_rate(selector, lo, hi)
        off = 100.0 * (got - want) / want if want else float("inf")
        print("%s: Prometheus %.1f/s (%d series) vs report %.1f/s: %+.2f %%" % (name, got, series, want, off))
        if series == 0 or abs(off) > a.tolerance_pct:
            failed.append("%s: Prometheus %.1f/s vs report %.1f/s (%+.2f %%, allowed %.1f %%)"
                          % (name, got, want, off, a.tolerance_pct))
    if a.dashboard:
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
        n = 0
        for panel in dash["panels"]:
            for t in panel.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "10s")
                if not query(expr, (a.start + a.end) / 2):
                    failed.append("dashboard panel %r: %s returned nothing" % (panel["title"], expr))
                n += 1
        print("dashboard: %d expressions evaluated, %d without data" % (n, sum("dashboard" in f for f in failed)))
    for f in failed:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
