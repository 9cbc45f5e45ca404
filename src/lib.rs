pub mod apportion;
pub mod protocol;
pub mod split;
pub mod stats;
