// The source image of img2img, inpainting and upscale: a file, drag-and-drop or paste. A PNG
// that carries generation parameters (sdcpp's or A1111's) offers to reuse them.

import { $, h, toast } from "./dom.js";
import { parseParameters, pngParameters } from "./a1111.js";
import { emit } from "./state.js";

let current = null; // {dataUrl, width, height, image}

export const sourceImage = () => current;

function readAs(file, how) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader[how](file);
  });
}

function offerReuse(values) {
  const box = $("#image-reuse");
  box.replaceChildren(
    h("span", {}, "This image carries its settings. "),
    h("button", { type: "button", class: "link", onclick: () => { emit("reuse", values); box.hidden = true; } },
      "Reuse them"),
  );
  box.hidden = false;
}

export async function setImageFile(file) {
  if (!file || !file.type.startsWith("image/")) {
    toast("That is not an image.", "error");
    return;
  }
  const dataUrl = await readAs(file, "readAsDataURL");
  const image = new Image();
  image.src = dataUrl;
  await image.decode();
  current = { dataUrl, width: image.naturalWidth, height: image.naturalHeight, image, name: file.name };
  const preview = $("#image-preview");
  preview.src = dataUrl;
  preview.hidden = false;
  $("#image-drop-text").textContent = `${file.name || "pasted image"} · ${current.width} × ${current.height}`;
  $("#image-reuse").hidden = true;
  if (file.type === "image/png") {
    const values = parseParameters(pngParameters(await readAs(file, "readAsArrayBuffer")));
    if (values && values.prompt) offerReuse(values);
  }
  emit("source-image", current);
}

export async function setImageUrl(url, name = "image.png") {
  const res = await fetch(url, { credentials: "same-origin", headers: { "X-Sdcpp-Client": "webui" } });
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch { /* not our envelope */ }
    toast(message, "error");
    return;
  }
  const blob = await res.blob();
  await setImageFile(new File([blob], name, { type: blob.type }));
}

// An image from the web, through the server's SSRF-safe download (/api/image/download).
function fetchFromUrl() {
  const url = $("#image-url").value.trim();
  if (!url) return;
  const name = url.split("/").pop().split("?")[0] || "image.png";
  setImageUrl(`/api/image/download?url=${encodeURIComponent(url)}`, name);
}

export function initImageInput() {
  const zone = $("#image-drop");
  const file = $("#image-file");
  file.addEventListener("change", () => file.files[0] && setImageFile(file.files[0]));
  $("#image-url-load").addEventListener("click", fetchFromUrl);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const dropped = e.dataTransfer.files[0];
    if (dropped) setImageFile(dropped);
  });
  document.addEventListener("paste", (e) => {
    if ($("#image-input").hidden) return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) { e.preventDefault(); setImageFile(item.getAsFile()); }
  });
}
