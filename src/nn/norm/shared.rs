//! Batch norm over a batch split across worker threads: each worker sums its own
//! rows, the workers meet to add their sums, and each normalises its rows by the
//! whole batch's statistics.
//!
//! Shapes: a worker's x, y, dy, dx [m, c, s] (its m rows of the batch's n); partial
//! and combined sums [c + 1] forward (per channel, then the values counted) and
//! [2c + 1] backward (sum(dy), then sum((x - mean) * dy), then the count), in f64.
//!
//! Meeting points, in the same order on every worker: per batch-norm layer forward,
//! the sums (for the mean) and the squared deviations from it (for the variance); per
//! layer backward, the gradient sums. Partial sums are added in worker order, so a
//! run is deterministic for a given number of workers. A worker with no rows still
//! meets every time, with zero sums ([`crate::nn::Mlp::sit_out`]). One worker (no
//! [`Seat`]) keeps the serial kernels of `norm.rs` and their bits.

use std::sync::{Arc, Mutex, PoisonError};

use super::{apply_rows, block_grad_sums, dx_block, finish, groups, Channel, Terms};
use super::{BatchNorm, Moments, NormError, RunningStats, BLOCK, GROUP};
use crate::barrier::{Barrier, PoisonOnPanic};

/// Spins before a waiting worker goes to sleep (a few microseconds: the workers of a
/// step usually arrive close together; on a busy machine the one awaited may not be
/// running, and a sleeping waiter gives it the core).
const SPINS: u32 = 1 << 11;

/// Where the workers of one training step meet: a slot of partial sums per worker
/// and a barrier.
#[derive(Debug)]
pub struct Exchange {
    /// Two sets of slots, for alternate meetings: a worker writing meeting r + 1's
    /// slot cannot overwrite meeting r's before every worker has read it (it passed
    /// meeting r + 1's barrier, which every worker reaches after reading).
    slots: [Vec<Mutex<Vec<f64>>>; 2],
    barrier: Barrier,
}

impl Exchange {
    /// A meeting place for `workers` workers, each on its own thread.
    pub fn new(workers: usize) -> Arc<Exchange> {
        let set = || (0..workers).map(|_| Mutex::new(Vec::new())).collect();
        Arc::new(Exchange {
            slots: [set(), set()],
            barrier: Barrier::new(workers, SPINS, "batch-norm step"),
        })
    }

    /// Wait until every worker arrives (what each wrote before is then seen by all).
    fn wait(&self) {
        self.barrier.wait();
    }

    /// A guard that poisons the exchange if its thread unwinds while holding it, so
    /// no other worker waits for it forever.
    pub fn poison_on_panic(&self) -> PoisonOnPanic<'_> {
        self.barrier.poison_on_panic()
    }
}

/// One worker's place at an [`Exchange`], with its scratch sums.
#[derive(Debug, Clone)]
pub struct Seat {
    exchange: Arc<Exchange>,
    worker: usize,
    /// Meetings this worker has been to (which slot set the next one uses).
    round: usize,
    partial: Vec<f64>,
    combined: Vec<f64>,
}

impl Seat {
    /// Worker `worker`'s seat at `exchange`.
    pub fn new(exchange: Arc<Exchange>, worker: usize) -> Seat {
        Seat {
            exchange,
            worker,
            round: 0,
            partial: Vec::new(),
            combined: Vec::new(),
        }
    }

    /// The exchange this seat is at.
    pub fn exchange(&self) -> Arc<Exchange> {
        Arc::clone(&self.exchange)
    }

    /// This worker's partial sums for the next meeting, `len` zeros to add to.
    fn partial(&mut self, len: usize) -> &mut [f64] {
        self.partial.clear();
        self.partial.resize(len, 0.0);
        &mut self.partial
    }

