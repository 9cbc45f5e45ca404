pub mod apportion;
pub mod protocol;
pub mod split;
pub mod stats;
pub mod report;
pub mod sysmon;
