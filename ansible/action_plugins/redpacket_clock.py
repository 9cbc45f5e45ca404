"""redpacket_clock: the host's clock against the controller's, measured over the
connection Ansible already holds to the host (no module, no Python on the host).

Each try reads the controller's clock, runs `date +%s.%N` on the host, and reads the
controller's clock again. The host's reading was taken somewhere inside that round trip,
so host - midpoint is the offset to within half the round trip. The try with the
smallest round trip is kept: it bounds the offset most tightly (the first try also pays
for opening the connection).

    - name: Measure the host's clock
      redpacket_clock:
        tries: 5
      register: redpacket_clock

returns offset_ms (host minus controller), rtt_ms (the kept round trip) and tries.
Read-only: changed is always false, and it runs in check mode too.
"""

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def best_offset(samples):
    """The (offset_ms, rtt_ms) of the sample with the smallest round trip.

    samples: (before, host, after) triples, Unix seconds: the controller's clock before
    and after, the host's reading between."""
    if not samples:
        raise ValueError("no sample")
    before, host, after = min(samples, key=lambda s: s[2] - s[0])
    return (round((host - (before + after) / 2) * 1000, 3), round((after - before) * 1000, 3))


def parse_date(stdout):
    """`date +%s.%N`'s output as seconds; ValueError when it is not a number with a
    fraction (a `date` without %N prints it literally)."""
    text = stdout.strip()
    if "." not in text:
        raise ValueError("not seconds.nanoseconds: %r" % text[:80])
    return float(text)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("tries",))

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        try:
            tries = int(self._task.args.get("tries", 5))
        except (TypeError, ValueError):
            raise AnsibleActionFail("tries must be a whole number")
        if not 1 <= tries <= 100:
            raise AnsibleActionFail("tries must be 1..100, not %d" % tries)
        samples = []
        for _ in range(tries):
            before = time.time()
            # Not through become: reading the clock needs no privilege, and sudo would
            # lengthen the round trip.
            r = self._low_level_execute_command("date +%s.%N", sudoable=False)
            after = time.time()
            if r.get("rc", 1) != 0:
                raise AnsibleActionFail("date failed (exit %s): %s" % (r.get("rc"), r.get("stderr", "")[-300:]))
            try:
                samples.append((before, parse_date(r.get("stdout", "")), after))
            except ValueError as e:
                raise AnsibleActionFail("the host's date: %s" % e)
        offset_ms, rtt_ms = best_offset(samples)
        result.update(changed=False, offset_ms=offset_ms, rtt_ms=rtt_ms, tries=tries)
        return result
