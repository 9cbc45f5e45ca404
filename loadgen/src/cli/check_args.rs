//! `redpacket-loadgen check`: can this host hold N users as it is?

use super::usage::usage_error;
use crate::addrs::parse_source_addrs;
use clap::Args;

/// Flags of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Users this host must hold, all processes together (one connection each).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,
    /// Source addresses the users connect from, as for `run` (list, range or CIDR).
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// Server addresses the users are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub servers: u64,
    /// Processes the users are split over (`run --procs`): each has its own open files.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub procs: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) also when advice is short (settings that do not bound the count,
    /// such as tcp_tw_reuse), not only when a limit is.
    #[arg(long)]
    pub strict: bool,
}

impl CheckArgs {
    /// Reads this host and prints the check; returns the exit code.
    pub fn run(&self) -> i32 {
        use redpacket_host::check;
        use redpacket_host::conf::Conf;
        let sources = match &self.source_addrs {
            Some(s) => match parse_source_addrs(s) {
                Ok(a) => a.len() as u64,
                Err(e) => return usage_error(&format!("--source-addrs: {e}")),
            },
            None => 1,
        };
        let ask = check::LoadgenAsk {
            users: self.users,
            source_addrs: sources,
            servers: self.servers,
            procs: self.procs,
        };
        let conf = Conf::client();
        let report = check::loadgen(&ask, Some(&conf), &check::HostView::read(Some(&conf)))
            .strict(self.strict);
        if self.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.human());
        }
        report.exit_code()
    }
}
