"""Checks a fleet run's collected folder: every host's files, each instance's money
ledger, the clients' cents against the servers', run.json's failed hosts and restarts.

    python3 check_run.py RUN_DIR --servers srv1:2,srv2:1 --clients cli1,cli2
        [--killed-instance srv2:1] [--killed-client cli3] [--unreachable cli2]

Without faults: every instance's ledger balances and issued packets, the clients won
and grabbed exactly the cents the servers paid, run.json names no failed host; in
report.json every loaded phase's client sent and answered rates are within 1 % of the
achieved total, client got within 1 % of server won, the client's per-second CV within
3 points of the server's, and the verdict is what run.json's thresholds say: passed.
--killed-instance HOST:I: that instance was killed and restarted by systemd: its
starts.jsonl records a lost life, run.json's restarts and failed_hosts name it, the
report says its money cannot be reconciled; every other instance still balances.
--killed-client HOST: that host's load generator was killed: its partial per-second
records arrived without summary.json, failed_hosts names it, the report says so; the
servers' ledgers still balance and the other clients' cents do not exceed theirs.
--unreachable HOST: that client never answered (alone, or beside a killed instance or
client): run.json's failed_hosts says it did not answer before the run and its hosts
entry has no clock reading, no folder of it exists, the report says it has none, and the
live view never counted it; the rest is checked as above without it.
Always: every host that answered has its clock's offset and round trip in run.json
(the test fleets' hosts share this machine's clock, so each offset is within half its
round trip), and run.json's thresholds are the role defaults' (redpacket_thresholds, and
each phase's own from redpacket_phases): the test inventories set neither.
Exit 0 when all holds, 1 with the first thing that does not.
"""

import argparse
import json
import math
import pathlib
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--servers", required=True, help="HOST:INSTANCES,...")
    ap.add_argument("--clients", required=True, help="HOST,...")
    ap.add_argument("--killed-instance", default="")
    ap.add_argument("--killed-client", default="")
    ap.add_argument("--unreachable", default="")
    a = ap.parse_args()
    d = pathlib.Path(a.run_dir)
    servers = [(h, int(k)) for h, k in (s.split(":") for s in a.servers.split(","))]
    clients = [c for c in a.clients.split(",") if c]
    killed = tuple(a.killed_instance.split(":")) if a.killed_instance else None
    run = json.loads((d / "run.json").read_text())
    report = (d / "report.md").read_text()
    assert (d / "report.html").is_file(), "no report.html"

    won = grabbed = 0
    for host, k in servers:
        for i in range(1, k + 1):
            inst = d / host / ("instance-%d" % i)
            s = json.loads((inst / "server-summary.json").read_text())
            assert s["shake_balanced"] and s["send_balanced"], "%s#%d: ledger does not balance" % (host, i)
            if killed == (host, str(i)):
                starts = [json.loads(x) for x in (inst / "starts.jsonl").read_text().splitlines() if x.strip()]
                assert len(starts) >= 2 and starts[-1]["previous"] == "lost", "%s#%d starts: %s" % (host, i, starts)
                assert s["lives_lost"] >= 1, "%s#%d: summary counts no lost life" % (host, i)
                continue
            assert s["stats"]["shake"]["issued"] > 0, "%s#%d issued no shake packet" % (host, i)
            assert s["stats"]["connections"]["logins"] > 0, "%s#%d saw no login" % (host, i)
            won += s["stats"]["shake"]["won_cents"]
            grabbed += s["stats"]["send"]["grabbed_cents"]
    cw = cg = 0
    for c in clients:
        if c in (a.killed_client, a.unreachable):
            continue
        m = json.loads((d / c / "summary.json").read_text())["money"]
        cw += m["client_won_cents"]
        cg += m["client_grabbed_cents"]
    failed = run.get("failed_hosts") or {}
    if killed:
        host, i = killed
        assert int(run.get("restarts", {}).get(host, {}).get(i, 0)) >= 1, "run.json restarts: %s" % run.get("restarts")
        assert host in failed and "restarted by systemd" in failed[host], failed
        assert "%s instance %s: restarted after being killed" % (host, i) in report, "report does not name the lost ledger"
        assert "cannot be reconciled" in report
        print("killed %s#%s: restarted by systemd, its lost life recorded and reported; the other instances balance" % (host, i))
    elif a.killed_client:
        c = a.killed_client
        assert (d / c / "loadgen.jsonl").stat().st_size > 0, "%s: partial records not collected" % c
        assert not (d / c / "summary.json").exists(), "%s has a summary although killed" % c
        assert c in failed and "load generator failed" in failed[c], failed
        assert sorted(failed) == sorted(h for h in (c, a.unreachable) if h), "failed hosts: %s" % failed
        assert "host %s: the load generator stopped before its end" % c in report, "report does not name %s" % c
        assert 0 < cw <= won and cg <= grabbed, "clients %d/%d vs servers %d/%d" % (cw, cg, won, grabbed)
        print("killed %s's load generator: partial files collected, named; servers balance; "
              "the others won %d of the %d cents paid" % (c, cw, won))
    else:
        assert won > 0, "nothing won"
        assert (cw, cg) == (won, grabbed), "clients won %d and grabbed %d cents, servers %d and %d" % (cw, cg, won, grabbed)
        expect = [a.unreachable] if a.unreachable else []
        assert sorted(failed) == expect, "failed hosts: %s" % failed
        print("money: every instance balanced; clients' won %d and grabbed %d cents equal the servers'" % (won, grabbed))
        check_phases(d, run)
    if a.unreachable:
        check_unreachable(d, run, report, a.unreachable)
    check_live(d, run, len(servers) + len(clients) - (1 if a.unreachable else 0), a.killed_client)
    check_clocks(run, [h for h, _ in servers] + clients, a.unreachable)
    check_thresholds(run)
    for h, _ in servers:
        assert (d / h).is_dir(), "files of %s did not arrive" % h
    for c in clients:
        if c != a.unreachable:
            assert (d / c / "loadgen.jsonl").is_file(), "files of %s did not arrive" % c
    return 0


