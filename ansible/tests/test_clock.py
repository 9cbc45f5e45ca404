"""The clock measurement's arithmetic (action_plugins/redpacket_clock.py), without
Ansible: the two Ansible modules it imports are stood in for. Run from the repository's
root:

    python3 -m unittest ansible/tests/test_clock.py -v
"""

import os
import sys
import types
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the plugin in the repository
for name in ("ansible", "ansible.errors", "ansible.plugins", "ansible.plugins.action"):
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["ansible.errors"].AnsibleActionFail = getattr(sys.modules["ansible.errors"], "AnsibleActionFail", Exception)
sys.modules["ansible.plugins.action"].ActionBase = getattr(sys.modules["ansible.plugins.action"], "ActionBase", object)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "action_plugins"))

from redpacket_clock import best_offset, parse_date  # noqa: E402


class BestOffset(unittest.TestCase):
    def test_the_smallest_round_trip_wins(self):
        # A slow first try (the connection opening), then two quick ones.
        samples = [(100.0, 100.150, 100.400), (101.0, 101.012, 101.010), (102.0, 102.0035, 102.004)]
        self.assertEqual(best_offset(samples), (1.5, 4.0))

    def test_a_host_behind_is_negative(self):
        self.assertEqual(best_offset([(10.0, 9.990, 10.002)]), (-11.0, 2.0))

    def test_a_shared_clock_is_within_half_the_round_trip(self):
        off, rtt = best_offset([(5.0, 5.0004, 5.003)])
        self.assertLessEqual(abs(off), rtt / 2)

    def test_no_sample_is_an_error(self):
        with self.assertRaises(ValueError):
            best_offset([])


class ParseDate(unittest.TestCase):
    def test_seconds_and_nanoseconds(self):
        self.assertAlmostEqual(parse_date("1764160000.123456789\n"), 1764160000.123456789)

    def test_a_date_without_nanoseconds_is_refused(self):
        for text in ("1764160000.%N", "1764160000", ""):
            with self.assertRaises(ValueError):
                parse_date(text)


if __name__ == "__main__":
    unittest.main()
