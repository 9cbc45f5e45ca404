"""redpacket_reach: how the controller reaches this host the way Ansible does, for the
live view (`redpacket_live`) to follow the host's per-second files over SSH.

Takes `files`, the host's per-second files, and returns them with `ssh`, the ssh command line Ansible's own ssh connection builds for this host
(user, port, key, its common and extra arguments, and its ControlPath, so the view's
sessions share the connection Ansible already holds), ending with the host; empty for
a host reached with the `local` connection. `sudo` says whether reading the run folder
needs `sudo -n` (a remote user other than root with become on). Opens no connection
and changes nothing; a password login is refused (the view cannot type it).

    - name: How to reach this host for the live view
      redpacket_reach:
        files: ["{{ redpacket_home }}/runs/{{ run_id }}/{{ inventory_hostname }}/loadgen.jsonl"]
      register: redpacket_reach
"""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

LOCAL = ("local", "ansible.builtin.local")
SSH = ("ssh", "ansible.builtin.ssh", "paramiko_ssh", "ansible.builtin.paramiko_ssh")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files",))

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        conn = self._connection
        transport = getattr(conn, "_load_name", None) or conn.transport
        user = None
        if transport in LOCAL:
            ssh = []
        elif transport in ("ssh", "ansible.builtin.ssh"):
            if conn.get_option("password") or self._play_context.password:
                raise AnsibleActionFail(
                    "the live view follows hosts with ssh keys; this host logs in with a password"
                )
            host = conn.get_option("host") or self._play_context.remote_addr
            cmd = conn._build_command(conn.get_option("ssh_executable"), "ssh", host)
            ssh = [to_text(a) for a in cmd]
            user = conn.get_option("remote_user")
        else:
            raise AnsibleActionFail(
                "the live view reaches hosts over ssh or locally, not with the %r connection" % transport
            )
        become = bool(self._play_context.become) and (self._play_context.become_method or "sudo") == "sudo"
        sudo = become and bool(ssh) and user not in (None, "root")
        files = self._task.args.get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise AnsibleActionFail("files must be a list of paths, not %r" % (files,))
        result.update(changed=False, ssh=ssh, sudo=sudo, files=files)
        return result
