//! Which CPUs get a worker: small pure decisions, kept out of `main`.

/// CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        // No affinity information: fall back to the parallelism the OS reports.
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        ids = (0..n).collect();
    }
    ids.sort_unstable();
    ids
}

/// Parses a CPU list such as `0-3,6` (the taskset/cpuset syntax).
pub fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("--cores {s:?}: {x:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b - a > 4096 {
                    return Err(format!("--cores {s:?}: bad range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    let n = out.len();
    out.sort_unstable();
    out.dedup();
    if out.len() != n {
        return Err(format!("--cores {s:?} names a CPU twice"));
    }
    if out.is_empty() {
        return Err(format!("--cores {s:?} names no CPU"));
    }
    Ok(out)
}

/// Writes CPUs back as a list such as `0-3,6` (the inverse of [`parse_list`] on a
/// sorted list).
pub fn format_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", cpus[i], cpus[j])
        } else {
            cpus[i].to_string()
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// Refuses CPUs outside the process's affinity mask, naming the ones it may use.
pub fn check_allowed(want: &[usize], allowed: &[usize]) -> Result<(), String> {
    match want.iter().find(|c| !allowed.contains(c)) {
        Some(c) => Err(format!(
            "--cores: CPU {c} is not available to this process (allowed: {allowed:?})"
        )),
        None => Ok(()),
    }
}

/// For SO_INCOMING_CPU steering the kernel picks listener `cpu % n` of the reuseport
/// group (listeners numbered in bind order). Returns, for each listener index, the
/// worker that must bind it so that listener `i` belongs to the worker on a CPU `c` with
/// `c % n == i`; refuses core sets where two workers share a residue.
pub fn steering_order(cores: &[usize]) -> Result<Vec<usize>, String> {
    let n = cores.len();
    let mut order = vec![usize::MAX; n];
    for (worker, &cpu) in cores.iter().enumerate() {
        let slot = &mut order[cpu % n];
        if *slot != usize::MAX {
            return Err(format!(
                "--steer-incoming-cpu needs CPUs with distinct values mod {n}; {cores:?} has two"
            ));
        }
        *slot = worker;
    }
    Ok(order)
}

/// Lets the calling thread's timed sleeps end at their deadline rather than up to
/// 50 us (the default timer slack) past it. Best effort.
pub fn tight_timer_slack() {
    // SAFETY: prctl with integer arguments only affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Puts the calling thread at the lowest priority (nice 19); threads and processes it
/// starts afterwards inherit it. For housekeeping beside a request path on the same
/// CPUs (per-second lines, the control port, samplers, the live view): when both want
/// a CPU, the housekeeping waits instead of holding a request up. Fifty processes that
/// all write their second's line at the same instant otherwise stall every request in
/// flight for tens of milliseconds, once a second. Best effort: false when refused.
pub fn background() -> bool {
    // SAFETY: gettid and setpriority take integers; on Linux a thread id given to
    // PRIO_PROCESS changes that thread only, and lowering a priority needs no privilege.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_lowers_only_the_calling_thread() {
        let nice = || std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 of stat is the nice value (after the command in parentheses).
        let field = |s: String| -> i64 {
            let rest = &s[s.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse().unwrap()
        };
        let before = field(nice());
        let t = std::thread::spawn(move || {
            assert!(background());
            field(nice())
        });
        assert_eq!(t.join().unwrap(), 19);
        assert_eq!(field(nice()), before);
    }

    #[test]
    fn lists_parse_like_taskset() {
        assert_eq!(parse_list("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_list("1").unwrap(), vec![1]);
        assert!(parse_list("1,1").is_err());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("").is_err());
        assert_eq!(format_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format_list(&parse_list("5,1-2,9").unwrap()), "1-2,5,9");
        assert_eq!(format_list(&[]), "none");
    }

    #[test]
    fn allowed_cpus_are_known_and_checked() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        assert!(check_allowed(&allowed, &allowed).is_ok());
        assert!(check_allowed(&[100_000], &allowed).is_err());
    }

    #[test]
    fn steering_maps_each_listener_to_the_worker_on_its_cpu() {
        assert_eq!(steering_order(&[0, 1, 2, 3]).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(steering_order(&[5, 2]).unwrap(), vec![1, 0]);
        assert!(steering_order(&[0, 2]).is_err());
    }
}
