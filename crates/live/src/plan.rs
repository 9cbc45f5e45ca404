//! What `redpacket-live --plan FILE` reads: the hosts to follow, their files, how to
//! reach them, and when the run ends. The fleet's playbook writes it
//! (`ansible/action_plugins/redpacket_live.py`).
//!
//! ```json
//! {"until": 1796288431.5,
//!  "hosts": [{"name": "cli1", "role": "loadgen", "files": ["/opt/redpacket/runs/R/cli1/loadgen.jsonl"],
//!             "ssh": ["ssh", "-o", "ControlPath=...", "-o", "User=fleet", "198.18.1.5"], "sudo": true},
//!            {"name": "srv1", "role": "server", "files": [".../srv1/instance-1/server.jsonl"]}]}
//! ```

use crate::{Role, Source};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Unix seconds: the end of the run's last phase; the view ends with that second.
    pub until: f64,
    pub hosts: Vec<PlanHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanHost {
    pub name: String,
    pub role: PlanRole,
    pub files: Vec<String>,
    #[serde(default)]
    pub ssh: Vec<String>,
    #[serde(default)]
    pub sudo: bool,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanRole {
    Loadgen,
    Server,
}

impl Plan {
    /// Reads and checks a plan: a host at least, each named once with a file at least.
    pub fn parse(text: &str) -> Result<Plan, String> {
        let plan: Plan = serde_json::from_str(text).map_err(|e| format!("the plan: {e}"))?;
        if !plan.until.is_finite() || plan.until <= 0.0 {
            return Err("the plan: until must be a time (Unix seconds)".into());
        }
        if plan.hosts.is_empty() {
            return Err("the plan: no host to follow".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in &plan.hosts {
            if !seen.insert(&h.name) {
                return Err(format!("the plan: host {:?} named twice", h.name));
            }
            if h.files.is_empty() {
                return Err(format!("the plan: host {:?} has no file to follow", h.name));
            }
        }
        Ok(plan)
    }

    /// The hosts as the view and the followers take them.
    pub fn hosts(&self) -> Vec<(Source, Role)> {
        self.hosts
            .iter()
            .map(|h| {
                let source = Source {
                    host: h.name.clone(),
                    files: h.files.clone(),
                    ssh: h.ssh.clone(),
                    sudo: h.sudo,
                };
                let role = match h.role {
                    PlanRole::Loadgen => Role::Loadgen,
                    PlanRole::Server => Role::Server,
                };
                (source, role)
            })
            .collect()
    }
}
