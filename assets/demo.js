// actlab demo: draw a digit, see each model's input, prediction, conv feature maps and
// hidden layers.
// The preparation is `actlab predict`'s (src/predict.rs), step for step, with the same
// float32 arithmetic where it rounds; activations come as formula trees (never code).
"use strict";

const MODELS = JSON.parse(document.getElementById("models").textContent);
const SAMPLES = JSON.parse(document.getElementById("samples").textContent);
const f32 = Math.fround;

function bytes(b64) {
  const s = atob(b64);
  const u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
}
const floats = (b64) => new Float32Array(bytes(b64).buffer);

// ---- formulas: value and derivative (forward-mode dual numbers) ----
function erf(x) {
  // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, far below what a probability shows.
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
const softplus = (x) => (x > 20 ? x : Math.log1p(Math.exp(x)));
const CALLS = {
  exp: (v, d) => [Math.exp(v), d * Math.exp(v)],
  log: (v, d) => [Math.log(v), d / v],
  log1p: (v, d) => [Math.log1p(v), d / (1 + v)],
  expm1: (v, d) => [Math.expm1(v), d * Math.exp(v)],
  sqrt: (v, d) => [Math.sqrt(v), d / (2 * Math.sqrt(v))],
  abs: (v, d) => [Math.abs(v), v > 0 ? d : v < 0 ? -d : 0],
  sin: (v, d) => [Math.sin(v), d * Math.cos(v)],
  cos: (v, d) => [Math.cos(v), -d * Math.sin(v)],
  tanh: (v, d) => { const t = Math.tanh(v); return [t, d * (1 - t * t)]; },
  sinh: (v, d) => [Math.sinh(v), d * Math.cosh(v)],
  cosh: (v, d) => [Math.cosh(v), d * Math.sinh(v)],
  sigmoid: (v, d) => { const s = sigmoid(v); return [s, d * s * (1 - s)]; },
  softplus: (v, d) => [softplus(v), v > 20 ? d : d * sigmoid(v)],
  erf: (v, d) => [erf(v), d * 2 / Math.sqrt(Math.PI) * Math.exp(-v * v)],
};
const CMP = { "<": (a, b) => a < b, "<=": (a, b) => a <= b, ">": (a, b) => a > b, ">=": (a, b) => a >= b };

// [value, derivative] of tree `n` at x.
function ev(n, x) {
  switch (n[0]) {
    case "num": return [n[1], 0];
    case "x": return [x, 1];
    case "neg": { const [a, da] = ev(n[1], x); return [-a, -da]; }
    case "add": case "sub": case "mul": case "div": case "pow": {
      const [a, da] = ev(n[1], x), [b, db] = ev(n[2], x);
      if (n[0] === "add") return [a + b, da + db];
      if (n[0] === "sub") return [a - b, da - db];
      if (n[0] === "mul") return [a * b, da * b + a * db];
      if (n[0] === "div") return [a / b, (da * b - a * db) / (b * b)];
      const p = Math.pow(a, b);
      return [p, (db === 0 ? b * Math.pow(a, b - 1) * da : p * (db * Math.log(a) + b * da / a))];
    }
    case "call": {
      if (n[1] === "min" || n[1] === "max") {
        // The engine's rule (tape.rs `pick`): the strictly better side wins; a tie or
        // a NaN on either side gives the first argument and splits the gradient, so
        // max(x, log(x)) is x where log(x) is NaN, as `actlab predict` computes.
        const [a, da] = ev(n[2], x), [b, db] = ev(n[3], x);
        const aWins = n[1] === "min" ? a < b : a > b;
        const bWins = n[1] === "min" ? b < a : b > a;
        if (aWins) return [a, da];
        if (bWins) return [b, db];
        return [a, (da + db) / 2];
      }
      const [a, da] = ev(n[2], x);
      return CALLS[n[1]](a, da);
    }
    case "where": {
      const [l] = ev(n[2], x), [r] = ev(n[3], x);
      return CMP[n[1]](l, r) ? ev(n[4], x) : ev(n[5], x);
    }
  }
  throw new Error("unknown formula node " + n[0]);
}

// ---- the network ----
function prepareModel(m) {
  m.W = m.layers.map((l) => floats(l.w));
  m.B = m.layers.map((l) => floats(l.b));
  for (const c of m.convs) { c.W = floats(c.w); c.B = floats(c.b); }
  for (const n of m.norms) if (n) {
    n.W = floats(n.w); n.B = floats(n.b);
    if (n.kind === "batch") { n.mean = floats(n.mean); n.var = floats(n.var); }
  }
}

// A conv layer on a c_in x h x w map (zero padding; weight [c_out, c_in, k, k]).
function conv2d(c, x) {
  const { c_in, c_out, k, stride, pad, h, iw, oh, ow } = c, y = new Float64Array(c_out * oh * ow);
  for (let o = 0; o < c_out; o++) for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) {
    let s = c.B.length ? c.B[o] : 0;
    for (let ci = 0; ci < c_in; ci++) for (let ky = 0; ky < k; ky++) {
      const iy = oy * stride - pad + ky;
      if (iy < 0 || iy >= h) continue;
      for (let kx = 0; kx < k; kx++) {
        const ix = ox * stride - pad + kx;
        if (ix >= 0 && ix < iw) s += c.W[((o * c_in + ci) * k + ky) * k + kx] * x[(ci * h + iy) * iw + ix];
      }
    }
    y[(o * oh + oy) * ow + ox] = s;
  }
  return y;
}

