"""The fleet's plan (filter_plugins/fleet_plan.py), without Ansible: plain dicts stand
for hostvars. Run from the repository's root:

    python3 -m unittest ansible/tests/test_fleet_plan.py -v

(`cargo test --test ansible_units` runs it too, with `python3 -B -E -S`: where Ansible is
installed, its `ansible` package would otherwise shadow this folder's name.)
"""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the filter in the repository
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "filter_plugins"))

from fleet_plan import redpacket_fleet_plan  # noqa: E402

PHASES = {
    "tiny": {"shake_rate_per_server": 3000, "duration_s": 20, "users_per_server": 4000},
    "30k": {"shake_rate_per_server": 30000, "duration_s": 60},
}

# Every setting run-phase.yml passes (from roles/redpacket/defaults/main.yml), with
# users_per_server small.
SETTINGS = {
    "users_per_server": 4000,
    "server_port": 1025,
    "control_port": 8989,
    "connect_rate": 5000,
    "user_send_rate_per_server": 200,
    "shake_campaign_rate_per_server": 200,
    "send_campaign_rate_per_server": 200,
    "server_instances": 1,
    "source_addrs": [],
}


def fleet(instances, clients, settings=None, phase_names=("tiny",), hostvars=None):
    """A plan for servers with the given instances each and `clients` client hosts."""
    servers = ["server%d" % (i + 1) for i in range(len(instances))]
    client_names = ["client%02d" % (i + 1) for i in range(clients)]
    hv = {}
    for i, (host, k) in enumerate(zip(servers, instances)):
        hv[host] = {"redpacket_listen": "198.18.0.%d" % (10 + i), "redpacket_server_instances": k}
    for host in client_names:
        hv[host] = {}
    for host, extra in (hostvars or {}).items():
        hv.setdefault(host, {}).update(extra)
    return redpacket_fleet_plan(hv, servers, client_names, list(phase_names), PHASES,
                                dict(SETTINGS if settings is None else settings))


def parse_server(s):
    """"LISTEN:PORT=LO..HI" -> ("LISTEN:PORT", LO, HI)."""
    addr, _, users = s.partition("=")
    lo, _, hi = users.partition("..")
    return addr, int(lo), int(hi)


