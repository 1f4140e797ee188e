//! A formula compiled to a tape of operations over registers, evaluated a chunk of
//! elements at a time: one tight loop per operation (which vectorises), never a tree
//! walk per element. The derivative comes from the same tape in forward mode: every
//! register carries (value, d value / dx), so it is exact, not a finite difference.
//!
//! Shapes: z, a, da, dz are flat slices of any length; registers are
//! [ops, CHUNK] (values) and [ops, CHUNK] (derivatives) per chunk of CHUNK elements.

use std::cell::RefCell;
use std::collections::HashMap;

use super::parse::{Cmp, Expr};
use super::Func;
use crate::nn::fastmath::{erf, exp, expm1, ln, log1p, tanh};

/// Elements per chunk: registers stay in L1 for formulas of a few dozen operations.
const CHUNK: usize = 64;
/// Largest integer power computed by repeated multiplication (exact like PyTorch's x**2).
const MAX_POWI: i32 = 16;
/// Most operations in one formula, so its registers stay bounded.
pub const MAX_OPS: usize = 256;

type R = u16;

/// One operation; operands are earlier registers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// The input.
    X,
    /// A constant.
    Const(f32),
    /// -a.
    Neg(R),
    /// a + b.
    Add(R, R),
    /// a - b.
    Sub(R, R),
    /// a * b.
    Mul(R, R),
    /// a / b.
    Div(R, R),
    /// a^n, n a small integer.
    PowI(R, i32),
    /// a^c, c any other constant.
    PowF(R, f32),
    /// a^b with b depending on x.
    Pow(R, R),
    /// A function of one argument.
    Call(Func, R),
    /// min(a, b).
    Min(R, R),
    /// max(a, b).
    Max(R, R),
    /// where(l cmp r, a, b).
    Where(Cmp, R, R, R, R),
}

/// A compiled formula.
#[derive(Debug, Clone, PartialEq)]
pub struct Tape {
    ops: Vec<Op>,
}

/// A compile-time node: a folded constant or a register.
#[derive(Clone, Copy)]
enum Node {
    Num(f64),
    Reg(R),
}

struct Compiler {
    ops: Vec<Op>,
    seen: HashMap<String, R>,
}

impl Compiler {
    /// Append `op` unless the same operation is already on the tape (shared subterms).
    fn emit(&mut self, op: Op) -> Result<R, String> {
        let key = format!("{op:?}");
        if let Some(&r) = self.seen.get(&key) {
            return Ok(r);
        }
        if self.ops.len() >= MAX_OPS {
            return Err(format!(
                "the formula needs more than {MAX_OPS} operations; simplify it"
            ));
        }
        self.ops.push(op);
        let r = (self.ops.len() - 1) as R;
        self.seen.insert(key, r);
        Ok(r)
    }

    fn reg(&mut self, n: Node) -> Result<R, String> {
        match n {
            Node::Reg(r) => Ok(r),
            Node::Num(v) => self.emit(Op::Const(v as f32)),
        }
    }

    fn compile(&mut self, e: &Expr) -> Result<Node, String> {
        Ok(match e {
            Expr::Num(v) => Node::Num(*v),
            Expr::X => Node::Reg(self.emit(Op::X)?),
            Expr::Neg(a) => match self.compile(a)? {
                Node::Num(v) => Node::Num(-v),
                Node::Reg(r) => Node::Reg(self.emit(Op::Neg(r))?),
            },
            Expr::Add(a, b) => self.binary(a, b, |x, y| x + y, Op::Add)?,
            Expr::Sub(a, b) => self.binary(a, b, |x, y| x - y, Op::Sub)?,
            Expr::Mul(a, b) => self.binary(a, b, |x, y| x * y, Op::Mul)?,
            Expr::Div(a, b) => self.binary(a, b, |x, y| x / y, Op::Div)?,
            Expr::Pow(a, b) => self.power(a, b)?,
            Expr::Call(f, args) => {
                let nodes = args
                    .iter()
                    .map(|a| self.compile(a))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call(*f, &nodes)?
            }
            Expr::Where(cmp, parts) => {
                let n = parts
                    .iter()
                    .map(|p| self.compile(p))
                    .collect::<Result<Vec<_>, _>>()?;
                if let (Node::Num(l), Node::Num(r)) = (n[0], n[1]) {
                    return Ok(if cmp.holds(l as f32, r as f32) {
                        n[2]
                    } else {
                        n[3]
                    });
                }
                let r: Vec<R> = n.iter().map(|&x| self.reg(x)).collect::<Result<_, _>>()?;
                Node::Reg(self.emit(Op::Where(*cmp, r[0], r[1], r[2], r[3]))?)
            }
        })
    }