// 2x2 pooling, stride 2, floored; max takes the first maximum (a NaN wins), as pool.rs.
function pool2(kind, x, c, h, w) {
  const ph = Math.floor(h / 2), pw = Math.floor(w / 2), y = new Float64Array(c * ph * pw);
  for (let ch = 0; ch < c; ch++) for (let py = 0; py < ph; py++) for (let px = 0; px < pw; px++) {
    const at = (dy, dx) => x[(ch * h + 2 * py + dy) * w + 2 * px + dx];
    const v = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
    let r = v[0];
    if (kind === "avg") r = (v[0] + v[1] + v[2] + v[3]) / 4;
    else for (const u of v.slice(1)) if (u > r || Number.isNaN(u)) r = u;
    y[(ch * ph + py) * pw + px] = r;
  }
  return y;
}

// A hidden layer's norm in evaluation mode on c channels of s values (null: none):
// batch norm with its running statistics, layer norm (GroupNorm(1, c)) over all c * s.
function normalise(n, x, c, s) {
  if (!n) return x;
  const eps = 1e-5, y = new Float64Array(x.length);
  let mean = 0, varr = 0;
  if (n.kind !== "batch") {
    for (const v of x) mean += v;
    mean /= x.length;
    for (const v of x) varr += (v - mean) * (v - mean);
    varr /= x.length;
  }
  for (let ch = 0; ch < c; ch++) {
    const [mu, v] = n.kind === "batch" ? [n.mean[ch], n.var[ch]] : [mean, varr];
    const scale = n.W[ch] / Math.sqrt(v + eps);
    for (let i = 0; i < s; i++) y[ch * s + i] = (x[ch * s + i] - mu) * scale + n.B[ch];
  }
  return y;
}

// Each conv layer's feature maps, the fully connected hidden activations (with
// derivatives) and class probabilities for 784 pixels.
function forward(m, pixels) {
  let x = Float64Array.from(pixels, (p) => f32(p / 255));
  const maps = [], hidden = [], nc = m.convs.length;
  m.convs.forEach((c, k) => {
    const z = normalise(m.norms[k], conv2d(c, x), c.c_out, c.oh * c.ow), act = m.acts[k];
    const a = z.map((v) => ev(act.expr, v)[0]);
    maps.push({ a, c: c.c_out, h: c.oh, w: c.ow });
    x = c.pool ? pool2(c.pool, a, c.c_out, c.oh, c.ow) : a;
  });
  for (let l = 0; l < m.W.length; l++) {
    const n_in = x.length, n_out = m.sizes[l + 1], W = m.W[l], B = m.B[l];
    let z = new Float64Array(n_out);
    for (let j = 0; j < n_out; j++) {
      let s = B.length ? B[j] : 0;
      const row = j * n_in;
      for (let i = 0; i < n_in; i++) if (x[i] !== 0) s += W[row + i] * x[i];
      z[j] = s;
    }
    if (l === m.W.length - 1) return { maps, hidden, probs: probabilities(m.output, z), out: z };
    z = normalise(m.norms[nc + l], z, n_out, 1);
    const act = m.acts[nc + l], a = new Float64Array(n_out), d = new Float64Array(n_out);
    for (let j = 0; j < n_out; j++) [a[j], d[j]] = ev(act.expr, z[j]);
    hidden.push({ a, d });
    x = a;
  }
}

