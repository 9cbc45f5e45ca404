"""The fleet's plan for one run (who carries which users and which share of the rate),
and the reading of the sysctl files' scope annotations.

Why a filter and not Jinja: the split of users over every instance of every server,
and of the clients' slices over those instances, is arithmetic that must be exact and
the same wherever it is read (pre-flight, start, run.json). One function computes it
once, on the controller, from the inventory alone.
"""

import math


def _ranges(total, parts):
    """Split [0, total) into `parts` contiguous ranges whose sizes differ by at most one."""
    base, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size))
        start += size
    return out


def redpacket_fleet_plan(hostvars, servers, clients, phase_names, phases, settings):
    """Plan one run of the named phases over the given server and client hosts.

    hostvars: Ansible's hostvars; servers, clients: inventory host names in order;
    phase_names: list of phase names run back to back; phases: redpacket_phases;
    settings: fleet-wide knobs (see group_vars/all.yml). Returns a dict; its `errors`
    list says what makes the plan impossible (an empty list means it can run).
    """
    errors = []
    steps = []
    for name in phase_names:
        if name not in phases:
            errors.append("unknown phase %r (known: %s)" % (name, ", ".join(sorted(phases))))
            continue
        p = phases[name]
        steps.append({
            "name": str(name),
            "shake_rate_per_server": float(p["shake_rate_per_server"]),
            "duration_s": int(p["duration_s"]),
            "users_per_server": int(p.get("users_per_server", settings["users_per_server"])),
        })
    if not servers:
        errors.append("the inventory has no host in group 'servers'")
    if not clients:
        errors.append("the inventory has no host in group 'clients'")
    for host in set(servers) & set(clients):
        errors.append("%s is in both 'servers' and 'clients': a host has one role" % host)
    if errors:
        return {"errors": errors}

    n_servers = len(servers)
    users_per_server = max(s["users_per_server"] for s in steps)
    users_total = users_per_server * n_servers

    # Every instance of every server, in inventory order, gets a contiguous id range.
    instances = []
    for host in servers:
        hv = hostvars[host]
        k = int(hv.get("redpacket_server_instances", 1))
        if k < 1:
            errors.append("%s: redpacket_server_instances must be at least 1" % host)
            k = 1
        listen = str(hv.get("redpacket_listen", ""))
        if not listen:
            errors.append("%s: set redpacket_listen (the address clients connect to)" % host)
        for i in range(1, k + 1):
            instances.append({
                "host": host,
                "instance": i,
                "instances_on_host": k,
                "listen": listen,
                "port": int(settings["server_port"]) + i - 1,
                "control_port": int(settings["control_port"]) + i - 1,
            })
    # Users of a server are split evenly over its instances.
    start = 0
    for host in servers:
        mine = [x for x in instances if x["host"] == host]
        for (a, b), inst in zip(_ranges(users_per_server, len(mine)), mine):
            inst["users"] = [start + a, start + b]
        start += users_per_server

    # Clients get contiguous slices of [0, users_total), in inventory order. The load
    # generator splits a client's users evenly over the servers it is given, in order, so
    # a slice must cover the instances it touches in equal parts.
    total_rates = [s["shake_rate_per_server"] * n_servers for s in steps]
    send_rate_total = float(settings["user_send_rate_per_server"]) * n_servers
    client_plan = {}
    for host, (a, b) in zip(clients, _ranges(users_total, len(clients))):
        touched = []
        for inst in instances:
            lo, hi = max(a, inst["users"][0]), min(b, inst["users"][1])
            if lo < hi:
                touched.append((inst, hi - lo))
        sizes = {n for _, n in touched}
        if b <= a:
            errors.append("%s: no users left for this client (more clients than users)" % host)
        elif len(sizes) != 1:
            errors.append(
                "%s: its users %d..%d fall unevenly on server instances %s; use a number of "
                "clients that is a multiple of the fleet's instances (%d), or a divisor of it"
                % (host, a, b, ", ".join("%s#%d: %d" % (i["host"], i["instance"], n) for i, n in touched),
                   len(instances)))
        share = (b - a) / float(users_total)
        hv = hostvars[host]
        connect_rate = float(hv.get("redpacket_connect_rate", settings["connect_rate"]))
        addrs = hv.get("redpacket_source_addrs", []) or []
        if isinstance(addrs, str):
            addrs = [x for x in addrs.split(",") if x]
        client_plan[host] = {
            "users": [a, b],
            "user_count": b - a,
            "servers": ["%s:%d" % (i["listen"], i["port"]) for i, _ in touched],
            "rates": [r * share for r in total_rates],
            "send_rate": send_rate_total * share,
            "source_addrs": [str(x) for x in addrs],
            "connect_s": (b - a) / connect_rate if connect_rate > 0 else 0.0,
        }

    # Campaigns: each server's rates are split over its instances; enough packets for
    # every phase of the run.
    duration = sum(s["duration_s"] for s in steps)
    for inst in instances:
        k = inst["instances_on_host"]
        shake = float(settings["shake_campaign_rate_per_server"]) / k
        send = float(settings["send_campaign_rate_per_server"]) / k
        inst["shake_campaign"] = {"qps": shake, "sum": int(math.ceil(shake * duration))}
        inst["send_campaign"] = {"qps": send, "sum": int(math.ceil(send * duration)),
                                 "min": inst["users"][0], "max": inst["users"][1] - 1}

    server_plan = {}
    for host in servers:
        mine = [x for x in instances if x["host"] == host]
        server_plan[host] = {"connections": users_per_server, "instances": mine}

    return {
        "errors": errors,
        "steps": steps,
        "users_total": users_total,
        "users_per_server": users_per_server,
        "duration_s": duration,
        "fleet_rates": total_rates,
        "instances": instances,
        "servers": server_plan,
        "clients": client_plan,
        "lead_s": max([c["connect_s"] for c in client_plan.values()] + [0.0]),
    }


def redpacket_sysctl_lines(text, include_global):
    """The lines of a sysctl.d file, each with what the tuning role does with it.

    Each key's scope comes from the `# redpacket: scope=netns|global ...` annotation line
    directly above it. Returns [{"line", "key", "value", "scope", "keep"}]; comments and
    blank lines have key "" and are kept. A key without an annotation counts as global:
    with include_global false only keys known to be per network namespace are applied.
    """
    out, scope = [], ""
    for line in str(text).splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith(";"):
            if s.startswith("# redpacket:"):
                for word in s[len("# redpacket:"):].split():
                    if word.startswith("scope="):
                        scope = word[len("scope="):]
                    if word.startswith("limits="):
                        break
            out.append({"line": line, "key": "", "value": "", "scope": "", "keep": True})
            continue
        key, _, value = s.partition("=")
        key = key.strip().lstrip("-")
        this_scope = scope or "global"
        out.append({"line": line, "key": key, "value": " ".join(value.split()),
                    "scope": this_scope, "keep": bool(include_global) or this_scope == "netns"})
        scope = ""
    return out


class FilterModule(object):
    """The fleet's filters: the run plan, and the lines of a sysctl file with their scope."""

    def filters(self):
        return {"redpacket_fleet_plan": redpacket_fleet_plan,
                "redpacket_sysctl_lines": redpacket_sysctl_lines}
