//! The items of each role's check, built from what was read of the host: open files,
//! memory, ports, CPUs, then every key of the role's `sysctl/*.conf`. The first are
//! limits (they count what the host allows); a key of the file is a limit when its
//! value scales with the count (`scale=conn`), advice when it is judged but fixed, and
//! info when it is only shown.
//!
//! Everything here is arithmetic on a [`HostView`], so each rule is tested with made-up
//! hosts; [`HostView::read`] is the only part that touches the machine.

use std::collections::BTreeMap;

use super::judge::judge;
use super::{Item, Kind, Report, Role};
use crate::conf::{Check, Conf, Scope};
use crate::reserve::{conns_for_with, server_set_apart, FD_RESERVE};

/// Server memory per idle logged-in user, user space, bytes: the upper end of what
/// `BENCH_PIN=1 bench/compare.sh memory` measured with 19 000 idle users since a SET is
/// an epoll set (bench/README.md, "The figures", has the measured values).
pub const SERVER_USER_BYTES: u64 = 107;
/// Load generator memory per user, user space, bytes: the upper end of what
/// `loadgen/scripts/cost.sh` measured (loadgen/README.md, "Cost (measured)").
pub const LOADGEN_USER_BYTES: u64 = 113;
/// Kernel memory per TCP socket that has exchanged data, bytes (two sockets per loopback
/// user; one per user on a server, or on a client host, of a real fleet): the larger,
/// earlier of the project's measurements with the server and the load generator, kept
/// because sockets with data in flight also hold buffer pages. The measured values and
/// their commands: bench/README.md, "The figures" and "Kernel memory per socket".
pub const KERNEL_SOCKET_BYTES: u64 = 5_700;

/// What was read of this host, for one check.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub nr_open: Option<u64>,
    pub file_max: Option<u64>,
    /// `MemAvailable`, bytes.
    pub mem_available: Option<u64>,
    /// CPUs online.
    pub cpus: usize,
    /// CPUs this process may run on.
    pub allowed_cpus: Vec<usize>,
    /// `net.ipv4.ip_local_port_range`.
    pub port_range: Option<(u64, u64)>,
    /// Buckets of this network namespace's TCP established table
    /// (`net.ipv4.tcp_ehash_entries`, negative when shared with the host's: its size).
    pub ehash_buckets: Option<u64>,
    /// Live values of the conf's keys (`None`: not in this kernel or namespace).
    pub sysctls: BTreeMap<String, Option<String>>,
}