function softmax(z) {
  const mx = Math.max(...z), e = z.map((v) => Math.exp(v - mx)), s = e.reduce((p, q) => p + q, 0);
  return Array.from(e, (v) => v / s);
}

// Class probabilities from the output layer's values, as `OutputFn::probabilities`.
function probabilities(output, z) {
  if (output === "sigmoid") {
    const y = Array.from(z, sigmoid), s = y.reduce((p, q) => p + q, 0);
    return y.map((v) => (s > 0 ? v / s : 1 / y.length));
  }
  return softmax(Array.from(z)); // log_softmax and softmax exponentiate to it; identity: logits
}

// ---- preparation, as src/predict.rs ----
const roundAway = (v) => Math.sign(v) * Math.round(Math.abs(v));

// RGBA -> grey with alpha (the image crate's luma), flattened on the paper opposite
// the ink (flatten_alpha).
function flatten(rgba, w, h) {
  const g = new Uint8Array(w * h), al = new Float64Array(w * h);
  let ink = 0, weight = 0;
  for (let i = 0; i < w * h; i++) {
    const [r, gg, b, a] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]];
    g[i] = Math.floor((2126 * r + 7152 * gg + 722 * b) / 10000);
    al[i] = a / 255;
    ink += al[i] * g[i];
    weight += al[i];
  }
  const paper = weight > 0 && ink / weight < 128 ? 255 : 0;
  for (let i = 0; i < w * h; i++) g[i] = Math.round(al[i] * g[i] + (1 - al[i]) * paper);
  return g;
}

function prepare(g, w, h) {
  let sum = 0, n = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++)
    if (x === 0 || y === 0 || x + 1 === w || y + 1 === h) { sum += g[y * w + x]; n++; }
  const inverted = (n ? sum / n : 0) > 127;
  if (inverted) g = g.map((v) => 255 - v);
  if (w === 28 && h === 28) return { pixels: g, inverted, ink: g.some((v) => v > 0) };
  const box = inkBox(g, w, h);
  if (!box) return { pixels: new Uint8Array(784), inverted, ink: false };
  const [x0, y0, x1, y1] = box, cw = x1 - x0 + 1, ch = y1 - y0 + 1;
  const crop = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = g[(y0 + y) * w + x0 + x];
  const [small, nw, nh] = fitBox(crop, cw, ch);
  return { pixels: centre(small, nw, nh), inverted, ink: true };
}

function inkBox(g, w, h) {
  let max = 0;
  for (const v of g) max = Math.max(max, v);
  if (max === 0) return null;
  const threshold = Math.min(255, Math.trunc(Math.max(max * 0.1, 10)));
  let x0 = w, y0 = h, x1 = 0, y1 = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (g[y * w + x] > threshold) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  return x1 >= x0 && y1 >= y0 ? [x0, y0, x1, y1] : null;
}

function fitBox(crop, cw, ch) {
  const scale = 20 / Math.max(cw, ch);
  const nw = Math.min(20, Math.max(1, Math.round(cw * scale)));
  const nh = Math.min(20, Math.max(1, Math.round(ch * scale)));
  const out = nw <= cw && nh <= ch ? areaResize(crop, cw, ch, nw, nh) : triangleResize(crop, cw, ch, nw, nh);
  return [out, nw, nh];
}

// Each output pixel averages its exact footprint (float32 sums, as in Rust).
function areaResize(src, w, h, nw, nh) {
  const spans = (n, m) => {
    const scale = n / m, out = [];
    for (let o = 0; o < m; o++) {
      const a = o * scale, b = (o + 1) * scale, v = [];
      for (let i = Math.floor(a); i < b && i < n; i++) {
        const overlap = Math.max(Math.min(b, i + 1) - Math.max(a, i), 0);
        if (overlap > 0) v.push([i, f32(overlap / scale)]);
      }
      out.push(v);
    }
    return out;
  };
  const xs = spans(w, nw), ys = spans(h, nh), rows = new Float32Array(h * nw);
  for (let y = 0; y < h; y++) for (let ox = 0; ox < nw; ox++) {
    let s = 0;
    for (const [i, wt] of xs[ox]) s = f32(s + f32(src[y * w + i] * wt));
    rows[y * nw + ox] = s;
  }
  const out = new Uint8Array(nw * nh);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    let s = 0;
    for (const [i, wt] of ys[y]) s = f32(s + f32(rows[i * nw + x] * wt));
    out[y * nw + x] = Math.min(255, Math.max(0, Math.round(s)));
  }
  return out;
}

