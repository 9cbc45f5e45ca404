"""redpacket_live: the fleet on the terminal once a second while the run goes.

Runs `redpacket-live` on the controller with a plan of every host (its per-second files
and the ssh command `redpacket_reach` returned for it) and shows each line it prints as
it comes; the seconds also go to `out` (the run folder's live.jsonl). Returns when the
run's last phase has ended (`ends_at`, Unix seconds) and the view has given out its last
second.

    - name: Show the fleet once a second
      redpacket_live:
        binary: /path/to/redpacket-live
        out: results/RUN/live.jsonl
        ends_at: 1796288431.5
        hosts:
          - {name: cli1, role: loadgen, files: [...], ssh: [...], sudo: true}
      run_once: true
      delegate_to: localhost

returns lines (how many were shown), last (the view's own last line) and rc.
"""

import json
import os
import subprocess
import tempfile
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# How long past `ends_at` the view may run before it is stopped: it stops by itself 7 s
# after (its deadline and linger); this only guards against a stuck follower.
GUARD_S = 60


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("binary", "out", "ends_at", "hosts"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        a = self._task.args
        for k in self._VALID_ARGS:
            if k not in a:
                raise AnsibleActionFail("redpacket_live needs %s" % k)
        try:
            until = float(a["ends_at"])
        except (TypeError, ValueError):
            raise AnsibleActionFail("ends_at must be Unix seconds, not %r" % (a["ends_at"],))
        plan = {"until": until, "hosts": list(a["hosts"])}
        fd, plan_path = tempfile.mkstemp(prefix="redpacket-live-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(plan, f)
        argv = [a["binary"], "--plan", plan_path, "--out", a["out"]]
        shown, last, rc = 0, "", None
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as e:
            os.unlink(plan_path)
            raise AnsibleActionFail("cannot run %s: %s" % (a["binary"], e))
        try:
            deadline = until + GUARD_S
            for line in proc.stdout:
                line = line.rstrip("\n")
                display.display(line)
                shown += 1
                last = line
                if time.time() > deadline:
                    break
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
            err = proc.stderr.read()[-2000:]
        finally:
            os.unlink(plan_path)
        result.update(changed=False, lines=shown, last=last, rc=rc)
        if rc != 0:
            result.update(failed=True, msg="redpacket-live ended with %s: %s" % (rc, err.strip()))
        return result