impl HostView {
    /// Reads this host now: limits of this process, sysctls of its network namespace,
    /// memory and CPUs (through sysinfo), and every key of `conf`.
    pub fn read(conf: Option<&Conf>) -> HostView {
        use redpacket_sys::{rlimit, sysctl, system};
        let (nofile_soft, nofile_hard) = rlimit::nofile();
        let mem = system::memory();
        HostView {
            nofile_soft,
            nofile_hard,
            nr_open: sysctl::read_u64("fs.nr_open"),
            file_max: sysctl::read_u64("fs.file-max"),
            mem_available: (mem.total > 0).then_some(mem.available),
            cpus: system::cpu_count(),
            allowed_cpus: redpacket_sys::cores::allowed_cpus(),
            port_range: sysctl::port_range(),
            ehash_buckets: sysctl::read("net.ipv4.tcp_ehash_entries")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(i64::unsigned_abs),
            sysctls: conf
                .map(|c| {
                    c.keys
                        .iter()
                        .map(|k| (k.key.clone(), sysctl::read(&k.key)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `redpacket-server check` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAsk {
    /// Connections the host must hold, all instances together.
    pub connections: u64,
    /// Server processes sharing them (each has its own open-files limit).
    pub instances: u64,
    /// `--cores`, when given.
    pub cores: Option<Vec<usize>>,
    /// The control server's connection cap (`--control-max-conns`), whose descriptors
    /// each process sets apart.
    pub control_max_conns: u64,
}

/// `redpacket-loadgen check` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadgenAsk {
    pub users: u64,
    /// Source addresses (1 when the kernel chooses).
    pub source_addrs: u64,
    /// Server addresses the users are spread over.
    pub servers: u64,
    /// Processes the users are split over (`--procs`).
    pub procs: u64,
}

/// The words that differ between the roles.
struct Words {
    role: Role,
    what: &'static str,
    file: &'static str,
    dest: &'static str,
    user_bytes: u64,
}

const SERVER: Words = Words {
    role: Role::Server,
    what: "connections",
    file: "sysctl/server.conf",
    dest: "/etc/sysctl.d/60-redpacket-server.conf",
    user_bytes: SERVER_USER_BYTES,
};

const LOADGEN: Words = Words {
    role: Role::Loadgen,
    what: "users",
    file: "sysctl/client.conf",
    dest: "/etc/sysctl.d/60-redpacket-client.conf",
    user_bytes: LOADGEN_USER_BYTES,
};

impl Words {
    fn apply(&self) -> String {
        format!(
            "in the redpacket source folder: sudo cp {} {} && sudo sysctl --system",
            self.file, self.dest
        )
    }

    fn split(&self, processes: u64) -> String {
        match self.role {
            Role::Server => format!("split the connections over --instances {processes} processes"),
            Role::Loadgen => format!("use --procs {processes}"),
        }
    }
}

/// The server host's check.
pub fn server(ask: &ServerAsk, conf: Option<&Conf>, host: &HostView) -> Report {
    let n = ask.connections;
    // What the server keeps back per process with its default control cap and one
    // worker per CPU asked for (or per CPU it may use).
    let workers = ask
        .cores
        .as_ref()
        .map_or(host.allowed_cpus.len().max(1), |c| c.len());
    let reserve = FD_RESERVE + server_set_apart(ask.control_max_conns, workers);
    let mut items = nofile_items(n, ask.instances.max(1), reserve, host, conf, &SERVER);
    items.extend(memory_item(n, host, &SERVER));
    items.push(server_cpus(ask, host));
    items.extend(established_table_item(n, host));
    items.extend(conf_items(n, conf, host, &SERVER));
    Report::new(Role::Server, n, items)
}

/// The load generator host's check. Without `conf`, only what bounds the count
/// (open files, memory, ports): the refusal before a run.
pub fn loadgen(ask: &LoadgenAsk, conf: Option<&Conf>, host: &HostView) -> Report {
    let n = ask.users;
    let mut items = nofile_items(n, ask.procs.max(1), FD_RESERVE, host, conf, &LOADGEN);
    items.extend(memory_item(n, host, &LOADGEN));
    items.extend(ports_item(ask, host));
    if conf.is_some() {
        items.push(Item {
            name: "cpus".into(),
            value: format!("{} online, {} allowed", host.cpus, host.allowed_cpus.len()),
            wanted: "one pinned worker thread per allowed CPU (--threads)".into(),
            ok: true,
            judged: false,
            scope: Scope::Process,
            limits: "request rate, not users".into(),
            kind: Kind::Info,
            op: "",
            holds: None,
            fix: String::new(),
        });
    }
    items.extend(conf_items(n, conf, host, &LOADGEN));
    Report::new(Role::Loadgen, n, items)
}

/// Both sides of a run on one host (the demo): `users` connections held by `instances`
/// server processes and `procs` load-generator processes over loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneHostAsk {
    pub users: u64,
    pub instances: u64,
    /// Workers of each server instance.
    pub workers: usize,
    pub procs: u64,
    /// Source addresses (1 when the kernel chooses).
    pub source_addrs: u64,
}

/// What bounds `users` when server and load generator share this host: each side's
/// open-files limit per process, the host's open files (two per user), memory (both
/// programs' user space and two kernel sockets per user) and ephemeral ports. The
/// refusal before the demo starts anything.
pub fn one_host(ask: &OneHostAsk, host: &HostView) -> Report {
    let n = ask.users;
    let server_reserve =
        FD_RESERVE + server_set_apart(crate::reserve::DEFAULT_CONTROL_MAX_CONNS, ask.workers);
    let mut items = Vec::new();
    for (side, k, reserve, w) in [
        ("server", ask.instances.max(1), server_reserve, &SERVER),
        ("loadgen", ask.procs.max(1), FD_RESERVE, &LOADGEN),
    ] {
        for mut it in nofile_items(n, k, reserve, host, None, w) {
            if it.name.starts_with("rlimit.") || (side == "server" && it.name == "fs.nr_open") {
                it.name = format!("{side} {}", it.name);
                items.push(it);
            }
        }
    }
    if let Some(file_max) = host.file_max {
        let reserve = server_reserve * ask.instances.max(1) + FD_RESERVE * ask.procs.max(1);
        items.push(file_max_item(
            n,
            2,
            reserve,
            file_max,
            "open files of all processes together: two per user on one host",
            "",
        ));
    }
    let per = SERVER_USER_BYTES + LOADGEN_USER_BYTES + 2 * KERNEL_SOCKET_BYTES;
    let limits = format!(
        "users: {SERVER_USER_BYTES} B server + {LOADGEN_USER_BYTES} B load generator \
         in user space + 2 x {KERNEL_SOCKET_BYTES} B in the kernel each"
    );
    items.extend(memory_need(n, per, limits, host, |need, avail| {
        format!(
            "{n} users on one host need about {need} MiB at {per} bytes each but {avail} MiB \
             is available: ask for fewer users or free memory"
        )
    }));
    let ports = LoadgenAsk {
        users: n,
        source_addrs: ask.source_addrs,
        servers: ask.instances,
        procs: ask.procs,
    };
    items.extend(ports_item(&ports, host));
    items.extend(established_table_item(2 * n, host));
    Report::new(Role::Loadgen, n, items)
}

/// The TCP established table against the sockets it will hold. Every segment that
/// arrives walks one of its chains; it is sized once, at boot (or when a network
/// namespace is made), so a host with far more sockets than buckets pays on every
/// segment (two million loopback sockets in 262 144 buckets: 10 % of all CPU at
/// 30 000 shakes/s, bench/README.md). Advice: it bounds CPU, not connections.
fn established_table_item(sockets: u64, host: &HostView) -> Option<Item> {
    let buckets = host.ehash_buckets.filter(|b| *b > 0)?;
    // Chains of two sockets on average at most.
    let wanted = sockets.div_ceil(2).max(1).next_power_of_two();
    Some(Item {
        name: "net.ipv4.tcp_ehash_entries".into(),
        value: format!(
            "{buckets} (chains of {:.1} sockets)",
            sockets as f64 / buckets as f64
        ),
        wanted: wanted.to_string(),
        ok: buckets >= wanted,
        judged: true,
        scope: Scope::Netns,
        limits: "CPU per segment: each one walks a chain of the table".into(),
        kind: Kind::Advice,
        op: ">=",
        holds: None,
        fix: format!(
            "sized at boot: add thash_entries={wanted} to the kernel command line; for a \
             network namespace, sysctl net.ipv4.tcp_child_ehash_entries={wanted} before \
             it is made (bench/million.sh does)"
        ),
    })
}

fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// Soft and hard RLIMIT_NOFILE, `fs.nr_open` and (unless the conf has it)
/// `fs.file-max`, for `n` connections over `k` processes that each keep `reserve`
/// descriptors for other things.
fn nofile_items(
    n: u64,
    k: u64,
    reserve: u64,
    host: &HostView,
    conf: Option<&Conf>,
    w: &Words,
) -> Vec<Item> {
    let conns_for = |nofile: u64| conns_for_with(nofile, reserve);
    let want = n.div_ceil(k) + reserve;
    let hard_holds = conns_for(host.nofile_hard).saturating_mul(k);
    let mut items = vec![
        Item {
            name: "rlimit.nofile.soft".into(),
            value: show(host.nofile_soft),
            wanted: show(host.nofile_hard),
            ok: true,
            judged: false,
            scope: Scope::Process,
            limits: "open files now: the program raises it to the hard limit at start".into(),
            kind: Kind::Info,
            op: "raised to",
            holds: None,
            fix: String::new(),
        },
        Item {
            name: "rlimit.nofile.hard".into(),
            value: show(host.nofile_hard),
            wanted: want.to_string(),
            ok: hard_holds >= n,
            judged: true,
            scope: Scope::Process,
            limits: format!(
                "open files of one process: one per {}",
                &w.what[..w.what.len() - 1]
            ),
            kind: Kind::Limit,
            op: ">=",
            holds: Some(hard_holds),
            fix: format!(
                "raise the hard open-files limit to {want} or more: sudo cp sysctl/limits.conf \
                 /etc/security/limits.d/60-redpacket.conf and log in again (a systemd service \
                 takes LimitNOFILE={want} in its unit instead); or {}",
                w.split(n.div_ceil(conns_for(host.nofile_hard)).max(k + 1))
            ),
        },
    ];
    if let Some(nr_open) = host.nr_open {
        let holds = conns_for(nr_open).saturating_mul(k);
        let from_file = conf
            .and_then(|c| c.get("fs.nr_open"))
            .and_then(|key| key.value.parse::<u64>().ok())
            .filter(|&v| v >= want);
        items.push(Item {
            name: "fs.nr_open".into(),
            value: nr_open.to_string(),
            wanted: want.to_string(),
            ok: holds >= n,
            judged: true,
            scope: Scope::Global,
            limits: "the highest open-files limit a process may be given".into(),
            kind: Kind::Limit,
            op: ">=",
            holds: Some(holds),
            fix: match from_file {
                Some(v) => format!("{} (sets fs.nr_open = {v})", w.apply()),
                None => format!("sudo sysctl -w fs.nr_open={want} and keep it in {}", w.dest),
            },
        });
    }
    let in_conf = conf.is_some_and(|c| c.get("fs.file-max").is_some());
    if let (Some(file_max), false) = (host.file_max, in_conf) {
        items.push(file_max_item(
            n,
            1,
            reserve.saturating_mul(k),
            file_max,
            "open files of all processes together",
            &format!(" and keep it in {}", w.dest),
        ));
    }
    items
}

/// `fs.file-max` against `n` connections of `per_user` files each, plus `reserve`
/// files kept for other things by all the processes together.
fn file_max_item(
    n: u64,
    per_user: u64,
    reserve: u64,
    file_max: u64,
    limits: &str,
    fix_tail: &str,
) -> Item {
    let wanted = n.saturating_mul(per_user).saturating_add(reserve);
    let holds = file_max.saturating_sub(reserve) / per_user.max(1);
    Item {
        name: "fs.file-max".into(),
        value: file_max.to_string(),
        wanted: wanted.to_string(),
        ok: holds >= n,
        judged: true,
        scope: Scope::Global,
        limits: limits.into(),
        kind: Kind::Limit,
        op: ">=",
        holds: Some(holds),
        fix: format!("sudo sysctl -w fs.file-max={wanted}{fix_tail}"),
    }
}

/// `MemAvailable` against `n` times the measured cost of one connection.
fn memory_item(n: u64, host: &HostView, w: &Words) -> Option<Item> {
    let per = w.user_bytes + KERNEL_SOCKET_BYTES;
    let limits = format!(
        "{}: {} B in user space + {KERNEL_SOCKET_BYTES} B in the kernel each",
        w.what, w.user_bytes
    );
    memory_need(n, per, limits, host, |need, avail| match w.role {
        Role::Server => format!(
            "{n} connections need about {need} MiB at {per} bytes each: free or add memory, \
             or spread the connections over more hosts"
        ),
        Role::Loadgen => format!(
            "{n} users need about {need} MiB at {per} bytes each but {avail} MiB is \
             available: use fewer --users per host or add memory"
        ),
    })
}

/// `MemAvailable` against `n` times `per` bytes; `fix` gets the MiB needed and available.
fn memory_need(
    n: u64,
    per: u64,
    limits: String,
    host: &HostView,
    fix: impl Fn(u64, u64) -> String,
) -> Option<Item> {
    let avail = host.mem_available?;
    let need = n.saturating_mul(per);
    let holds = avail / per;
    Some(Item {
        name: "memory".into(),
        value: format!("{} MiB available", avail >> 20),
        wanted: format!("{} MiB", need.div_ceil(1 << 20)),
        ok: holds >= n,
        judged: true,
        scope: Scope::Global,
        limits,
        kind: Kind::Limit,
        op: ">=",
        holds: Some(holds),
        fix: fix(need >> 20, avail >> 20),
    })
}

/// Ephemeral ports: one per user for each (source address, server address) pair.
fn ports_item(ask: &LoadgenAsk, host: &HostView) -> Option<Item> {
    let (lo, hi) = host.port_range?;
    let ports = hi.saturating_sub(lo) + 1;
    let (s, k, n) = (ask.source_addrs.max(1), ask.servers.max(1), ask.users);
    let cap = ports.saturating_mul(s).saturating_mul(k);
    let sources = n.div_ceil(ports.saturating_mul(k).max(1)).max(s + 1);
    Some(Item {
        name: "ephemeral_ports".into(),
        value: format!("{ports} ({lo}-{hi}) x {s} source x {k} server = {cap}"),
        wanted: n.to_string(),
        ok: cap >= n,
        judged: true,
        scope: Scope::Netns,
        limits: "users: one port per user for each (source address, server address) pair".into(),
        kind: Kind::Limit,
        op: ">=",
        holds: Some(cap),
        fix: format!(
            "{n} users need {n} ports but {s} source address(es) x {k} server(s) x {ports} \
             ports give {cap}: add --source-addrs with {sources} addresses or more (e.g. \
             127.0.0.2-127.0.0.{} on loopback; on a real host, addresses of its interface); or \
             widen net.ipv4.ip_local_port_range, {}",
            (sources + 1).min(254),
            LOADGEN.apply()
        ),
    })
}

/// `--cores` against the CPUs this process may use.
fn server_cpus(ask: &ServerAsk, host: &HostView) -> Item {
    let value = format!(
        "{} online, allowed {}",
        host.cpus,
        redpacket_sys::cores::format_list(&host.allowed_cpus)
    );
    match &ask.cores {
        Some(cores) => {
            let missing: Vec<usize> = cores
                .iter()
                .copied()
                .filter(|c| !host.allowed_cpus.contains(c))
                .collect();
            Item {
                name: "cpus".into(),
                value,
                wanted: redpacket_sys::cores::format_list(cores),
                ok: missing.is_empty(),
                judged: true,
                scope: Scope::Process,
                limits:
                    "one pinned worker per CPU of --cores: the server does not start without them"
                        .into(),
                kind: Kind::Limit,
                op: "has",
                holds: (!missing.is_empty()).then_some(0),
                fix: format!(
                    "CPU {} of --cores cannot be used here: choose among {}",
                    redpacket_sys::cores::format_list(&missing),
                    redpacket_sys::cores::format_list(&host.allowed_cpus)
                ),
            }
        }
        None => Item {
            name: "cpus".into(),
            value,
            wanted: "one pinned worker per allowed CPU".into(),
            ok: true,
            judged: false,
            scope: Scope::Process,
            limits: "request rate, not connections".into(),
            kind: Kind::Info,
            op: "",
            holds: None,
            fix: String::new(),
        },
    }
}

/// Every key of the conf, judged (fs.nr_open is judged per process above): a scaled key
/// is a limit, a fixed one advice, a key shown only (or absent here) info.
fn conf_items(n: u64, conf: Option<&Conf>, host: &HostView, w: &Words) -> Vec<Item> {
    let Some(conf) = conf else {
        return Vec::new();
    };
    conf.keys
        .iter()
        .filter(|k| k.key != "fs.nr_open")
        .map(|k| {
            let live = host.sysctls.get(&k.key).cloned().flatten();
            let v = judge(k, live.as_deref(), n, conf.target);
            let beyond_file = k.scale_conn && conf.target.is_some_and(|t| n > t);
            Item {
                name: k.key.clone(),
                value: v.value,
                ok: v.ok,
                judged: v.judged,
                scope: k.scope,
                limits: k.limits.clone(),
                kind: if !v.judged {
                    Kind::Info
                } else if v.holds.is_some() {
                    Kind::Limit
                } else {
                    Kind::Advice
                },
                op: match k.check {
                    Check::AtLeast => ">=",
                    Check::AtMost => "<=",
                    Check::Equal => "=",
                    Check::Range => "covers",
                    Check::Info => "file:",
                },
                holds: v.holds,
                fix: if beyond_file {
                    format!(
                        "{}'s value is for {} {}: set {} = {} in {}, then sudo sysctl --system",
                        w.file,
                        conf.target.unwrap_or(0),
                        w.what,
                        k.key,
                        v.wanted,
                        w.dest
                    )
                } else {
                    w.apply()
                },
                wanted: v.wanted,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host like the development machine: 20 000 open files, 2 CPUs.
    fn host() -> HostView {
        HostView {
            nofile_soft: 1024,
            nofile_hard: 20_000,
            nr_open: Some(1_048_576),
            file_max: Some(2_466_193),
            mem_available: Some(20 << 30),
            cpus: 2,
            allowed_cpus: vec![0, 1],
            port_range: Some((32768, 60999)),
            ehash_buckets: Some(262_144),
            sysctls: BTreeMap::new(),
        }
    }

    #[test]
    fn a_small_established_table_is_advice_not_a_limit() {
        let mut h = host();
        let ask = OneHostAsk {
            users: 1_000_000,
            instances: 51,
            workers: 1,
            procs: 51,
            source_addrs: 50,
        };
        let r = one_host(&ask, &h);
        let it = item(&r, "net.ipv4.tcp_ehash_entries");
        assert_eq!(
            (it.kind, it.ok, it.wanted.as_str()),
            (Kind::Advice, false, "1048576")
        );
        assert!(it.value.contains("chains of 7.6"), "{}", it.value);
        assert!(it.fix.contains("thash_entries=1048576"), "{}", it.fix);
        assert!(r
            .advice
            .iter()
            .any(|a| a.starts_with("net.ipv4.tcp_ehash_entries")));
        h.ehash_buckets = Some(2_097_152);
        let r = one_host(&ask, &h);
        assert!(item(&r, "net.ipv4.tcp_ehash_entries").ok);
        // A server's own connections: one socket each.
        h.ehash_buckets = Some(524_288);
        let r = server(&sask(1_000_000, 1), None, &h);
        assert!(item(&r, "net.ipv4.tcp_ehash_entries").ok);
        h.ehash_buckets = None;
        let r = server(&sask(1_000_000, 1), None, &h);
        assert!(r
            .items
            .iter()
            .all(|i| i.name != "net.ipv4.tcp_ehash_entries"));
    }

    fn sask(n: u64, k: u64) -> ServerAsk {
        ServerAsk {
            connections: n,
            instances: k,
            cores: None,
            control_max_conns: crate::reserve::DEFAULT_CONTROL_MAX_CONNS,
        }
    }

    fn item<'a>(r: &'a Report, name: &str) -> &'a Item {
        r.items.iter().find(|i| i.name == name).unwrap()
    }

    #[test]
    fn open_files_bound_one_process_and_instances_multiply_them() {
        // The test host allows 2 CPUs: two workers, and the control server's default cap.
        let reserve = FD_RESERVE + server_set_apart(crate::reserve::DEFAULT_CONTROL_MAX_CONNS, 2);
        assert_eq!(reserve, 154);
        let r = server(&sask(1_000_000, 1), None, &host());
        assert_eq!(r.can_hold, 20_000 - reserve);
        assert!(!r.ok);
        assert!(
            r.first_to_raise
                .starts_with("rlimit.nofile.hard: raise the hard open-files limit to 1000154"),
            "{}",
            r.first_to_raise
        );
        assert!(
            r.first_to_raise.contains("--instances 51"),
            "{}",
            r.first_to_raise
        );
        assert!(r.first_to_raise.contains("LimitNOFILE=1000154"));
        let soft = item(&r, "rlimit.nofile.soft");
        assert!(!soft.judged, "the soft limit is raised at start");
        // 51 instances of 19 846 each hold a million.
        let r = server(&sask(1_000_000, 51), None, &host());
        assert_eq!(
            item(&r, "rlimit.nofile.hard").wanted,
            (19_608 + reserve).to_string()
        );
        assert_eq!(r.can_hold, 51 * (20_000 - reserve));
        assert!(r.ok, "{}", r.human());
        // fs.nr_open bounds what any hard limit can be raised to.
        let mut h = host();
        h.nofile_hard = 2_000_000;
        h.nr_open = Some(100_000 + reserve);
        let r = server(&sask(1_000_000, 1), None, &h);
        assert_eq!(r.can_hold, 100_000);
        assert!(r
            .first_to_raise
            .starts_with("fs.nr_open: sudo sysctl -w fs.nr_open=1000154"));
    }

    #[test]
    fn memory_counts_user_and_kernel_bytes() {
        let mut h = host();
        h.nofile_hard = u64::MAX;
        h.mem_available = Some((SERVER_USER_BYTES + KERNEL_SOCKET_BYTES) * 1000);
        let r = server(&sask(1000, 1), None, &h);
        assert_eq!(item(&r, "memory").holds, Some(1000));
        assert!(r.ok);
        let r = server(&sask(1001, 1), None, &h);
        assert!(!r.ok);
        assert_eq!(r.can_hold, 1000);
        assert!(
            r.first_to_raise.starts_with("memory: "),
            "{}",
            r.first_to_raise
        );
    }

    #[test]
    fn cores_must_be_usable() {
        let mut a = sask(10, 1);
        a.cores = Some(vec![1]);
        assert!(server(&a, None, &host()).ok);
        a.cores = Some(vec![1, 5]);
        let r = server(&a, None, &host());
        assert!(!r.ok);
        assert_eq!(r.can_hold, 0);
        assert!(
            r.first_to_raise.contains("CPU 5 of --cores"),
            "{}",
            r.first_to_raise
        );
    }

    #[test]
    fn conf_keys_are_judged_and_scaled() {
        let conf = Conf::parse(
            "sysctl/server.conf",
            "# redpacket: target-connections=1000000\n\
             # redpacket: scope=netns check=at-least limits=bursts\n\
             net.core.somaxconn = 65535\n\
             # redpacket: scope=global check=at-least scale=conn limits=files\n\
             fs.file-max = 2000000\n\
             # redpacket: scope=global check=info limits=spin\n\
             net.core.busy_poll = 0\n\
             # redpacket: scope=global check=at-least limits=max\n\
             fs.nr_open = 1048576\n",
        )
        .unwrap();
        let mut h = host();
        h.sysctls
            .insert("net.core.somaxconn".into(), Some("4096".into()));
        h.sysctls.insert("fs.file-max".into(), Some("30000".into()));
        h.sysctls.insert("net.core.busy_poll".into(), None);
        let r = server(&sask(10_000, 1), Some(&conf), &h);
        let som = item(&r, "net.core.somaxconn");
        assert!(!som.ok && som.judged);
        assert_eq!(som.kind, Kind::Advice);
        assert_eq!(som.holds, None, "a fixed setting does not bound the count");
        assert_eq!(som.fix, SERVER.apply());
        let fm = item(&r, "fs.file-max");
        assert_eq!(fm.kind, Kind::Limit, "a scaled key bounds the count");
        assert_eq!(fm.wanted, "20000");
        assert!(fm.ok);
        assert_eq!(fm.holds, Some(15_000));
        let bp = item(&r, "net.core.busy_poll");
        assert!(!bp.judged);
        assert_eq!(bp.kind, Kind::Info);
        assert_eq!(r.items.iter().filter(|i| i.name == "fs.nr_open").count(), 1);
        assert_eq!(
            r.items.iter().filter(|i| i.name == "fs.file-max").count(),
            1
        );
        // A fixed key that is short is advice: the counted limits set the verdict.
        assert_eq!(r.can_hold, 15_000);
        assert!(r.ok, "{}", r.human());
        assert_eq!(
            r.advice,
            ["net.core.somaxconn is 4096, wanted >= 65535: bursts"]
        );
        h.sysctls
            .insert("net.core.somaxconn".into(), Some("65535".into()));
        let r = server(&sask(10_000, 1), Some(&conf), &h);
        assert!(r.ok, "{}", r.human());
        assert!(r.advice.is_empty());
        assert_eq!(r.can_hold, 15_000);
        // Past the file's target the advice gives the scaled value to set.
        let r = server(&sask(2_000_000, 200), Some(&conf), &h);
        assert!(item(&r, "fs.file-max")
            .fix
            .contains("set fs.file-max = 4000000"));
    }

    /// The untuned VM: somaxconn 4096, the rest of `sysctl/server.conf` as the kernel
    /// has it, 20 000 open files and 20 GiB free.
    fn untuned() -> (Conf, HostView) {
        let conf = Conf::server();
        let mut h = host();
        for k in &conf.keys {
            h.sysctls.insert(k.key.clone(), Some(k.value.clone()));
        }
        h.sysctls
            .insert("net.core.somaxconn".into(), Some("4096".into()));
        h.sysctls
            .insert("net.ipv4.tcp_max_syn_backlog".into(), Some("2048".into()));
        h.sysctls
            .insert("net.ipv4.tcp_fin_timeout".into(), Some("60".into()));
        (conf, h)
    }

    #[test]
    fn advice_never_lowers_what_the_host_can_hold() {
        let (conf, h) = untuned();
        let r = server(&sask(1000, 1), Some(&conf), &h);
        assert!(r.ok, "{}", r.human());
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.can_hold, 20_000 - 154, "the open-files limit binds");
        assert!(r.can_hold >= r.asked);
        assert_eq!(r.first_to_raise, "");
        assert_eq!(r.advice.len(), 3, "{:?}", r.advice);
        assert!(
            r.advice[0].starts_with("net.core.somaxconn is 4096, wanted >= 65535: "),
            "{:?}",
            r.advice
        );
        assert!(r.advice[2].starts_with("net.ipv4.tcp_fin_timeout is 60, wanted <= 15: "));
        let h_ = r.human();
        let lines: Vec<&str> = h_.lines().collect();
        assert_eq!(
            lines[0],
            "ok: this host can hold 19846 connections as it is (asked 1000); 3 advice \
             items below (only --strict fails on advice)"
        );
        let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
        let (limits, advice) = (at("limits ("), at("advice ("));
        assert!(
            limits < at("ok     rlimit.nofile.hard") && at("ok     rlimit.nofile.hard") < advice
        );
        assert!(advice < at("SHORT  net.core.somaxconn"), "{h_}");
        assert!(advice < at("ok     net.core.netdev_max_backlog"), "{h_}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("  fix ")).count(),
            1,
            "one file fixes the three keys: {h_}"
        );
        // --strict: the same figures, but the advice fails it.
        let s = server(&sask(1000, 1), Some(&conf), &h).strict(true);
        assert!(!s.ok);
        assert_eq!(s.exit_code(), 1);
        assert_eq!((s.can_hold, s.strict), (r.can_hold, true));
        assert_eq!(s.first_to_raise, "", "no limit is short");
        assert!(
            s.summary()
                .starts_with("SHORT (--strict): this host can hold 19846"),
            "{}",
            s.summary()
        );
        // Tuned, --strict passes.
        let mut tuned = h.clone();
        for k in &conf.keys {
            tuned.sysctls.insert(k.key.clone(), Some(k.value.clone()));
        }
        let t = server(&sask(1000, 1), Some(&conf), &tuned).strict(true);
        assert!(t.ok && t.advice.is_empty(), "{}", t.human());
    }

    #[test]
    fn short_of_open_files_the_limit_is_raised_first_not_the_advice() {
        let (conf, h) = untuned();
        let r = server(&sask(50_000, 1), Some(&conf), &h);
        assert!(!r.ok);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.can_hold, 20_000 - 154);
        assert!(
            r.first_to_raise
                .starts_with("rlimit.nofile.hard: raise the hard open-files limit"),
            "{}",
            r.first_to_raise
        );
        assert_eq!(r.advice.len(), 3, "the advice is still listed");
        assert!(r
            .summary()
            .starts_with("SHORT: this host can hold 19846 connections as it is (asked 50000); raise first: rlimit.nofile.hard"));
        // Every short item that is not advice is a limit that allows fewer than asked.
        for i in r
            .items
            .iter()
            .filter(|i| i.judged && !i.ok && i.kind != Kind::Advice)
        {
            assert_eq!(i.kind, Kind::Limit, "{}", i.name);
            assert!(i.holds.is_some_and(|h| h < 50_000), "{}", i.name);
        }
    }

    #[test]
    fn one_host_counts_both_sides_and_two_files_per_user() {
        let mut h = host();
        h.nofile_soft = 20_000;
        h.nofile_hard = 20_000;
        h.file_max = Some(2_466_193);
        h.mem_available = Some(24 << 30);
        let ask = |users, instances, procs, sources| OneHostAsk {
            users,
            instances,
            workers: 1,
            procs,
            source_addrs: sources,
        };
        let r = one_host(&ask(1_000_000, 51, 51, 50), &h);
        assert!(r.ok, "{}", r.human());
        // Too few server instances for the open-files limit: the server's item binds.
        let r = one_host(&ask(1_000_000, 40, 51, 50), &h);
        assert!(!r.ok);
        assert!(
            r.first_to_raise.starts_with("server rlimit.nofile.hard"),
            "{}",
            r.first_to_raise
        );
        // Two files per user: 1.3 M users exceed a file-max of 2.47 M.
        let r = one_host(&ask(1_300_000, 66, 66, 65), &h);
        assert!(r.first_to_raise.starts_with("fs.file-max"), "{}", r.human());
        // Memory: 11.6 KB per user; 8 GiB holds about 740 k.
        h.mem_available = Some(8 << 30);
        let r = one_host(&ask(1_000_000, 51, 51, 50), &h);
        assert!(
            r.first_to_raise.starts_with("memory"),
            "{}",
            r.first_to_raise
        );
        assert!((600_000..800_000).contains(&r.can_hold), "{}", r.can_hold);
    }

    fn lask(users: u64, sources: u64, servers: u64, procs: u64) -> LoadgenAsk {
        LoadgenAsk {
            users,
            source_addrs: sources,
            servers,
            procs,
        }
    }

    #[test]
    fn the_load_generator_is_told_procs_or_source_addrs() {
        let h = host();
        assert!(loadgen(&lask(10_000, 1, 1, 1), None, &h).ok);
        let r = loadgen(&lask(60_000, 1, 1, 1), None, &h);
        assert!(!r.ok);
        assert!(
            r.first_to_raise.contains("--procs 4"),
            "{}",
            r.first_to_raise
        );
        // Two processes: files are enough, 28 232 ports of one address are not.
        let r = loadgen(&lask(30_000, 1, 1, 2), None, &h);
        assert_eq!(r.can_hold, 28_232);
        assert!(
            r.first_to_raise.contains("--source-addrs with 2 addresses"),
            "{}",
            r.first_to_raise
        );
        assert!(loadgen(&lask(30_000, 2, 1, 2), None, &h).ok);
        assert!(
            loadgen(&lask(30_000, 1, 2, 2), None, &h).ok,
            "two servers double the pairs"
        );
        let mut h = host();
        h.mem_available = Some(1 << 20);
        let r = loadgen(&lask(10_000, 1, 1, 1), None, &h);
        assert!(r.first_to_raise.contains("MiB"), "{}", r.first_to_raise);
        // Without a conf, nothing but what bounds the count.
        assert!(r.items.iter().all(|i| i.name != "cpus"));
    }
}