// The image crate's resize with its Triangle filter: vertical pass to float32, then
// horizontal pass rounded to bytes (used when a tiny drawing is enlarged).
function triangleWeights(n, m) {
  const ratio = f32(n / m), sratio = ratio < 1 ? 1 : ratio, support = f32(1 * sratio), out = [];
  for (let o = 0; o < m; o++) {
    let c = f32(f32(o + 0.5) * ratio);
    const left = Math.min(Math.max(Math.floor(f32(c - support)), 0), n - 1);
    const right = Math.min(Math.max(Math.ceil(f32(c + support)), left + 1), n);
    c = f32(c - 0.5);
    const ws = [];
    let sum = 0;
    for (let i = left; i < right; i++) {
      const t = Math.abs(f32(f32(i - c) / sratio)), wt = t < 1 ? f32(1 - t) : 0;
      ws.push(wt);
      sum = f32(sum + wt);
    }
    out.push([left, ws.map((wt) => f32(wt / sum))]);
  }
  return out;
}

function triangleResize(src, w, h, nw, nh) {
  const vy = triangleWeights(h, nh), hx = triangleWeights(w, nw), tmp = new Float32Array(w * nh);
  for (let y = 0; y < nh; y++) for (let x = 0; x < w; x++) {
    const [left, ws] = vy[y];
    let t = 0;
    ws.forEach((wt, i) => { t = f32(t + f32(src[(left + i) * w + x] * wt)); });
    tmp[y * w + x] = t;
  }
  const out = new Uint8Array(nw * nh);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    const [left, ws] = hx[x];
    let t = 0;
    ws.forEach((wt, i) => { t = f32(t + f32(tmp[y * w + left + i] * wt)); });
    out[y * nw + x] = roundAway(Math.min(255, Math.max(0, t)));
  }
  return out;
}

// Place the small image in 28x28 with its centre of mass at MNIST's centre (14.5).
function centre(small, nw, nh) {
  let sx = 0, sy = 0, sm = 0;
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    const v = small[y * nw + x];
    sx += v * (x + 0.5); sy += v * (y + 0.5); sm += v;
  }
  const [cx, cy] = sm > 0 ? [sx / sm, sy / sm] : [nw / 2, nh / 2];
  const ox = Math.min(Math.max(roundAway(14.5 - cx), 0), 28 - nw);
  const oy = Math.min(Math.max(roundAway(14.5 - cy), 0), 28 - nh);
  const out = new Uint8Array(784);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) out[(oy + y) * 28 + ox + x] = small[y * nw + x];
  return out;
}

// ---- the page ----
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });

function padPixels() {
  return flatten(ctx.getImageData(0, 0, pad.width, pad.height).data, pad.width, pad.height);
}

function colour(v, scale) {
  const t = Math.max(-1, Math.min(1, v / scale));
  return t >= 0 ? `rgb(${Math.round(255 - 200 * t)},${Math.round(255 - 120 * t)},255)` : `rgb(255,${Math.round(255 + 120 * t)},${Math.round(255 + 200 * t)})`;
}

function show(m, card, res, prepared) {
  const input = card.querySelector("canvas.input"), ic = input.getContext("2d"), img = ic.createImageData(28, 28);
  prepared.pixels.forEach((v, i) => { img.data.set([255 - v, 255 - v, 255 - v, 255], 4 * i); });
  ic.putImageData(img, 0, 0);
  const best = res.probs.indexOf(Math.max(...res.probs));
  // A blank pad is no digit: no probabilities are shown for it, and the card says so.
  const digit = card.querySelector(".digit");
  digit.textContent = prepared.ink ? m.class_names[best] : "–";
  digit.title = prepared.ink ? "" : "blank input: draw a digit";
  card.classList.toggle("blank", !prepared.ink);
  card.querySelectorAll(".bar").forEach((bar, c) => {
    bar.querySelector("i").style.width = prepared.ink ? (100 * res.probs[c]).toFixed(1) + "%" : "0";
    bar.querySelector("b").textContent = prepared.ink ? (100 * res.probs[c]).toFixed(1) + "%" : "";
    bar.classList.toggle("top", c === best && prepared.ink);
  });
  card.querySelectorAll(".maps").forEach((box, k) => {
    const { a, h, w } = res.maps[k], scale = Math.max(1e-9, ...Array.from(a, Math.abs));
    box.querySelectorAll("canvas").forEach((cv, ch) => {
      const c2 = cv.getContext("2d"), img = c2.createImageData(w, h);
      for (let i = 0; i < h * w; i++) {
        const [r, g, b] = colour(a[ch * h * w + i], scale).match(/\d+/g).map(Number);
        img.data.set([r, g, b, 255], 4 * i);
      }
      c2.putImageData(img, 0, 0);
    });
  });
  card.querySelectorAll(".strip").forEach((strip, l) => {
    const { a, d } = res.hidden[l], act = m.acts[m.convs.length + l];
    const scale = Math.max(1e-9, ...Array.from(a, Math.abs));
    let sat = 0, off = 0;
    strip.querySelectorAll("span").forEach((cell, j) => {
      cell.style.background = colour(a[j], scale);
      const s = act.saturates && Math.abs(d[j]) < 0.19 * act.peak;
      const o = act.can_die && d[j] === 0;
      cell.className = s ? "sat" : o ? "off" : "";
      sat += s; off += o;
    });
    const counts = [];
    if (act.saturates) counts.push(`${sat} saturated`);
    if (act.can_die) counts.push(`${off} inactive`);
    strip.previousElementSibling.querySelector("em").textContent = counts.join(", ");
  });
}

