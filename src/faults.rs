//! Fault injection at named points, for tests of interruptions that must not depend
//! on timing. `ACTLAB_TEST_HOOK=ACTION@POINT:N` acts when the run reaches POINT for
//! the N-th time (for `checkpoint` and `record`, N is the epoch just written):
//! - `abort`: end the process at once (SIGABRT), as a crash or `kill -9` would;
//! - `wait`: print `test hook: waiting at POINT:N` to stderr, then wait (at most 60 s)
//!   until the stop flag is raised, so a test can send a real signal at a known point,
//!   or until the file named by `ACTLAB_TEST_RELEASE` exists.
//!
//! Points: `start` (N = 0: `actlab train` about to train its first epoch),
//! `checkpoint` (after a checkpoint write), `record` (after a run record
//! write), `summary` (between two of an experiment's summary files), `run` (after an
//! experiment's N-th finished run), `epoch` (after an experiment run's checkpoint of
//! epoch N).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The environment variable read by [`at`].
pub const HOOK_ENV: &str = "ACTLAB_TEST_HOOK";
/// A file whose existence ends a `wait`.
pub const RELEASE_ENV: &str = "ACTLAB_TEST_RELEASE";

/// What the hook does when its point is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Wait,
}

/// Parse `ACTION@POINT:N`; anything else means no hook.
fn parse(spec: &str) -> Option<(Action, &str, usize)> {
    let (action, rest) = spec.split_once('@')?;
    let (point, n) = rest.rsplit_once(':')?;
    let action = match action {
        "abort" => Action::Abort,
        "wait" => Action::Wait,
        _ => return None,
    };
    Some((action, point, n.parse().ok()?))
}

/// Act if the hook names `point` and `n`; `stop` is the flag a `wait` waits for.
pub fn at(point: &str, n: usize, stop: Option<&AtomicBool>) {
    let Ok(spec) = std::env::var(HOOK_ENV) else {
        return;
    };
    let Some((action, p, k)) = parse(&spec) else {
        return;
    };
    if p != point || k != n {
        return;
    }
    match action {
        Action::Abort => std::process::abort(),
        Action::Wait => {
            eprintln!("test hook: waiting at {point}:{n}");
            let t0 = Instant::now();
            let release = std::env::var_os(RELEASE_ENV).map(std::path::PathBuf::from);
            while !stop.is_some_and(|s| s.load(Ordering::SeqCst))
                && !release.as_ref().is_some_and(|r| r.exists())
                && t0.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_mean_nothing() {
        assert_eq!(
            parse("abort@checkpoint:2"),
            Some((Action::Abort, "checkpoint", 2))
        );
        assert_eq!(parse("wait@record:1"), Some((Action::Wait, "record", 1)));
        for bad in [
            "",
            "abort",
            "abort@checkpoint",
            "kill@record:1",
            "wait@record:x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
