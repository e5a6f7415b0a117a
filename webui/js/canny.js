// The ControlNet canny preview: the edge map the job will use, drawn in the page before it is
// queued. The server never runs engine code itself (its worker does), so the page computes the
// map with the same steps and defaults as the engine's preprocessor (sd.cpp's preprocess_canny:
// gray, 5x5 Gaussian (sigma 1.4), Sobel, the engine's non-maximum suppression, thresholds 0.08
// / 0.08, one hysteresis pass), so what is shown is what `canny: true` sends to the model.

import { $ } from "./dom.js";
import { currentKind } from "./form.js";
import { sourceImage } from "./imageinput.js";
import { on } from "./state.js";

const HIGH = 0.08, LOW = 0.08, WEAK = 0.8, STRONG = 1.0;

// Float32Array and Math.fround throughout: the engine computes in float, and its suppression
// compares equal-looking values along straight edges, where rounding decides single pixels.
const f = Math.fround;

function gaussian() {
  const sigma2 = f(2 * f(1.4 * 1.4));
  const normal = f(1 / (2 * Math.PI * 1.4 * 1.4));
  const k = new Float32Array(25);
  for (let y = 0; y < 5; y++) {
    for (let x = 0; x < 5; x++) k[y * 5 + x] = f(Math.exp(f(-((y - 2) ** 2 + (x - 2) ** 2) / sigma2)) * normal);
  }
  return k;
}

// correlation with zero padding, as the engine's convolve_tensor
function convolve(src, w, hgt, kernel, size) {
  const out = new Float32Array(w * hgt);
  const k = Float32Array.from(kernel);
  const pad = size >> 1;
  for (let y = 0; y < hgt; y++) {
    for (let x = 0; x < w; x++) {
      let sum = 0;
      for (let ky = 0; ky < size; ky++) {
        const iy = y + ky - pad;
        if (iy < 0 || iy >= hgt) continue;
        for (let kx = 0; kx < size; kx++) {
          const ix = x + kx - pad;
          if (ix >= 0 && ix < w) sum = f(sum + f(src[iy * w + ix] * k[ky * size + kx]));
        }
      }
      out[y * w + x] = sum;
    }
  }
  return out;
}

// RGBA pixels -> edge map values in [0, 1] (one per pixel)
export function cannyEdges(rgba, w, hgt) {
  const gray = new Float32Array(w * hgt);
  const [kr, kg, kb] = [f(0.2989), f(0.587), f(0.114)];
  for (let i = 0; i < gray.length; i++) {
    const [r, g, b] = [f(rgba[4 * i] / 255), f(rgba[4 * i + 1] / 255), f(rgba[4 * i + 2] / 255)];
    gray[i] = f(f(f(kr * r) + f(kg * g)) + f(kb * b));
  }
  const blurred = convolve(gray, w, hgt, gaussian(), 5);
  const gx = convolve(blurred, w, hgt, [-1, 0, 1, -2, 0, 2, -1, 0, 1], 3);
  const gy = convolve(blurred, w, hgt, [1, 2, 1, 0, 0, 0, -1, -2, -1], 3);
  const g = new Float32Array(w * hgt);
  let max = 0;
  for (let i = 0; i < g.length; i++) {
    g[i] = Math.sqrt(f(f(gx[i] * gx[i]) + f(gy[i] * gy[i])));
    max = Math.max(max, g[i]);
  }
  const scale = f(1 / max);
  if (max > 0) for (let i = 0; i < g.length; i++) g[i] = f(g[i] * scale);
  // The engine's suppression: its angle tests reduce to "compare with the pixels above and
  // below" up to 157.5 degrees, and "keep only the maximum" beyond (kept as it is: the preview
  // must match what the job gets, not a textbook canny).
  const img = new Float32Array(w * hgt);
  for (let y = 1; y < hgt - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      let angle = (Math.atan2(gy[i], gx[i]) * 180) / Math.PI;
      if (angle < 0) angle += 180;
      const [q, r] = angle <= 157.5 ? [g[i + w], g[i - w]] : [1, 1];
      img[i] = g[i] >= q && g[i] >= r ? g[i] : 0;
    }
  }
  let top = -Infinity;
  for (const v of img) top = Math.max(top, v);
  const ht = f(top * f(HIGH)), lt = f(ht * f(LOW));
  for (let i = 0; i < img.length; i++) {
    if (img[i] >= ht) img[i] = STRONG;
    else if (img[i] >= lt) img[i] = f(WEAK);
  }
  for (let y = 0; y < hgt; y++) {
    for (let x = 0; x < w; x++) {
      if (!(x >= 3 && x <= w - 3 && y >= 3 && y <= hgt - 3)) img[y * w + x] = 0;
    }
  }
  const strong = (x, y) => img[y * w + x] === STRONG;
  for (let y = 1; y < hgt - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      if (img[y * w + x] !== f(WEAK)) continue;
      const near = strong(x + 1, y - 1) || strong(x + 1, y) || strong(x, y - 1)
        || strong(x, y + 1) || strong(x - 1, y - 1) || strong(x - 1, y);
      img[y * w + x] = near ? STRONG : 0;
    }
  }
  return img;
}

function pixels(image) {
  const c = document.createElement("canvas");
  c.width = image.width;
  c.height = image.height;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(image.image, 0, 0);
  return g.getImageData(0, 0, c.width, c.height).data;
}

export function drawCanny() {
  const canvas = $("#canny-preview");
  const image = sourceImage();
  const show = currentKind() === "controlnet" && $("#f-canny").checked && Boolean(image);
  $("#canny-box").hidden = !show;
  if (!show) return;
  const { width: w, height: hgt } = image;
  const edges = cannyEdges(pixels(image), w, hgt);
  canvas.width = w;
  canvas.height = hgt;
  const g = canvas.getContext("2d");
  const out = g.createImageData(w, hgt);
  for (let i = 0; i < edges.length; i++) {
    const v = Math.round(Math.min(1, Math.max(0, edges[i])) * 255);
    out.data.set([v, v, v, 255], 4 * i);
  }
  g.putImageData(out, 0, 0);
  canvas.dataset.ready = "true";
}

export function initCanny() {
  $("#f-canny").addEventListener("change", drawCanny);
  on("source-image", drawCanny);
  on("kind", drawCanny);
}