    /// Meet the other workers: every worker's partial sums added in worker order.
    fn combine(&mut self) -> &[f64] {
        let set = &self.exchange.slots[self.round % 2];
        // A poisoned lock only means a panicking worker; the barrier reports it.
        set[self.worker]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone_from(&self.partial);
        self.round += 1;
        self.exchange.wait();
        self.combined.clear();
        self.combined.resize(self.partial.len(), 0.0);
        for slot in set {
            let s = slot.lock().unwrap_or_else(PoisonError::into_inner);
            for (a, &b) in self.combined.iter_mut().zip(s.iter()) {
                *a += b;
            }
        }
        &self.combined
    }
}

impl BatchNorm {
    /// [`BatchNorm::forward_train`] for this worker's `n` rows of a batch split across
    /// the workers at `seat`'s exchange: the statistics and the one-value check are
    /// the whole batch's; every worker moves its `running` copy the same way.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_train_shared(
        &self,
        x: &[f32],
        n: usize,
        affine: (&[f32], &[f32]),
        running: &mut RunningStats,
        saved: &mut Moments,
        y: &mut [f32],
        seat: &mut Seat,
    ) -> Result<(), NormError> {
        let (c, len) = (self.c, n * self.c * self.s);
        let (x, y) = (&x[..len], &mut y[..len]);
        let part = seat.partial(c + 1);
        sums_kernel(*self, x, n, &mut part[..c]);
        part[c] = (n * self.s) as f64;
        let total = seat.combine();
        let count = total[c] as usize;
        if count <= 1 {
            return Err(NormError::OneValuePerChannel { values: count });
        }
        saved.mean.resize(c, 0.0);
        saved.invstd.resize(c, 0.0);
        for (m, &t) in saved.mean.iter_mut().zip(total) {
            *m = (t / count as f64) as f32;
        }
        let part = seat.partial(c);
        squares_kernel(*self, x, n, &saved.mean, part);
        let total = seat.combine();
        for (ch, &sq) in total.iter().enumerate() {
            saved.invstd[ch] = finish(count, saved.mean[ch], sq as f32, running, ch);
        }
        apply_kernel(*self, (x, y), n, affine, saved);
        running.batches_tracked += 1;
        Ok(())
    }

    /// [`BatchNorm::backward`] for this worker's `n` rows, from the whole batch's
    /// gradient sums; worker 0 writes dweight and dbias, the others zeros (the
    /// trainer adds the workers' gradients).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_shared(
        &self,
        (x, dy, dx): (&[f32], &[f32], &mut [f32]),
        n: usize,
        weight: &[f32],
        saved: &Moments,
        (dweight, dbias): (&mut [f32], &mut [f32]),
        seat: &mut Seat,
    ) {
        let (c, len) = (self.c, n * self.c * self.s);
        let (x, dy, dx) = (&x[..len], &dy[..len], &mut dx[..len]);
        let part = seat.partial(2 * c + 1);
        grad_sums_kernel(*self, (x, dy), n, &saved.mean, part);
        part[2 * c] = (n * self.s) as f64;
        let first = seat.worker == 0;
        let total = seat.combine();
        let count = total[2 * c];
        let mut terms = Vec::with_capacity(c);
        for ch in 0..c {
            let (sum, dot) = (total[ch], total[c + ch]);
            let (mean, invstd) = (saved.mean[ch], saved.invstd[ch]);
            (dweight[ch], dbias[ch]) = match first {
                true => ((dot * invstd as f64) as f32, sum as f32),
                false => (0.0, 0.0),
            };
            terms.push(Terms {
                mean,
                k: (dot * invstd as f64 * invstd as f64 / count) as f32,
                grad_mean: (sum / count) as f32,
                scale: invstd * weight[ch],
            });
        }
        dx_kernel(*self, (x, dy, dx), n, &terms);
    }

    /// Per channel, the sum of this worker's values (in sample order, f64).
    #[inline(always)]
    fn partial_sums(&self, x: &[f32], n: usize, out: &mut [f64]) {
        if self.s == 1 {
            for row in x.chunks_exact(self.c) {
                out.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            return;
        }
        for (ch0, k) in groups(self.c) {
            let mut sums = [0.0f64; GROUP];
            self.sweep(k, (x, x), n, ch0, &mut |j, v, _| sums[j] += v as f64);
            out[ch0..ch0 + k].copy_from_slice(&sums[..k]);
        }
    }

    /// Per channel, the sum of this worker's squared deviations from `mean`.
    #[inline(always)]
    fn partial_squares(&self, x: &[f32], n: usize, mean: &[f32], out: &mut [f64]) {
        if self.s == 1 {
            for row in x.chunks_exact(self.c) {
                for ((a, &v), &m) in out.iter_mut().zip(row).zip(mean) {
                    *a += ((v - m) * (v - m)) as f64;
                }
            }
            return;
        }
        for (ch0, k) in groups(self.c) {
            let mut sq = [0.0f64; GROUP];
            let m = &mean[ch0..ch0 + k];
            self.sweep(k, (x, x), n, ch0, &mut |j, v, _| {
                sq[j] += ((v - m[j]) * (v - m[j])) as f64;
            });
            out[ch0..ch0 + k].copy_from_slice(&sq[..k]);
        }
    }

    /// y from the whole batch's statistics in `saved`.
    #[inline(always)]
    fn apply(
        &self,
        (x, y): (&[f32], &mut [f32]),
        n: usize,
        affine: (&[f32], &[f32]),
        saved: &Moments,
    ) {
        if self.s == 1 {
            let stats = (&saved.mean[..], &saved.invstd[..]);
            return apply_rows(self.c, x, affine, stats, y);
        }
        for ch in 0..self.c {
            let at = Channel {
                mean: saved.mean[ch],
                invstd: saved.invstd[ch],
            };
            self.apply_planes(x, n, ch, affine, at, y);
        }
    }

    /// Per channel, this worker's sum(dy) into out[..c] and sum((x - mean) * dy)
    /// into out[c..2c].
    #[inline(always)]
    fn partial_grad_sums(
        &self,
        (x, dy): (&[f32], &[f32]),
        n: usize,
        mean: &[f32],
        out: &mut [f64],
    ) {
        let c = self.c;
        if self.s == 1 {
            for col in (0..c).step_by(BLOCK) {
                let w = BLOCK.min(c - col);
                let (sums, dots) = block_grad_sums(c, col, w, (x, dy), mean);
                out[col..col + w].copy_from_slice(&sums[..w]);
                out[c + col..c + col + w].copy_from_slice(&dots[..w]);
            }
            return;
        }
        for (ch0, k) in groups(c) {
            let (mut sums, mut dots) = ([0.0f64; GROUP], [0.0f64; GROUP]);
            let m = &mean[ch0..ch0 + k];
            self.sweep(k, (x, dy), n, ch0, &mut |j, v, g| {
                sums[j] += g as f64;
                dots[j] += ((v - m[j]) * g) as f64;
            });
            out[ch0..ch0 + k].copy_from_slice(&sums[..k]);
            out[c + ch0..c + ch0 + k].copy_from_slice(&dots[..k]);
        }
    }

    /// dx of this worker's rows from each channel's `terms`.
    #[inline(always)]
    fn dx(&self, (x, dy, dx): (&[f32], &[f32], &mut [f32]), n: usize, terms: &[Terms]) {
        if self.s == 1 {
            for col in (0..self.c).step_by(BLOCK) {
                let w = BLOCK.min(self.c - col);
                dx_block(self.c, col, (x, dy), &terms[col..col + w], dx);
            }
            return;
        }
        for (ch, t) in terms.iter().enumerate() {
            for i in 0..n {
                let r = self.span(i, ch);
                let src = x[r.clone()].iter().zip(&dy[r.clone()]);
                for (d, (&v, &g)) in dx[r].iter_mut().zip(src) {
                    *d = t.dx(g, v);
                }
            }
        }
    }
}

