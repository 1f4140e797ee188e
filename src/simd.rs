//! Which SIMD tier the kernels run at: decided once per process from the CPU's
//! features, lowered by the `ACTLAB_SIMD` environment variable, and read by the one
//! dispatch macro, [`simd_dispatch!`](crate::simd_dispatch), that every kernel uses.
//!
//! Tiers, lowest first: `portable` (plain Rust, whatever the compiler targets by
//! default), `avx2` (AVX2 and FMA) and `avx512` (AVX-512F with AVX2 and FMA).
//! Element-wise kernels give the same bits at every tier; the first layer's sparse
//! kernels need FMA (see [`crate::nn::sparse::available`]), so on the portable tier
//! the first layer runs the dense matrix product instead. The matrix products
//! themselves (the `matrixmultiply` crate) choose their own kernels and are not
//! lowered by `ACTLAB_SIMD`.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// The environment variable that lowers the tier.
pub const ENV: &str = "ACTLAB_SIMD";

/// A set of CPU features the kernels are compiled for, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Plain Rust, no run-time features.
    Portable,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512F, AVX2 and FMA.
    Avx512,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 3] = [Tier::Portable, Tier::Avx2, Tier::Avx512];

    /// The name `ACTLAB_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Portable => "portable",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// The CPU features it needs, as a message names them.
    fn needs(self) -> &'static str {
        match self {
            Tier::Portable => "nothing",
            Tier::Avx2 => "AVX2+FMA",
            Tier::Avx512 => "AVX-512F",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why `ACTLAB_SIMD` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    /// The value names no tier.
    #[error("ACTLAB_SIMD={0}: not a SIMD tier; use portable, avx2 or avx512 (or unset it)")]
    Unknown(String),
    /// The tier needs features this CPU lacks.
    #[error("ACTLAB_SIMD={}: this CPU lacks {}; use {} (or unset it)", .asked, .asked.needs(), lower(*.have))]
    Lacks {
        /// The tier asked for.
        asked: Tier,
        /// The highest tier the CPU has.
        have: Tier,
    },
}

/// The tiers up to `have`, as a message lists them ("portable or avx2").
fn lower(have: Tier) -> String {
    let names: Vec<_> = Tier::ALL
        .iter()
        .filter(|&&t| t <= have)
        .map(|t| t.name())
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The highest tier this CPU has.
pub fn detected() -> Tier {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            return Tier::Avx512;
        }
        if avx2 {
            return Tier::Avx2;
        }
    }
    Tier::Portable
}

/// The tier a value of `ACTLAB_SIMD` asks for on a CPU whose highest tier is `have`
/// (`None` or empty: `have` itself).
pub fn choose(value: Option<&str>, have: Tier) -> Result<Tier, SimdError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(have);
    };
    let asked = Tier::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(value))
        .ok_or_else(|| SimdError::Unknown(value.to_string()))?;
    if asked > have {
        return Err(SimdError::Lacks { asked, have });
    }
    Ok(asked)
}

/// The process's tier: `ACTLAB_SIMD` read once, checked against the CPU. The command
/// line calls this first, so a bad value ends it with one line before any work.
pub fn check() -> Result<Tier, SimdError> {
    static CHOSEN: OnceLock<Result<Tier, SimdError>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let value = std::env::var_os(ENV).map(|v| v.to_string_lossy().into_owned());
            choose(value.as_deref(), detected())
        })
        .clone()
}

/// A tier as a byte, for the atomic and the thread-local below; `UNSET`: none yet.
const UNSET: u8 = u8::MAX;

fn from_byte(b: u8) -> Tier {
    Tier::ALL[usize::from(b).min(Tier::ALL.len() - 1)]
}

/// The process's tier once [`check`] accepted it (read on every kernel call).
static PROCESS: AtomicU8 = AtomicU8::new(UNSET);

thread_local! {
    /// A tier set for this thread by [`force`], in place of the process's.
    static FORCED: Cell<u8> = const { Cell::new(UNSET) };
}

/// The tier kernels run at on this thread. Panics with [`check`]'s message if
/// `ACTLAB_SIMD` is invalid (the command line has refused it before any kernel runs).
#[inline]
pub fn tier() -> Tier {
    let forced = FORCED.with(Cell::get);
    if forced != UNSET {
        return from_byte(forced);
    }
    match PROCESS.load(Ordering::Relaxed) {
        UNSET => first_tier(),
        b => from_byte(b),
    }
}

#[cold]
fn first_tier() -> Tier {
    match check() {
        Ok(t) => {
            PROCESS.store(t as u8, Ordering::Relaxed);
            t
        }
        Err(e) => panic!("{e}"),
    }
}

