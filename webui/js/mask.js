// The inpainting mask editor: paint over the source image (white = repaint) with a brush or
// an eraser; size, invert, clear, undo, zoom (buttons or Ctrl+wheel; the stage grows inside a
// scroll box, and strokes map through its on-screen size). Pointer events: mouse, pen, touch.

import { $, $$ } from "./dom.js";
import { on } from "./state.js";

const canvas = () => $("#mask-canvas");
const undoStack = [];
let tool = "brush";
let drawing = false;
let last = null;
const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8];
let zoom = 1;

export function setZoom(next) {
  zoom = Math.min(ZOOMS.at(-1), Math.max(1, next));
  $("#mask-stage").style.setProperty("--zoom", String(zoom)); // CSSOM: allowed by the CSP
  $("#mask-zoom-value").textContent = `${Math.round(zoom * 100)}%`;
}

function zoomStep(direction) {
  const i = ZOOMS.findIndex((z) => z >= zoom - 1e-9);
  setZoom(ZOOMS[Math.min(ZOOMS.length - 1, Math.max(0, i + direction))]);
}

function ctx() {
  return canvas().getContext("2d", { willReadFrequently: true });
}

function size() {
  return Math.max(1, Number($("#mask-size").value) || 1);
}

function snapshot() {
  const c = canvas();
  undoStack.push(ctx().getImageData(0, 0, c.width, c.height));
  if (undoStack.length > 30) undoStack.shift();
}

function point(e) {
  const c = canvas();
  const rect = c.getBoundingClientRect();
  return [(e.clientX - rect.left) * (c.width / rect.width), (e.clientY - rect.top) * (c.height / rect.height)];
}

function stroke(from, to) {
  const g = ctx();
  const scale = canvas().width / canvas().getBoundingClientRect().width;
  g.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
  g.strokeStyle = "#fff";
  g.fillStyle = "#fff";
  g.lineCap = "round";
  g.lineJoin = "round";
  g.lineWidth = size() * scale;
  g.beginPath();
  g.moveTo(...from);
  g.lineTo(...to);
  g.stroke();
}

export function resetMask(width, height) {
  const c = canvas();
  c.width = width;
  c.height = height;
  undoStack.length = 0;
}

export function clearMask() {
  snapshot();
  const c = canvas();
  ctx().clearRect(0, 0, c.width, c.height);
}

export function invertMask() {
  snapshot();
  const c = canvas();
  const g = ctx();
  const data = g.getImageData(0, 0, c.width, c.height);
  for (let i = 3; i < data.data.length; i += 4) {
    data.data[i] = 255 - data.data[i];
    data.data[i - 3] = data.data[i - 2] = data.data[i - 1] = 255;
  }
  g.putImageData(data, 0, 0);
}

export function undoMask() {
  const state = undoStack.pop();
  if (state) ctx().putImageData(state, 0, 0);
}

// The mask as the API wants it: a PNG, white where to repaint, black elsewhere.
export function maskDataUrl() {
  const c = canvas();
  const out = document.createElement("canvas");
  out.width = c.width;
  out.height = c.height;
  const g = out.getContext("2d");
  g.fillStyle = "#000";
  g.fillRect(0, 0, out.width, out.height);
  g.drawImage(c, 0, 0);
  return out.toDataURL("image/png");
}

export function maskIsEmpty() {
  const c = canvas();
  const data = ctx().getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i]) return false;
  return true;
}

function setTool(next) {
  tool = next;
  for (const b of $$("#mask-tools [data-tool]")) b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
}

export function initMask() {
  const c = canvas();
  c.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    c.setPointerCapture(e.pointerId);
    snapshot();
    drawing = true;
    last = point(e);
    stroke(last, last);
  });
  c.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { drawing = false; last = null; };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);
  for (const b of $$("#mask-tools [data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("#mask-invert").addEventListener("click", invertMask);
  $("#mask-clear").addEventListener("click", clearMask);
  $("#mask-undo").addEventListener("click", undoMask);
  $("#mask-zoom-in").addEventListener("click", () => zoomStep(1));
  $("#mask-zoom-out").addEventListener("click", () => zoomStep(-1));
  $("#mask-zoom-reset").addEventListener("click", () => setZoom(1));
  c.addEventListener("wheel", (e) => {
    if (!e.ctrlKey) return; // a plain wheel scrolls the zoomed stage
    e.preventDefault();
    zoomStep(e.deltaY < 0 ? 1 : -1);
  }, { passive: false });
  $("#mask-size").addEventListener("input", () => { $("#mask-size-value").textContent = $("#mask-size").value; });
  on("source-image", (img) => {
    $("#mask-image").src = img.dataUrl;
    resetMask(img.width, img.height);
    setZoom(1);
  });
  setTool("brush");
}
