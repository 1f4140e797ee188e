//! actlab: honest, fast experiments on activation functions in small MLPs.
//!
//! Data flows one way: CLI -> config -> data + model -> trainer -> run record -> report.

pub mod atomic;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod eval;
pub mod experiment;
pub mod faults;
pub mod inference;
pub mod model_io;
pub mod nn;
pub mod predict;
pub mod report;
pub mod run;
pub mod train;

/// Seconds since this process started (from /proc/self/stat; 0 where unavailable).
pub fn process_seconds() -> f64 {
    let started = || -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Field 22 (starttime, in clock ticks since boot) follows the ")" of the name.
        let rest = &stat[stat.rfind(')')? + 2..];
        let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(uptime - ticks / hz)
    };
    started().unwrap_or(0.0)
}

/// Implement serde's Serialize/Deserialize through Display/FromStr.
#[macro_export]
macro_rules! serde_via_string {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
