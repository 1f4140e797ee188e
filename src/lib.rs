//! actlab: honest, fast experiments on activation functions in small MLPs.
//!
//! Layers, top to bottom; a module imports only from its own layer's helpers and the
//! layers below it:
//! 1. [`cli`]: the command line, parsed into calls of
//! 2. [`run`]: the commands end to end (printing, progress, Ctrl-C); `anyhow` lives here;
//! 3. [`experiment`] (variants, seeds, shards, scheduling) and [`report`] (summaries,
//!    tables, charts, HTML), which hand finished data to
//! 4. [`store`] (run folders, records, experiment specs), [`checkpoint`] and
//!    [`model_io`] (model files), over
//! 5. [`train`], [`eval`], [`diagnostics`], [`predict`] (image preparation), [`config`],
//! 6. [`nn`] (the model) and [`data`] (datasets), with
//! 7. [`atomic`], [`barrier`] (where a run's threads meet), [`faults`] and [`simd`]
//!    (the SIMD tier kernels run at) as plain utilities for every layer.

#![warn(missing_docs)]

pub mod atomic;
pub mod barrier;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod eval;
pub mod experiment;
pub mod faults;
pub mod model_io;
pub mod nn;
pub mod predict;
pub mod report;
pub mod run;
pub mod simd;
pub mod store;
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