/// [`BatchNorm::partial_sums`] compiled for each SIMD tier.
fn sums_kernel(bn: BatchNorm, x: &[f32], n: usize, out: &mut [f64]) {
    crate::simd_dispatch!((bn: BatchNorm, x: &[f32], n: usize, out: &mut [f64]) {
        bn.partial_sums(x, n, out)
    })
}

/// [`BatchNorm::partial_squares`] compiled for each SIMD tier.
fn squares_kernel(bn: BatchNorm, x: &[f32], n: usize, mean: &[f32], out: &mut [f64]) {
    crate::simd_dispatch!((bn: BatchNorm, x: &[f32], n: usize, mean: &[f32], out: &mut [f64]) {
        bn.partial_squares(x, n, mean, out)
    })
}

/// [`BatchNorm::apply`] compiled for each SIMD tier.
fn apply_kernel(
    bn: BatchNorm,
    data: (&[f32], &mut [f32]),
    n: usize,
    affine: (&[f32], &[f32]),
    saved: &Moments,
) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &mut [f32]), n: usize, affine: (&[f32], &[f32]), saved: &Moments) {
        bn.apply(data, n, affine, saved)
    })
}

/// [`BatchNorm::partial_grad_sums`] compiled for each SIMD tier.
fn grad_sums_kernel(
    bn: BatchNorm,
    data: (&[f32], &[f32]),
    n: usize,
    mean: &[f32],
    out: &mut [f64],
) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &[f32]), n: usize, mean: &[f32], out: &mut [f64]) {
        bn.partial_grad_sums(data, n, mean, out)
    })
}