/// Run `f` with the kernels of this thread (only) at `tier`, for tests and
/// benchmarks that compare tiers in one process; threads `f` starts keep the
/// process's tier. Panics if the CPU lacks `tier`.
pub fn with_tier<R>(tier: Tier, f: impl FnOnce() -> R) -> R {
    let _forced = force(tier);
    f()
}

/// This thread's kernels run at `tier` until the guard is dropped (see [`with_tier`]).
/// Panics if the CPU lacks `tier`.
#[must_use = "the tier holds only while the guard lives"]
pub fn force(tier: Tier) -> Forced {
    let have = detected();
    assert!(tier <= have, "{}", SimdError::Lacks { asked: tier, have });
    Forced(FORCED.with(|c| c.replace(tier as u8)))
}

/// Restores this thread's previous tier when dropped, even while a panic unwinds.
#[derive(Debug)]
pub struct Forced(u8);

impl Drop for Forced {
    fn drop(&mut self) {
        FORCED.with(|c| c.set(self.0));
    }
}

/// `f`'s result at every tier this CPU has, lowest first (see [`with_tier`]).
pub fn each_tier<R>(mut f: impl FnMut() -> R) -> Vec<(Tier, R)> {
    Tier::ALL
        .into_iter()
        .filter(|&t| t <= detected())
        .map(|t| (t, with_tier(t, &mut f)))
        .collect()
}

/// The body of a kernel compiled once per tier, run at this thread's [`tier`]: `$body`
/// is compiled in functions with AVX-512F+AVX2+FMA and with AVX2+FMA enabled and as
/// portable code, over the named arguments, which must be locals of the calling
/// function with those names and types. It returns from the calling function, so it
/// is its last expression. Element-wise loops give the same bits at any width (Rust
/// never fuses a multiply and an add on its own; only `mul_add` rounds once).
#[macro_export]
macro_rules! simd_dispatch {
    (($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn with_avx512($($arg: $ty),*) $(-> $ret)? $body
            #[target_feature(enable = "avx2,fma")]
            unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? $body
            match $crate::simd::tier() {
                // SAFETY: `tier` never exceeds what `detected` found on this CPU, and
                // the avx512 tier has AVX-512F, AVX2 and FMA.
                $crate::simd::Tier::Avx512 => return unsafe { with_avx512($($arg),*) },
                // SAFETY: as above; the avx2 tier has AVX2 and FMA.
                $crate::simd::Tier::Avx2 => return unsafe { with_avx2($($arg),*) },
                $crate::simd::Tier::Portable => {}
            }
        }
        #[inline(always)]
        fn portable($($arg: $ty),*) $(-> $ret)? $body
        portable($($arg),*)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_is_the_cpus_tier() {
        assert_eq!(choose(None, Tier::Avx2), Ok(Tier::Avx2));
        assert_eq!(choose(Some(" "), Tier::Avx512), Ok(Tier::Avx512));
    }

    #[test]
    fn a_lower_tier_is_taken_a_higher_one_refused() {
        assert_eq!(choose(Some("portable"), Tier::Avx512), Ok(Tier::Portable));
        assert_eq!(choose(Some("AVX2"), Tier::Avx512), Ok(Tier::Avx2));
        let e = choose(Some("avx512"), Tier::Avx2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ACTLAB_SIMD=avx512: this CPU lacks AVX-512F; use portable or avx2 (or unset it)"
        );
        let e = choose(Some("avx2"), Tier::Portable).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ACTLAB_SIMD=avx2: this CPU lacks AVX2+FMA; use portable (or unset it)"
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_choices() {
        let e = choose(Some("sse"), Tier::Avx512).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ACTLAB_SIMD=sse: not a SIMD tier; use portable, avx2 or avx512 (or unset it)"
        );
    }

    #[test]
    fn with_tier_sets_this_thread_only_and_restores_it() {
        let before = tier();
        let (here, there) = with_tier(Tier::Portable, || {
            (tier(), std::thread::spawn(tier).join().unwrap())
        });
        assert_eq!(here, Tier::Portable);
        assert_eq!(there, before);
        assert_eq!(tier(), before);
    }

    #[test]
    fn each_tier_runs_every_tier_the_cpu_has() {
        let seen: Vec<_> = each_tier(tier)
            .into_iter()
            .map(|(t, got)| (t, got == t))
            .collect();
        let want: Vec<_> = Tier::ALL
            .into_iter()
            .filter(|&t| t <= detected())
            .map(|t| (t, true))
            .collect();
        assert_eq!(seen, want);
    }
}
