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
//! 7. [`atomic`] and [`faults`] as plain utilities for every layer.

#![warn(missing_docs)]

pub mod atomic;
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

/// The body of a function whose loops should use AVX2 (or AVX-512) where the CPU has
/// it: `$body` is compiled three times, in functions with AVX-512 and with AVX2
/// enabled (chosen at run time when the CPU supports them) and as portable code, over
/// the named arguments, which must be locals of the calling function with those names
/// and types. Element-wise loops give the same bits at any width.
#[macro_export]
macro_rules! avx2_or_portable {
    (($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2")]
            unsafe fn with_avx512($($arg: $ty),*) $(-> $ret)? $body
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: `with_avx512` only needs AVX-512F and AVX2, just found.
                return unsafe { with_avx512($($arg),*) };
            }
            #[target_feature(enable = "avx2")]
            unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? $body
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: `with_avx2` only needs AVX2, which the CPU was just found to have.
                return unsafe { with_avx2($($arg),*) };
            }
        }
        #[inline(always)]
        fn portable($($arg: $ty),*) $(-> $ret)? $body
        portable($($arg),*)
    }};
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