function update() {
  const g = padPixels(), prepared = prepare(g, pad.width, pad.height);
  MODELS.forEach((m, k) => show(m, document.getElementById("model-" + k), forward(m, prepared.pixels), prepared));
  return prepared;
}

let drawing = false, pending = false;
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
function schedule() {
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; update(); }); }
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  if (pad.setPointerCapture && e.pointerId !== undefined) { try { pad.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ } }
  const [x, y] = point(e);
  ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.01, y); ctx.stroke();
  schedule();
  e.preventDefault();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = point(e);
  ctx.lineTo(x, y); ctx.stroke();
  schedule();
  e.preventDefault();
});
for (const end of ["pointerup", "pointercancel", "pointerleave"]) pad.addEventListener(end, () => { drawing = false; schedule(); });
document.getElementById("clear").addEventListener("click", () => { ctx.clearRect(0, 0, pad.width, pad.height); update(); });

function setupPad() {
  ctx.lineWidth = 24; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#000";
}

// #selftest: the first test images, enlarged 10x (nearest), through the page's own
// preparation and forward pass; the results go into <pre id="selftest">.
function selftest() {
  const imgs = bytes(SAMPLES.images), out = [];
  for (let k = 0; k < SAMPLES.count; k++) {
    const rgba = new Uint8Array(280 * 280 * 4);
    for (let y = 0; y < 280; y++) for (let x = 0; x < 280; x++) {
      const v = imgs[k * 784 + Math.floor(y / 10) * 28 + Math.floor(x / 10)];
      rgba.set([v, v, v, 255], 4 * (y * 280 + x));
    }
    const p = prepare(flatten(rgba, 280, 280), 280, 280);
    out.push(MODELS.map((m) => forward(m, p.pixels).probs));
  }
  document.getElementById("selftest").textContent = JSON.stringify(out);
}

// #stroke: a 7 drawn with pointer events on the pad; the predictions and the pad as
// a PNG go into <pre id="stroke">.
function stroke() {
  const r = pad.getBoundingClientRect(), at = (x, y) => ({ clientX: r.left + x * r.width / 280, clientY: r.top + y * r.height / 280, pointerId: 1, bubbles: true, pointerType: "pen" });
  const path = [[70, 60], [130, 60], [200, 62], [180, 110], [160, 160], [140, 210], [125, 240]];
  pad.dispatchEvent(new PointerEvent("pointerdown", at(...path[0])));
  for (const [x, y] of path.slice(1)) pad.dispatchEvent(new PointerEvent("pointermove", at(x, y)));
  pad.dispatchEvent(new PointerEvent("pointerup", at(...path[path.length - 1])));
  const prepared = update();
  const preds = MODELS.map((m) => ({ name: m.name, probs: forward(m, prepared.pixels).probs }));
  // How many feature-map canvases show something (not all white), as drawn.
  const maps = Array.from(document.querySelectorAll("canvas.fmap"));
  const shown = maps.filter((cv) => cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data.some((v) => v < 250)).length;
  document.getElementById("stroke").textContent = JSON.stringify({ preds, maps: maps.length, shown, png: pad.toDataURL("image/png") });
}

MODELS.forEach(prepareModel);
setupPad();
update();
if (location.hash === "#selftest") selftest();
if (location.hash === "#stroke") stroke();