    fn binary(
        &mut self,
        a: &Expr,
        b: &Expr,
        fold: fn(f64, f64) -> f64,
        op: fn(R, R) -> Op,
    ) -> Result<Node, String> {
        let (a, b) = (self.compile(a)?, self.compile(b)?);
        if let (Node::Num(x), Node::Num(y)) = (a, b) {
            return Ok(Node::Num(fold(x, y)));
        }
        let (a, b) = (self.reg(a)?, self.reg(b)?);
        Ok(Node::Reg(self.emit(op(a, b))?))
    }

    fn power(&mut self, a: &Expr, b: &Expr) -> Result<Node, String> {
        let (a, b) = (self.compile(a)?, self.compile(b)?);
        Ok(match (a, b) {
            (Node::Num(x), Node::Num(y)) => Node::Num(x.powf(y)),
            (Node::Reg(r), Node::Num(y)) if y == y.round() && y.abs() <= MAX_POWI as f64 => {
                Node::Reg(self.emit(Op::PowI(r, y as i32))?)
            }
            (Node::Reg(r), Node::Num(0.5)) => Node::Reg(self.emit(Op::Call(Func::Sqrt, r))?),
            (Node::Reg(r), Node::Num(y)) => Node::Reg(self.emit(Op::PowF(r, y as f32))?),
            (a, b) => {
                let (a, b) = (self.reg(a)?, self.reg(b)?);
                Node::Reg(self.emit(Op::Pow(a, b))?)
            }
        })
    }

    fn call(&mut self, f: Func, n: &[Node]) -> Result<Node, String> {
        if n.iter().all(|x| matches!(x, Node::Num(_))) {
            let v: Vec<f32> = n
                .iter()
                .map(|x| match x {
                    Node::Num(v) => *v as f32,
                    Node::Reg(_) => 0.0,
                })
                .collect();
            // Folded with the rule the tape runs (a NaN side is not skipped), so a
            // constant gives what the same formula of x would.
            return Ok(Node::Num(match f {
                Func::Min => pick(false, v[0], 0.0, v[1], 0.0).0,
                Func::Max => pick(true, v[0], 0.0, v[1], 0.0).0,
                _ => dual1(f, v[0], 0.0).0,
            } as f64));
        }
        let r: Vec<R> = n.iter().map(|&x| self.reg(x)).collect::<Result<_, _>>()?;
        Ok(Node::Reg(self.emit(match f {
            Func::Min => Op::Min(r[0], r[1]),
            Func::Max => Op::Max(r[0], r[1]),
            _ => Op::Call(f, r[0]),
        })?))
    }
}

/// a^n by repeated multiplication (exact for n = 2, 3 as PyTorch's pow is).
#[inline(always)]
fn powi(a: f32, n: i32) -> f32 {
    let mut v = 1.0f32;
    for _ in 0..n.unsigned_abs() {
        v *= a;
    }
    if n < 0 {
        1.0 / v
    } else {
        v
    }
}

#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + exp(-a))
}

