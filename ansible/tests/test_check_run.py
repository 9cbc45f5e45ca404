"""check_run.py's reading of report.json (check_phases), without a fleet: the committed
run of many processes (results/examples/20261203-085929-demo: 4 server instances, 4
load-generator processes) passes it; the committed million-user run, whose processes'
seconds did not line up, and copies of the many-process run with one figure changed do
not. Run from the repository's root:

    python3 -m unittest ansible/tests/test_check_run.py -v
"""

import contextlib
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside check_run.py in the repository
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from check_run import check_phases  # noqa: E402

EXAMPLES = HERE.parent.parent / "results" / "examples"
MANY = EXAMPLES / "20261203-085929-demo"
MILLION = EXAMPLES / "20261126-232259-demo"


class CheckPhases(unittest.TestCase):
    def setUp(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="check-run-"))
        self.addCleanup(shutil.rmtree, self.dir)

    def copy(self, src):
        for f in ("report.json", "report.md", "run.json"):
            shutil.copy(src / f, self.dir / f)

    def edit(self, name, change):
        path = self.dir / name
        j = json.loads(path.read_text())
        change(j)
        path.write_text(json.dumps(j))

    def check(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            check_phases(self.dir, json.loads((self.dir / "run.json").read_text()))
        return out.getvalue()

    def fails(self, words):
        with self.assertRaises(AssertionError) as e:
            self.check()
        self.assertIn(words, str(e.exception))

    def test_the_committed_run_of_many_processes_passes(self):
        self.copy(MANY)
        out = self.check()
        for name in ("5k", "10k", "20k"):
            self.assertIn("%s: sent " % name, out)
        self.assertNotIn("failed", out)

    def test_the_million_user_run_whose_seconds_did_not_line_up_fails(self):
        self.copy(MILLION)
        self.fails("client sent")

    def test_a_sent_rate_off_by_two_percent_fails(self):
        self.copy(MANY)
        self.edit("report.json", lambda j: j["phases"][3]["client"].update(sent_qps=10200.0))
        self.fails("10k: client sent")

    def test_an_answered_rate_off_by_two_percent_fails(self):
        self.copy(MANY)
        self.edit("report.json", lambda j: j["phases"][4]["client"].update(answered_qps=19600.0))
        self.fails("20k: client answered")

    def test_got_off_won_by_more_than_one_percent_fails(self):
        self.copy(MANY)
        self.edit("report.json", lambda j: j["phases"][2]["client"].update(got=4100.0))
        self.fails("5k: client got")

    def test_a_client_cv_far_above_the_servers_fails(self):
        self.copy(MANY)
        self.edit("report.json", lambda j: j["phases"][2]["client"].update(qps_cv_pct=33.1))
        self.fails("5k: client CV")

    def test_a_pass_its_thresholds_do_not_give_fails(self):
        # p99 over the 50 ms limit, yet the phase says it passed.
        self.copy(MANY)
        self.edit("report.json", lambda j: j["phases"][4]["client"].update(p99_ms=60.0))
        self.fails("20k: report.json fails [], its thresholds fail ['max_p99_ms']")

    def test_thresholds_not_those_of_run_json_fail(self):
        # run.json asks 20 ms of 10k; the report judged it by its default.
        self.copy(MANY)

        def strict(j):
            j["phases"][3]["thresholds"] = {"max_p99_ms": 20}

        self.edit("run.json", strict)
        self.fails("10k: threshold max_p99_ms")

    def test_thresholds_of_run_json_and_a_phase_pass(self):
        # As a fleet records them: the run's from group_vars, a phase's own over them.
        self.copy(MANY)

        def fleet(j):
            j["thresholds"] = {"max_p99_ms": 50, "rate_tolerance_pct": 1, "max_error_rate": 0}
            j["phases"][2]["thresholds"] = {"max_p99_ms": 200}

        def sourced(j):
            for p in j["phases"]:
                th = p["thresholds"]
                for k in ("max_p99_ms", "rate_tolerance_pct", "max_error_rate"):
                    th[k]["source"] = "run_json"
                if p["name"] == "5k":
                    th["max_p99_ms"] = {"value": 200.0, "source": "phase"}

        self.edit("run.json", fleet)
        self.edit("report.json", sourced)
        self.check()

    def test_a_page_that_does_not_say_passed_fails(self):
        self.copy(MANY)
        md = (self.dir / "report.md").read_text()
        (self.dir / "report.md").write_text(md.replace("**Verdict: PASSED**", "**Verdict: FAILED: 20k**", 1))
        self.fails("report.md says")


if __name__ == "__main__":
    unittest.main()