class Topologies(unittest.TestCase):
    """Every user driven once, by a client given exactly the instances its slice touches."""

    def check(self, instances, clients):
        plan = fleet(instances, clients)
        self.assertEqual(plan["errors"], [])
        total = plan["users_total"]
        self.assertEqual(total, 4000 * len(instances))
        self.assertEqual(len(plan["instances"]), sum(instances))

        # The instances' ranges partition every user, in order.
        ranges = {}
        at = 0
        for inst in plan["instances"]:
            lo, hi = inst["users"]
            self.assertEqual(lo, at)
            self.assertLess(lo, hi)
            at = hi
            addr = "%s:%d" % (inst["listen"], inst["port"])
            self.assertNotIn(addr, ranges)
            ranges[addr] = (lo, hi)
            self.assertEqual(inst["send_campaign"]["min"], lo)
            self.assertEqual(inst["send_campaign"]["max"], hi - 1)
        self.assertEqual(at, total)

        # Every user is driven by exactly one client; each client's servers are the
        # instances its slice touches, each with its whole range.
        driven = [0] * total
        for host, c in plan["clients"].items():
            a, b = c["users"]
            self.assertEqual(c["user_count"], b - a)
            self.assertGreater(b, a, host)
            for u in range(a, b):
                driven[u] += 1
            given = [parse_server(s) for s in c["servers"]]
            touched = [(addr, lo, hi) for addr, (lo, hi) in ranges.items() if max(a, lo) < min(b, hi)]
            self.assertEqual(given, touched, host)
            # The slice is covered by its servers' ranges, which do not overlap.
            covered = sorted((lo, hi) for _, lo, hi in given)
            self.assertLessEqual(covered[0][0], a)
            self.assertGreaterEqual(covered[-1][1], b)
            for (_, hi), (lo, _) in zip(covered, covered[1:]):
                self.assertEqual(hi, lo)
        self.assertEqual(driven, [1] * total)

        # The clients' rates sum to the fleet's rates.
        for i, fleet_rate in enumerate(plan["fleet_rates"]):
            got = sum(c["rates"][i] for c in plan["clients"].values())
            self.assertAlmostEqual(got, fleet_rate, places=6)
        self.assertEqual(plan["fleet_rates"], [3000.0 * len(instances)])
        send = sum(c["send_rate"] for c in plan["clients"].values())
        self.assertAlmostEqual(send, 200.0 * len(instances), places=6)
        return plan

    def test_one_server_two_instances_three_clients(self):
        plan = self.check([2], 3)
        self.assertEqual(plan["clients"]["client02"]["servers"],
                         ["198.18.0.10:1025=0..2000", "198.18.0.10:1026=2000..4000"])
        self.assertEqual(plan["clients"]["client02"]["users"], [1334, 2667])

    def test_two_servers_with_two_and_one_instances_three_clients(self):
        plan = self.check([2, 1], 3)
        self.assertEqual(plan["clients"]["client02"]["servers"],
                         ["198.18.0.10:1026=2000..4000", "198.18.0.11:1025=4000..8000"])
        self.assertEqual(plan["servers"]["server2"]["connections"], 4000)

    def test_one_server_one_instance_seven_clients(self):
        plan = self.check([1], 7)
        for c in plan["clients"].values():
            self.assertEqual(c["servers"], ["198.18.0.10:1025=0..4000"])

    def test_one_server_two_instances_seven_clients(self):
        plan = self.check([2], 7)
        # 4000 / 7: the fourth client's slice 1716..2287 straddles the two instances.
        self.assertEqual(plan["clients"]["client04"]["users"], [1716, 2287])
        self.assertEqual(len(plan["clients"]["client04"]["servers"]), 2)

    def test_one_server_two_instances_seventeen_clients(self):
        self.check([2], 17)

    def test_more_shapes(self):
        for instances, clients in [([3], 2), ([1, 1], 5), ([3, 2, 1], 11), ([4], 4000)]:
            with self.subTest(instances=instances, clients=clients):
                self.check(instances, clients)


class Knobs(unittest.TestCase):
    """Per-host knobs fall back to `settings`, then to the documented defaults."""

    def test_settings_give_what_hosts_do_not(self):
        settings = dict(SETTINGS, server_instances=2, source_addrs=["198.18.1.1", "198.18.1.2"],
                        connect_rate=1000)
        plan = redpacket_fleet_plan({"s": {"ansible_host": "198.18.0.20"}, "c": {}}, ["s"], ["c"],
                                    ["tiny"], PHASES, settings)
        self.assertEqual(plan["errors"], [])
        self.assertEqual(len(plan["instances"]), 2)
        c = plan["clients"]["c"]
        self.assertEqual(c["servers"], ["198.18.0.20:1025=0..2000", "198.18.0.20:1026=2000..4000"])
        self.assertEqual(c["source_addrs"], ["198.18.1.1", "198.18.1.2"])
        self.assertAlmostEqual(c["connect_s"], 4.0)

    def test_hosts_win_over_settings(self):
        settings = dict(SETTINGS, server_instances=2, source_addrs=["198.18.1.1"])
        hv = {"s": {"redpacket_listen": "198.18.0.30", "ansible_host": "198.18.0.20",
                    "redpacket_server_instances": 1},
              "c": {"redpacket_source_addrs": "198.18.2.1,198.18.2.2", "redpacket_connect_rate": 400}}
        plan = redpacket_fleet_plan(hv, ["s"], ["c"], ["tiny"], PHASES, settings)
        self.assertEqual(plan["errors"], [])
        c = plan["clients"]["c"]
        self.assertEqual(c["servers"], ["198.18.0.30:1025=0..4000"])
        self.assertEqual(c["source_addrs"], ["198.18.2.1", "198.18.2.2"])
        self.assertAlmostEqual(c["connect_s"], 10.0)

    def test_missing_settings_are_named(self):
        # The plan keeps no second copy of the defaults: run-phase.yml passes them all.
        plan = redpacket_fleet_plan({"s": {}, "c": {}}, ["s"], ["c"], ["30k"], PHASES, {})
        self.assertEqual(len(plan["errors"]), 1)
        self.assertIn("users_per_server", plan["errors"][0])
        self.assertIn("roles/redpacket/defaults/main.yml", plan["errors"][0])

    def test_listen_defaults_to_ansible_host_then_the_name(self):
        plan = redpacket_fleet_plan({"s": {"ansible_host": "198.18.0.10"}, "c": {}}, ["s"], ["c"],
                                    ["30k"], PHASES, SETTINGS)
        self.assertEqual(plan["errors"], [])
        self.assertEqual(plan["clients"]["c"]["servers"], ["198.18.0.10:1025=0..4000"])
        # Without redpacket_listen nor ansible_host: the inventory name.
        plan = redpacket_fleet_plan({"198.18.0.11": {}, "c": {}}, ["198.18.0.11"], ["c"], ["30k"], PHASES, SETTINGS)
        self.assertEqual(plan["errors"], [])
        self.assertEqual(plan["clients"]["c"]["servers"], ["198.18.0.11:1025=0..4000"])
        self.assertEqual(plan["instances"][0]["control_port"], 8989)

    def test_ipv6_listen_is_bracketed(self):
        plan = redpacket_fleet_plan({"s": {"redpacket_listen": "fd00::1"}, "c": {}}, ["s"], ["c"],
                                    ["tiny"], PHASES, SETTINGS)
        self.assertEqual(plan["clients"]["c"]["servers"], ["[fd00::1]:1025=0..4000"])