/// (f(a), f'(a) da) for a one-argument function, the definitions PyTorch uses
/// (softplus with beta 1 and threshold 20; |a|' = sign(a), 0 at 0).
#[inline(always)]
fn dual1(f: Func, a: f32, da: f32) -> (f32, f32) {
    match f {
        Func::Exp => {
            let v = exp(a);
            (v, v * da)
        }
        Func::Log => (ln(a), da / a),
        Func::Log1p => (log1p(a), da / (1.0 + a)),
        Func::Expm1 => {
            let v = expm1(a);
            (v, (v + 1.0) * da)
        }
        Func::Sqrt => {
            let v = a.sqrt();
            (v, da / (2.0 * v))
        }
        Func::Abs => {
            let s = if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            };
            (a.abs(), s * da)
        }
        Func::Sin => (a.sin(), a.cos() * da),
        Func::Cos => (a.cos(), -a.sin() * da),
        Func::Tanh => {
            let t = tanh(a);
            (t, (1.0 - t * t) * da)
        }
        Func::Sinh => (0.5 * (expm1(a) - expm1(-a)), 0.5 * (exp(a) + exp(-a)) * da),
        Func::Cosh => (0.5 * (exp(a) + exp(-a)), 0.5 * (expm1(a) - expm1(-a)) * da),
        Func::Sigmoid => {
            let s = sigmoid(a);
            (s, s * (1.0 - s) * da)
        }
        Func::Softplus => {
            if a > 20.0 {
                (a, da)
            } else {
                let e = exp(a);
                (log1p(e), e / (e + 1.0) * da)
            }
        }
        Func::Erf => (erf(a), std::f32::consts::FRAC_2_SQRT_PI * exp(-a * a) * da),
        Func::Min | Func::Max => (a, da),
    }
}

/// min or max with PyTorch's gradient: all to the chosen side, split evenly on ties.
#[inline(always)]
fn pick(max: bool, a: f32, da: f32, b: f32, db: f32) -> (f32, f32) {
    let a_wins = if max { a > b } else { a < b };
    let b_wins = if max { b > a } else { b < a };
    if a_wins {
        (a, da)
    } else if b_wins {
        (b, db)
    } else {
        (a, 0.5 * (da + db))
    }
}

impl Tape {
    /// Compile a parsed formula.
    pub fn compile(e: &Expr) -> Result<Tape, String> {
        let mut c = Compiler {
            ops: Vec::new(),
            seen: HashMap::new(),
        };
        let out = c.compile(e)?;
        // The result must be the last register; a constant formula is one Const.
        let last = c.reg(out)?;
        if last as usize != c.ops.len() - 1 {
            let copy = Op::Add(last, c.emit(Op::Const(0.0))?);
            c.ops.push(copy);
        }
        Ok(Tape { ops: c.ops })
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the tape is empty (never, once compiled).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// f(x) for one value.
    pub fn value(&self, x: f32) -> f32 {
        let mut a = [0.0f32];
        self.forward(&[x], &mut a);
        a[0]
    }

    /// f'(x) for one value.
    pub fn derivative(&self, x: f32) -> f32 {
        let mut dz = [0.0f32];
        self.backward(&[x], &[1.0], &mut dz);
        dz[0]
    }

    /// a = f(z), elementwise.
    pub fn forward(&self, z: &[f32], a: &mut [f32]) {
        with_scratch(self.ops.len(), false, |regs, _| {
            let tape = self;
            crate::simd_dispatch!((tape: &Tape, z: &[f32], a: &mut [f32], regs: &mut [f32]) {
                for (zc, ac) in z.chunks(CHUNK).zip(a.chunks_mut(CHUNK)) {
                    tape.values(zc, regs);
                    let last = (tape.ops.len() - 1) * CHUNK;
                    ac.copy_from_slice(&regs[last..last + ac.len()]);
                }
            })
        })
    }

    /// dz = da * f'(z), elementwise.
    pub fn backward(&self, z: &[f32], da: &[f32], dz: &mut [f32]) {
        with_scratch(self.ops.len(), true, |regs, dregs| {
            let tape = self;
            crate::simd_dispatch!((tape: &Tape, z: &[f32], da: &[f32], dz: &mut [f32], regs: &mut [f32], dregs: &mut [f32]) {
                for ((zc, gc), oc) in z.chunks(CHUNK).zip(da.chunks(CHUNK)).zip(dz.chunks_mut(CHUNK)) {
                    tape.duals(zc, regs, dregs);
                    let last = (tape.ops.len() - 1) * CHUNK;
                    for ((o, &g), &d) in oc.iter_mut().zip(gc).zip(&dregs[last..]) {
                        *o = g * d;
                    }
                }
            })
        })
    }
}

/// Run `f` with zeroed-once register buffers of this thread (no allocation per call
/// after the first); a nested call gets buffers of its own.
fn with_scratch<T>(ops: usize, dual: bool, f: impl FnOnce(&mut [f32], &mut [f32]) -> T) -> T {
    thread_local! {
        static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }
    let need = ops * CHUNK;
    let dneed = if dual { need } else { 0 };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (v, d) = &mut *s;
            if v.len() < need {
                v.resize(need, 0.0);
            }
            if d.len() < dneed {
                d.resize(dneed, 0.0);
            }
            f(&mut v[..need], &mut d[..dneed])
        }
        Err(_) => f(&mut vec![0.0; need], &mut vec![0.0; dneed]),
    })
}