def check_unreachable(d, run, report, host):
    """A client that never answered: named in run.json's failed_hosts as not answering
    before the run, listed among its hosts without a clock reading, no folder, named in
    the report as having none."""
    why = (run.get("failed_hosts") or {}).get(host)
    assert why and why.startswith("did not answer before the run"), "failed_hosts[%s]: %r" % (host, why)
    entry = [h for h in run["hosts"] if isinstance(h, dict) and h["name"] == host]
    assert len(entry) == 1, "run.json hosts lists %s %d time(s)" % (host, len(entry))
    assert "clock_offset_ms" not in entry[0] and "clock_rtt_ms" not in entry[0], "%s has a clock reading: %s" % (host, entry[0])
    assert not (d / host).exists(), "%s has a folder although it never answered" % host
    said = "host %s: no folder (the host died or its logs were not collected)" % host
    assert said in report, "the report does not say %s has no folder" % host
    print("unreachable %s: run.json failed_hosts: %s; the report: %s" % (host, why, said))


def check_phases(d, run):
    """Per phase, from report.json (the figures the report's tables show), cut on the same
    boundaries for every client and server: the clients' mean sent and answered rates
    within 1 % of their achieved total, the packets they got within 1 % of what the
    servers say were won (or 5 packets, for a short phase of few packets), and the
    clients' per-second CV within 3 points of the servers'. Then the verdict: each
    phase's thresholds are run.json's (the phase's own over the run's), its pass or fail
    is what those thresholds say of its figures, and the run, which had no fault, passed,
    as the first line of report.md says."""
    rep = json.loads((d / "report.json").read_text())
    seen = []
    for p in rep["phases"]:
        if not (p.get("target_qps") or 0) > 0:
            continue
        c, s = p["client"], p["server"]
        name = p["name"]
        sent, answered, achieved = c["sent_qps"], c["answered_qps"], c["achieved_qps"]
        got, won = c["got"], s["won"]
        assert achieved and abs(sent / achieved - 1) < 0.01, "%s: client sent %s/s vs achieved %s/s" % (name, sent, achieved)
        assert abs(answered / achieved - 1) < 0.01, "%s: client answered %s/s vs achieved %s/s" % (name, answered, achieved)
        assert abs(got - won) <= max(0.01 * won, 5), "%s: client got %s vs server won %s" % (name, got, won)
        ccv, scv = c["qps_cv_pct"], s["qps_cv_pct"]
        assert ccv is not None and scv is not None, "%s: no per-second CV (client %s, server %s)" % (name, ccv, scv)
        assert ccv - scv < 3.0, "%s: client CV %.2f %% vs server %.2f %%" % (name, ccv, scv)
        check_judged(run, p)
        seen.append("%s: sent %.1f/s, answered %.1f/s vs achieved %.1f/s, got %.1f vs won %.1f, CV %.2f %% vs %.2f %%, %s"
                    % (name, sent, answered, achieved, got, won, ccv, scv, "passed" if p["passed"] else "failed"))
    assert seen, "report.json has no phase with a target"
    v = rep["verdict"]
    assert v["passed"] and v["outcome"] == "passed" and not v["failures"], "verdict: %s" % v
    assert all(p["passed"] is not False for p in rep["phases"]), "a phase failed though the verdict passed"
    first = (d / "report.md").read_text().splitlines()
    verdict_line = next((x for x in first if x.startswith("**Verdict:")), "")
    assert verdict_line.startswith("**Verdict: PASSED**"), "report.md says %r, report.json passed" % verdict_line
    print("phases cut alike on every host: " + "; ".join(seen))


