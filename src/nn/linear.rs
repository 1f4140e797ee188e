//! Fully connected layer y = x W + b, forward and backward.
//!
//! Shapes: x [n, in], W [in, out] (row-major: the transpose of `nn.Linear.weight`,
//! stored input-major so the sparse first layer reads one contiguous row per non-zero
//! pixel; files keep PyTorch's [out, in], see [`crate::nn::Arch::to_files`]), b [out],
//! y [n, out]; backward takes dy [n, out] and gives dW [in, out], db [out] and, if
//! asked, dx [n, in].

/// C[m, n] = A[m, k] * B[k, n] (+ C if `accumulate`), with row and column strides for
/// each operand so that transposes cost nothing; C row-major.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    c: &mut [f32],
    accumulate: bool,
) {
    gemm_strided(m, k, n, (a, sa), (b, sb), (c, (n, 1)), accumulate);
}

/// `gemm` with C's strides too (the conv layers write transposed products).
#[inline]
pub(super) fn gemm_strided(
    m: usize,
    k: usize,
    n: usize,
    (a, (rsa, csa)): (&[f32], (usize, usize)),
    (b, (rsb, csb)): (&[f32], (usize, usize)),
    (c, (rsc, csc)): (&mut [f32], (usize, usize)),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() > (m - 1) * rsa + k.saturating_sub(1) * csa || k == 0);
    assert!(b.len() > k.saturating_sub(1) * rsb + (n - 1) * csb || k == 0);
    assert!(c.len() > (m - 1) * rsc + (n - 1) * csc);
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Shape of one linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    /// Input width.
    pub fan_in: usize,
    /// Output width.
    pub fan_out: usize,
}

impl LinearShape {
    /// Number of weights plus biases.
    pub fn params(self) -> usize {
        self.fan_out * (self.fan_in + 1)
    }

    /// y = x W + b for `n` rows.
    pub fn forward(self, w: &[f32], b: &[f32], x: &[f32], n: usize, y: &mut [f32]) {
        let (i, o) = (self.fan_in, self.fan_out);
        gemm(n, i, o, x, (i, 1), w, (o, 1), y, false);
        for row in y[..n * o].chunks_exact_mut(o) {
            for (v, &bias) in row.iter_mut().zip(b) {
                *v += bias;
            }
        }
    }

    /// dW = x^T dy and db = column sums of dy (overwriting both); dx = dy W^T if given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        self,
        w: &[f32],
        x: &[f32],
        dy: &[f32],
        n: usize,
        dw: &mut [f32],
        db: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        let (i, o) = (self.fan_in, self.fan_out);
        gemm(i, n, o, x, (1, i), dy, (o, 1), dw, false);
        db.fill(0.0);
        for row in dy[..n * o].chunks_exact(o) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
        if let Some(dx) = dx {
            gemm(n, o, i, dy, (o, 1), w, (1, o), dx, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_match_naive_loops() {
        let s = LinearShape {
            fan_in: 3,
            fan_out: 2,
        };
        // W^T of [[1, 2, 3], [-1, 0.5, 0]].
        let w = [1.0, -1.0, 2.0, 0.5, 3.0, 0.0];
        let b = [0.1, -0.2];
        let x = [1.0, 0.0, 2.0, -1.0, 1.0, 1.0];
        let mut y = [0.0; 4];
        s.forward(&w, &b, &x, 2, &mut y);
        assert_eq!(y, [7.1, -1.2, 4.1, 1.3]);
        let dy = [1.0, 2.0, -1.0, 0.5];
        let (mut dw, mut db, mut dx) = ([9.0; 6], [9.0; 2], [9.0; 6]);
        s.backward(&w, &x, &dy, 2, &mut dw, &mut db, Some(&mut dx));
        // dW[i][o] = sum_n x[n][i] dy[n][o]
        assert_eq!(dw, [2.0, 1.5, -1.0, 0.5, 1.0, 4.5]);
        assert_eq!(db, [0.0, 2.5]);
        // dx[n][i] = sum_o dy[n][o] W[o][i]
        assert_eq!(dx, [-1.0, 3.0, 3.0, -1.5, -1.75, -3.0]);
    }
}
