pub mod apportion;
pub mod protocol;
pub mod split;
pub mod stats;
pub mod config;
pub mod cores;
pub mod limits;