def check_judged(run, p):
    """A phase's thresholds in report.json are run.json's (the phase's own key by key over
    the run's; a key neither sets is the report's default or the load generators' own),
    and its pass or fail is what they say of its figures."""
    own = next((q.get("thresholds") or {} for q in run["phases"] if q["name"] == p["name"]), {})
    runs = run.get("thresholds") or {}
    th = p["thresholds"]
    for k in ("max_p99_ms", "max_p999_ms", "rate_tolerance_pct", "max_error_rate"):
        want = ("phase", own[k]) if k in own else ("run_json", runs[k]) if k in runs else None
        got = (th[k]["source"], th[k]["value"])
        if want:
            assert got[0] == want[0] and float(got[1]) == float(want[1]), "%s: threshold %s is %s, run.json says %s" % (
                p["name"], k, got, want)
        else:
            assert got[0] in ("default", "loadgen"), "%s: threshold %s from %s" % (p["name"], k, got)
    c = p["client"]
    lim = {k: th[k]["value"] for k in th}
    fails = []
    if lim["max_p99_ms"] is not None and not (c["p99_ms"] is not None and c["p99_ms"] <= lim["max_p99_ms"]):
        fails.append("max_p99_ms")
    if lim["max_p999_ms"] is not None and not (c["p999_ms"] is not None and c["p999_ms"] <= lim["max_p999_ms"]):
        fails.append("max_p999_ms")
    if lim["rate_tolerance_pct"] is not None and c["achieved_qps"] < p["target_qps"] * (1 - lim["rate_tolerance_pct"] / 100):
        fails.append("rate_tolerance_pct")
    due = p["target_qps"] * p["seconds"]
    if lim["max_error_rate"] is not None and round(c["errors"] or 0) + round(c["timeouts"] or 0) > lim["max_error_rate"] * due:
        fails.append("max_error_rate")
    named = sorted(f["threshold"] for f in p["failures"])
    assert named == sorted(fails), "%s: report.json fails %s, its thresholds fail %s" % (p["name"], named, fails)
    assert p["passed"] == (not fails), "%s: passed is %s, thresholds failed %s" % (p["name"], p["passed"], fails)