class Refusals(unittest.TestCase):
    """What cannot run is refused, saying what would."""

    def test_more_clients_than_users(self):
        plan = fleet([1], 4001)
        self.assertEqual(len(plan["errors"]), 1, plan["errors"])
        self.assertIn("4001 clients but 4000 users", plan["errors"][0])
        self.assertIn("at most 4000 clients", plan["errors"][0])

    def test_more_instances_than_users_per_server(self):
        settings = dict(SETTINGS, users_per_server=3)
        plan = redpacket_fleet_plan({"s": {"redpacket_listen": "198.18.0.10", "redpacket_server_instances": 5},
                                     "c": {}}, ["s"], ["c"], ["30k"], PHASES, settings)
        self.assertEqual(len(plan["errors"]), 1, plan["errors"])
        self.assertIn("at most 3 instances", plan["errors"][0])
        self.assertIn("at least 5 users per server", plan["errors"][0])

    def test_unknown_phase(self):
        plan = fleet([1], 1, phase_names=["tiny", "nope"])
        self.assertEqual(len(plan["errors"]), 1, plan["errors"])
        self.assertIn("unknown phase 'nope'", plan["errors"][0])
        self.assertIn("known: 30k, tiny", plan["errors"][0])

    def test_listen_must_be_an_address(self):
        plan = redpacket_fleet_plan({"server1": {}, "c": {}}, ["server1"], ["c"], ["tiny"], PHASES, SETTINGS)
        self.assertEqual(len(plan["errors"]), 1, plan["errors"])
        self.assertIn("'server1', not an IP address", plan["errors"][0])
        self.assertIn("set redpacket_listen", plan["errors"][0])

    def test_hosts_and_roles(self):
        plan = redpacket_fleet_plan({}, [], [], ["tiny"], PHASES, SETTINGS)
        self.assertIn("the inventory has no host in group 'servers'", plan["errors"])
        self.assertIn("the inventory has no host in group 'clients'", plan["errors"])
        plan = redpacket_fleet_plan({"h": {}}, ["h"], ["h"], ["tiny"], PHASES, SETTINGS)
        self.assertIn("h is in both 'servers' and 'clients': a host has one role", plan["errors"])
        plan = redpacket_fleet_plan({}, ["s"], ["c"], [], PHASES, SETTINGS)
        self.assertIn("no phase to run", plan["errors"][0])

    def test_instances_below_one(self):
        plan = fleet([0], 1)
        self.assertIn("server1: redpacket_server_instances must be at least 1", plan["errors"])


if __name__ == "__main__":
    unittest.main()