/// [`BatchNorm::dx`] compiled for each SIMD tier.
fn dx_kernel(bn: BatchNorm, data: (&[f32], &[f32], &mut [f32]), n: usize, terms: &[Terms]) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &[f32], &mut [f32]), n: usize, terms: &[Terms]) {
        bn.dx(data, n, terms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::tests::values;

    /// The serial kernels' y, running statistics, dx, dweight and dbias for [n, c, s].
    type Out = (Vec<f32>, RunningStats, Vec<f32>, Vec<f32>, Vec<f32>);

    fn serial(bn: BatchNorm, n: usize, x: &[f32], dy: &[f32], w: &[f32]) -> Out {
        let (c, len) = (bn.c, x.len());
        let (mut y, mut run, mut saved) =
            (vec![0.0; len], RunningStats::new(c), Moments::default());
        bn.forward_train(x, n, (w, w), &mut run, &mut saved, &mut y)
            .unwrap();
        let (mut dx, mut dw, mut db) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        bn.backward(x, dy, n, w, &saved, (&mut dw, &mut db), &mut dx);
        (y, run, dx, dw, db)
    }

    /// The same batch split `rows` per worker over `workers` threads; the workers'
    /// dweight and dbias added in worker order, worker 0's running statistics.
    fn split(bn: BatchNorm, n: usize, x: &[f32], dy: &[f32], w: &[f32], workers: usize) -> Out {
        let (c, per) = (bn.c, bn.c * bn.s);
        let rows = n.div_ceil(workers);
        let exchange = Exchange::new(workers);
        let outs: Vec<Out> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|k| {
                    let mut seat = Seat::new(Arc::clone(&exchange), k);
                    let r = (k * rows).min(n)..((k + 1) * rows).min(n);
                    let (x, dy) = (
                        &x[r.start * per..r.end * per],
                        &dy[r.start * per..r.end * per],
                    );
                    scope.spawn(move || {
                        let m = r.len();
                        let (mut y, mut run) = (vec![0.0; x.len()], RunningStats::new(c));
                        let mut saved = Moments::default();
                        bn.forward_train_shared(
                            x,
                            m,
                            (w, w),
                            &mut run,
                            &mut saved,
                            &mut y,
                            &mut seat,
                        )
                        .unwrap();
                        let (mut dx, mut dw, mut db) =
                            (vec![0.0; x.len()], vec![9.0; c], vec![9.0; c]);
                        let data = (x, dy, &mut dx[..]);
                        bn.backward_shared(data, m, w, &saved, (&mut dw, &mut db), &mut seat);
                        (y, run, dx, dw, db)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all = outs[0].clone();
        all.0 = outs.iter().flat_map(|o| o.0.clone()).collect();
        all.2 = outs.iter().flat_map(|o| o.2.clone()).collect();
        for o in &outs[1..] {
            assert_eq!(
                o.1, outs[0].1,
                "every worker moves its running statistics alike"
            );
            all.3.iter_mut().zip(&o.3).for_each(|(a, b)| *a += b);
            all.4.iter_mut().zip(&o.4).for_each(|(a, b)| *a += b);
        }
        all
    }

    fn close(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// BatchNorm1d and 2d split over 2 and 3 workers (one of them with no rows) give
    /// the serial kernels' numbers within rounding, and the same bits every time.
    #[test]
    fn a_split_batch_matches_the_whole_one() {
        for (n, c, s, workers) in [(7, 70, 1, 2), (4, 5, 9, 3), (5, 17, 3, 2), (1, 3, 4, 2)] {
            let bn = BatchNorm { c, s };
            let (x, dy) = (values(n * c * s, 31), values(n * c * s, 32));
            let w: Vec<f32> = values(c, 33).iter().map(|v| v + 1.5).collect();
            let want = serial(bn, n, &x, &dy, &w);
            let got = split(bn, n, &x, &dy, &w, workers);
            let what = format!("{n}x{c}x{s} on {workers}");
            close(&format!("{what} y"), &got.0, &want.0);
            close(&format!("{what} running mean"), &got.1.mean, &want.1.mean);
            close(&format!("{what} running var"), &got.1.var, &want.1.var);
            assert_eq!(got.1.batches_tracked, 1);
            close(&format!("{what} dx"), &got.2, &want.2);
            close(&format!("{what} dweight"), &got.3, &want.3);
            close(&format!("{what} dbias"), &got.4, &want.4);
            let again = split(bn, n, &x, &dy, &w, workers);
            assert!(
                again.0 == got.0 && again.2 == got.2 && again.3 == got.3,
                "{what}"
            );
        }
    }

    /// A batch of one value per channel is refused by every worker alike.
    #[test]
    fn one_value_per_channel_counts_the_whole_batch() {
        let bn = BatchNorm { c: 2, s: 1 };
        let exchange = Exchange::new(2);
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|k| {
                    let mut seat = Seat::new(Arc::clone(&exchange), k);
                    scope.spawn(move || {
                        let (x, m) = if k == 0 {
                            (vec![1.0, 2.0], 1)
                        } else {
                            (vec![], 0)
                        };
                        let (mut y, mut run) = (vec![0.0; x.len()], RunningStats::new(2));
                        let ab = (&[1.0, 1.0][..], &[0.0, 0.0][..]);
                        let mut saved = Moments::default();
                        bn.forward_train_shared(&x, m, ab, &mut run, &mut saved, &mut y, &mut seat)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let refused = Err(NormError::OneValuePerChannel { values: 1 });
        assert_eq!(results, [refused.clone(), refused]);
    }

    /// A worker that panics does not leave the others waiting forever.
    #[test]
    fn a_panicking_worker_stops_the_others() {
        let exchange = Exchange::new(2);
        let joined: Vec<bool> = std::thread::scope(|scope| {
            let waiter = {
                let mut seat = Seat::new(Arc::clone(&exchange), 1);
                scope.spawn(move || {
                    seat.partial(1);
                    seat.combine();
                })
            };
            let e = Arc::clone(&exchange);
            let dies = scope.spawn(move || {
                let _poison = e.poison_on_panic();
                panic!("worker 0 fails before the meeting");
            });
            vec![dies.join().is_ok(), waiter.join().is_ok()]
        });
        assert_eq!(joined, [false, false]);
    }
}