def check_live(d, run, hosts, killed_client):
    """live.jsonl, the fleet as the controller showed it once a second: a line for every
    second from the first load generator record to the end of the last phase, each
    host counted; every second in which all hosts reported equals the report's figures
    of that second (report.json `seconds`: the same records summed); a killed client is
    named missing within 5 s of its last record."""
    lines = [json.loads(x) for x in (d / "live.jsonl").read_text().splitlines() if x.strip()]
    assert lines, "live.jsonl is empty"
    ts = [x["t"] for x in lines]
    assert ts == list(range(ts[0], ts[0] + len(ts))), "live.jsonl skips or repeats seconds: %s" % ts
    end = max(p["end"] for p in run["phases"])
    assert ts[-1] >= math.ceil(end) - 1, "live.jsonl ends at %s, the run at %s" % (ts[-1], end)
    assert all(x["hosts_expected"] == hosts for x in lines), "hosts_expected %s, not %s" % (
        sorted({x["hosts_expected"] for x in lines}), hosts)
    rep = {s["t"]: s for s in json.loads((d / "report.json").read_text())["seconds"]}
    same = 0
    for x in lines:
        r = rep.get(x["t"])
        if x.get("missing") or r is None or not x["sent"]:
            continue
        for k in ("sent", "answered", "errors", "timeouts"):
            assert x[k] == (r[k] or 0), "second %s: live %s %s, report %s" % (x["t"], k, x[k], r[k])
        for k in ("p50_ms", "p99_ms", "p999_ms"):
            assert x[k] is None and r[k] is None or abs(x[k] - r[k]) < 0.0015, "second %s: live %s %s, report %s" % (
                x["t"], k, x[k], r[k])
        same += 1
    assert same >= 3, "only %d live seconds to compare with the report" % same
    named = ""
    if killed_client:
        gone = [x for x in lines if killed_client in x.get("missing", {})]
        assert gone, "live.jsonl never names %s missing" % killed_client
        after = gone[0]["missing"][killed_client]
        assert after <= 5.0, "%s named missing %.1f s after its last record" % (killed_client, after)
        named = "; %s named missing %.1f s after its last record (second %s)" % (killed_client, after, gone[0]["t"])
    print("live: %d seconds, %d equal to the report's (sent, answered, errors, timeouts, p50/p99/p99.9)%s"
          % (len(lines), same, named))


def check_clocks(run, hosts, unreachable):
    """Each host but the unreachable one has clock_offset_ms and clock_rtt_ms; sharing
    this machine's clock, its reading fell inside the round trip: |offset| <= rtt / 2."""
    entries = {h["name"]: h for h in run["hosts"] if isinstance(h, dict)}
    said = []
    for h in hosts:
        if h == unreachable:
            continue
        e = entries[h]
        off, rtt = e.get("clock_offset_ms"), e.get("clock_rtt_ms")
        assert isinstance(off, (int, float)) and isinstance(rtt, (int, float)), "%s: no clock offset: %s" % (h, e)
        assert 0 < rtt < 5000, "%s: clock round trip %s ms" % (h, rtt)
        # 1 us of slack: both figures are rounded to it.
        assert abs(off) <= rtt / 2 + 0.001, "%s: offset %s ms outside half the round trip %s ms" % (h, off, rtt)
        said.append("%s %+.3f +- %.3f ms" % (h, off, rtt / 2))
    print("clocks (host minus controller): " + ", ".join(said))


def check_thresholds(run):
    """run.json's thresholds are the role defaults' redpacket_thresholds; each phase's,
    its own from redpacket_phases (absent when it has none)."""
    import yaml  # Ansible's own dependency: the tests run this with Ansible's Python

    defaults = pathlib.Path(__file__).resolve().parent.parent / "roles/redpacket/defaults/main.yml"
    want = yaml.safe_load(defaults.read_text())
    assert run.get("thresholds") == want["redpacket_thresholds"], "thresholds %s, defaults %s" % (
        run.get("thresholds"), want["redpacket_thresholds"])
    for p in run["phases"]:
        own = want["redpacket_phases"].get(p["name"], {}).get("thresholds") or {}
        assert p.get("thresholds", {}) == own, "phase %s thresholds %s, defaults %s" % (p["name"], p.get("thresholds"), own)
    print("thresholds: %s; phases: %s" % (run["thresholds"], {p["name"]: p.get("thresholds", {}) for p in run["phases"]}))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, OSError, KeyError, ValueError) as e:
        print("check_run: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
