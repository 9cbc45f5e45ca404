"""The arithmetic of check_prometheus.py (what the fleet's Prometheus saw of a phase),
without a Prometheus: its query function is stood in for. Run from the repository's root:

    python3 -m unittest ansible/tests/test_check_prometheus.py -v
"""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_prometheus  # noqa: E402


def series(start, rate, step=1.0, n=30, offset=0.37):
    """A counter scraped every `step` s from `start + offset`, growing at `rate`/s."""
    return {"values": [[start + offset + i * step, str(rate * (offset + i * step))] for i in range(n)]}


class InnerRate(unittest.TestCase):
    def stub(self, result):
        saved = check_prometheus.query
        check_prometheus.query = lambda expr, at: result
        self.addCleanup(setattr, check_prometheus, "query", saved)

    def test_series_add_up_and_the_window_cuts_the_samples(self):
        # Two instances at 1000/s and 2000/s; samples outside [101, 119] are left out,
        # including a counter that stopped growing after the phase.
        a = series(100.0, 1000.0)
        b = series(100.0, 2000.0)
        b["values"].append([140.0, b["values"][-1][1]])
        self.stub([a, b])
        got, n = check_prometheus.inner_rate("x", 101.0, 119.0)
        self.assertEqual(n, 2)
        self.assertAlmostEqual(got, 3000.0, places=6)

    def test_a_series_that_did_not_move_or_has_one_sample_counts_nothing(self):
        flat = {"values": [[101.5, "7"], [110.5, "7"]]}
        single = {"values": [[105.0, "9"]]}
        self.stub([flat, single])
        self.assertEqual(check_prometheus.inner_rate("x", 101.0, 119.0), (0.0, 0))

    def test_scrape_times_not_wall_seconds_divide(self):
        # Samples 1.5 s apart: the rate comes from their own times.
        self.stub([series(100.0, 500.0, step=1.5)])
        got, _ = check_prometheus.inner_rate("x", 101.0, 119.0)
        self.assertAlmostEqual(got, 500.0, places=6)


if __name__ == "__main__":
    unittest.main()