/// The operand slices of register `i`'s operation: registers before `i` and `i`'s own.
macro_rules! split {
    ($regs:expr, $i:expr, $n:expr) => {{
        let (before, rest) = $regs.split_at_mut($i * CHUNK);
        (&*before, &mut rest[..$n])
    }};
}

/// The registers computed so far in a chunk of `n` elements: values and derivatives.
struct Before<'a> {
    v: &'a [f32],
    d: &'a [f32],
    n: usize,
}

impl Before<'_> {
    #[inline(always)]
    fn v(&self, r: R) -> &[f32] {
        &self.v[r as usize * CHUNK..r as usize * CHUNK + self.n]
    }

    #[inline(always)]
    fn d(&self, r: R) -> &[f32] {
        &self.d[r as usize * CHUNK..r as usize * CHUNK + self.n]
    }
}

#[inline(always)]
fn map1(b: &Before, a: R, out: &mut [f32], f: impl Fn(f32) -> f32) {
    for (o, &u) in out.iter_mut().zip(b.v(a)) {
        *o = f(u);
    }
}

#[inline(always)]
fn map2(b: &Before, a: R, c: R, out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &u), &v) in out.iter_mut().zip(b.v(a)).zip(b.v(c)) {
        *o = f(u, v);
    }
}

#[inline(always)]
fn dmap1(b: &Before, a: R, vo: &mut [f32], dout: &mut [f32], f: impl Fn(f32, f32) -> (f32, f32)) {
    for (((o, d), &u), &du) in vo.iter_mut().zip(dout.iter_mut()).zip(b.v(a)).zip(b.d(a)) {
        (*o, *d) = f(u, du);
    }
}

#[inline(always)]
fn dmap2<F>(b: &Before, a: R, c: R, vo: &mut [f32], dout: &mut [f32], f: F)
where
    F: Fn(f32, f32, f32, f32) -> (f32, f32),
{
    let ops = b.v(a).iter().zip(b.d(a)).zip(b.v(c).iter().zip(b.d(c)));
    for ((o, d), ((&u, &du), (&v, &dv))) in vo.iter_mut().zip(dout.iter_mut()).zip(ops) {
        (*o, *d) = f(u, du, v, dv);
    }
}

/// d(u^v) = u^v (v' ln u + v u'/u); a constant base (u' = 0) or exponent adds nothing.
#[inline(always)]
fn dual_pow(u: f32, du: f32, v: f32, dv: f32) -> (f32, f32) {
    let p = u.powf(v);
    let from_base = if du == 0.0 { 0.0 } else { v * du / u };
    let from_exp = if dv == 0.0 { 0.0 } else { dv * ln(u) };
    (p, p * (from_base + from_exp))
}

/// where(l cmp r, a, b) over a chunk, values and (when `dout` is given) derivatives.
#[inline(always)]
fn select(b: &Before, w: (Cmp, R, R, R, R), vo: &mut [f32], dout: Option<&mut [f32]>) {
    let (c, l, r, a, e) = w;
    for (k, o) in vo.iter_mut().enumerate() {
        *o = if c.holds(b.v(l)[k], b.v(r)[k]) {
            b.v(a)[k]
        } else {
            b.v(e)[k]
        };
    }
    if let Some(dout) = dout {
        for (k, d) in dout.iter_mut().enumerate() {
            *d = if c.holds(b.v(l)[k], b.v(r)[k]) {
                b.d(a)[k]
            } else {
                b.d(e)[k]
            };
        }
    }
}

