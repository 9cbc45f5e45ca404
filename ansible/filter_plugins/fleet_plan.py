"""The fleet's plan for one run (who carries which users and which share of the rate),
and the reading of the sysctl files' scope annotations.

Why a filter and not Jinja: the split of users over every instance of every server,
and of the clients' slices over those instances, is arithmetic that must be exact and
the same wherever it is read (pre-flight, start, run.json). One function computes it
once, on the controller, from the inventory alone.
"""

import ipaddress
import math

# The fleet-wide settings the plan reads. run-phase.yml passes every one of them from the
# fleet's role defaults (roles/redpacket/defaults/main.yml, redpacket_<key>): their one
# home. The per-host ones (server_instances, connect_rate, source_addrs) are what a host
# that does not set its own redpacket_<key> gets: role defaults do not show in hostvars.
SETTINGS = (
    "users_per_server",
    "server_port",
    "control_port",
    "connect_rate",
    "user_send_rate_per_server",
    "shake_campaign_rate_per_server",
    "send_campaign_rate_per_server",
    "server_instances",
    "source_addrs",
)


def _ranges(total, parts):
    """Split [0, total) into `parts` contiguous ranges whose sizes differ by at most one."""
    base, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size))
        start += size
    return out


def _unset(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def _setting(settings, key):
    """A fleet-wide setting (checked present by the plan before any is read)."""
    return settings[key]


def _host_knob(hv, settings, key):
    """A per-host knob: the host's redpacket_<key>, else the fleet-wide setting.

    Role defaults do not show in hostvars, so the fleet's value arrives in `settings`.
    """
    value = hv.get("redpacket_" + key)
    return settings[key] if _unset(value) else value


def _hostvars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        return {}


def _address(listen, port):
    """`listen:port`, with brackets around an IPv6 address."""
    return "[%s]:%d" % (listen, port) if ":" in listen else "%s:%d" % (listen, port)


def redpacket_fleet_plan(hostvars, servers, clients, phase_names, phases, settings):
    """Plan one run of the named phases over the given server and client hosts.

    hostvars: Ansible's hostvars (plain dicts will do); servers, clients: inventory host
    names in order; phase_names: list of phase names run back to back; phases:
    redpacket_phases; settings: the fleet-wide knobs named in SETTINGS (a missing one is
    an error: the plan has no second copy of the defaults). Per-host knobs (redpacket_server_instances,
    redpacket_listen, redpacket_connect_rate, redpacket_source_addrs) are read from the
    host's hostvars, else from `settings`; a server's listen address, when the host
    does not set it, is its ansible_host, else its inventory name.

    Users 0..users_per_server x servers are cut into contiguous ranges: one per server,
    each split evenly over its instances; the clients take contiguous slices of all of
    them, evenly, in inventory order. A client's `servers` lists the instances its slice
    touches, each as "LISTEN:PORT=LO..HI" with the instance's whole range (the load
    generator's `--server` form: user u connects to the instance whose range holds u),
    so a slice may fall on its instances in any proportion. Its `rates` are its users'
    share of each phase's fleet-wide rate.

    Returns a dict; its `errors` list says what makes the plan impossible and what would
    run instead (an empty list means it can run).
    """
    settings = settings or {}
    missing = [k for k in SETTINGS if _unset(settings.get(k)) and k != "source_addrs"]
    if missing:
        return {"errors": ["the plan needs the settings %s (run-phase.yml passes them from "
                           "roles/redpacket/defaults/main.yml)" % ", ".join(missing)]}
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
            "users_per_server": int(p.get("users_per_server", _setting(settings, "users_per_server"))),
        })
    if not phase_names:
        errors.append("no phase to run: name one or more of %s" % ", ".join(sorted(phases)))
    if not servers:
        errors.append("the inventory has no host in group 'servers'")
    if not clients:
        errors.append("the inventory has no host in group 'clients'")
    for host in sorted(set(servers) & set(clients)):
        errors.append("%s is in both 'servers' and 'clients': a host has one role" % host)
    if errors:
        return {"errors": errors}

    n_servers = len(servers)
    users_per_server = max(s["users_per_server"] for s in steps)
    users_total = users_per_server * n_servers
    if users_per_server < 1:
        return {"errors": ["users_per_server is %d: a run needs at least one user per server"
                           % users_per_server]}

    # Every instance of every server, in inventory order, gets a contiguous id range:
    # the server's users split evenly over its instances.
    instances = []
    for host_index, host in enumerate(servers):
        hv = _hostvars(hostvars, host)
        k = int(_host_knob(hv, settings, "server_instances"))
        if k < 1:
            errors.append("%s: redpacket_server_instances must be at least 1" % host)
            k = 1
        if k > users_per_server:
            errors.append(
                "%s: %d instances but %d users per server leave instances with no users; run "
                "at most %d instances there, or at least %d users per server"
                % (host, k, users_per_server, users_per_server, k))
            k = users_per_server
        # redpacket_listen's default is the host's own ansible_host (else its name): a rule
        # of each host, which a role default seen from the controller cannot express.
        listen = hv.get("redpacket_listen")
        listen = str(hv.get("ansible_host") or host) if _unset(listen) else str(listen)
        try:
            ipaddress.ip_address(listen)
        except ValueError:
            errors.append("%s: clients would connect to %r, not an IP address; set "
                          "redpacket_listen (or ansible_host) to the address they reach it on"
                          % (host, listen))
        base = host_index * users_per_server
        for i, (a, b) in enumerate(_ranges(users_per_server, k), start=1):
            instances.append({
                "host": host,
                "instance": i,
                "instances_on_host": k,
                "listen": listen,
                "port": int(_setting(settings, "server_port")) + i - 1,
                "control_port": int(_setting(settings, "control_port")) + i - 1,
                "users": [base + a, base + b],
            })

    # Clients get contiguous slices of [0, users_total), in inventory order, and each
    # instance its slice touches with that instance's whole range.
    if len(clients) > users_total:
        errors.append(
            "%d clients but %d users (%d per server x %d servers): a client would have no "
            "users; use at most %d clients, or more users per server"
            % (len(clients), users_total, users_per_server, n_servers, users_total))
    total_rates = [s["shake_rate_per_server"] * n_servers for s in steps]
    send_rate_total = float(_setting(settings, "user_send_rate_per_server")) * n_servers
    client_plan = {}
    for host, (a, b) in zip(clients, _ranges(users_total, len(clients))):
        touched = [i for i in instances if max(a, i["users"][0]) < min(b, i["users"][1])]
        share = (b - a) / float(users_total)
        hv = _hostvars(hostvars, host)
        connect_rate = float(_host_knob(hv, settings, "connect_rate"))
        addrs = _host_knob(hv, settings, "source_addrs") or []
        if isinstance(addrs, str):
            # "a,b" from -e, or a list that reached the filter as its text.
            addrs = [x.strip(" '\"") for x in addrs.strip("[] ").split(",") if x.strip(" '\"")]
        client_plan[host] = {
            "users": [a, b],
            "user_count": b - a,
            "servers": ["%s=%d..%d" % (_address(i["listen"], i["port"]), i["users"][0], i["users"][1])
                        for i in touched],
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
        shake = float(_setting(settings, "shake_campaign_rate_per_server")) / k
        send = float(_setting(settings, "send_campaign_rate_per_server")) / k
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