impl Tape {
    /// Values of every register for one chunk of inputs.
    #[inline(always)]
    fn values(&self, x: &[f32], regs: &mut [f32]) {
        let n = x.len();
        for (i, op) in self.ops.iter().enumerate() {
            let (v, out) = split!(regs, i, n);
            let b = Before { v, d: &[], n };
            match *op {
                Op::X => out.copy_from_slice(x),
                Op::Const(c) => out.fill(c),
                Op::Neg(a) => map1(&b, a, out, |u| -u),
                Op::Add(a, c) => map2(&b, a, c, out, |u, v| u + v),
                Op::Sub(a, c) => map2(&b, a, c, out, |u, v| u - v),
                Op::Mul(a, c) => map2(&b, a, c, out, |u, v| u * v),
                Op::Div(a, c) => map2(&b, a, c, out, |u, v| u / v),
                Op::PowI(a, k) => map1(&b, a, out, |u| powi(u, k)),
                Op::PowF(a, c) => map1(&b, a, out, |u| u.powf(c)),
                Op::Pow(a, c) => map2(&b, a, c, out, f32::powf),
                Op::Min(a, c) => map2(&b, a, c, out, |u, v| pick(false, u, 0.0, v, 0.0).0),
                Op::Max(a, c) => map2(&b, a, c, out, |u, v| pick(true, u, 0.0, v, 0.0).0),
                Op::Call(f, a) => {
                    macro_rules! each {
                        ($f:expr) => {
                            map1(&b, a, out, |u| dual1($f, u, 0.0).0)
                        };
                    }
                    per_func!(f, each)
                }
                Op::Where(c, l, r, a, e) => select(&b, (c, l, r, a, e), out, None),
            }
        }
    }

    /// Values and derivatives (d/dx) of every register for one chunk of inputs.
    #[inline(always)]
    fn duals(&self, x: &[f32], regs: &mut [f32], dregs: &mut [f32]) {
        let n = x.len();
        for (i, op) in self.ops.iter().enumerate() {
            let (v, vo) = split!(regs, i, n);
            let (d, dout) = split!(dregs, i, n);
            let b = Before { v, d, n };
            match *op {
                Op::X => {
                    vo.copy_from_slice(x);
                    dout.fill(1.0);
                }
                Op::Const(c) => {
                    vo.fill(c);
                    dout.fill(0.0);
                }
                Op::Neg(a) => dmap1(&b, a, vo, dout, |u, du| (-u, -du)),
                Op::Add(a, c) => dmap2(&b, a, c, vo, dout, |u, du, v, dv| (u + v, du + dv)),
                Op::Sub(a, c) => dmap2(&b, a, c, vo, dout, |u, du, v, dv| (u - v, du - dv)),
                Op::Mul(a, c) => dmap2(&b, a, c, vo, dout, |u, du, v, dv| (u * v, du * v + u * dv)),
                Op::Div(a, c) => dmap2(&b, a, c, vo, dout, |u, du, v, dv| {
                    let q = u / v;
                    (q, (du - q * dv) / v)
                }),
                Op::PowI(a, k) => dmap1(&b, a, vo, dout, |u, du| {
                    (powi(u, k), k as f32 * powi(u, k - 1) * du)
                }),
                Op::PowF(a, c) => dmap1(&b, a, vo, dout, |u, du| {
                    (u.powf(c), c * u.powf(c - 1.0) * du)
                }),
                Op::Pow(a, c) => dmap2(&b, a, c, vo, dout, dual_pow),
                Op::Min(a, c) => {
                    dmap2(&b, a, c, vo, dout, |u, du, v, dv| pick(false, u, du, v, dv))
                }
                Op::Max(a, c) => dmap2(&b, a, c, vo, dout, |u, du, v, dv| pick(true, u, du, v, dv)),
                Op::Call(f, a) => {
                    macro_rules! each {
                        ($f:expr) => {
                            dmap1(&b, a, vo, dout, |u, du| dual1($f, u, du))
                        };
                    }
                    per_func!(f, each)
                }
                Op::Where(c, l, r, a, e) => select(&b, (c, l, r, a, e), vo, Some(dout)),
            }
        }
    }
}
