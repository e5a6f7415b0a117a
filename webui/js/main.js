// Start-up: theme, sign-in, the form, live updates; pages by URL hash; keyboard shortcuts.

import { initAccount, renderAccount } from "./account.js";
import { initCanny } from "./canny.js";
import { $, $$, toast } from "./dom.js";
import { initAuth } from "./auth.js";
import { buildForm } from "./form.js";
import { cancelJob, generate, initGenerate } from "./generate.js";
import { initGallery, step } from "./gallery.js";
import { initImageInput } from "./imageinput.js";
import { initLoras } from "./loras.js";
import { loadQueue, startLive, stopLive } from "./live.js";
import { initMask } from "./mask.js";
import { initModelPick } from "./modelpick.js";
import { initModels, renderModels } from "./models.js";
import { initPresets, loadPresets } from "./presets.js";
import { initQueue } from "./queue.js";
import { initStatus } from "./status.js";
import { dropJob, jobs, on } from "./state.js";
import { initTheme, toggleTheme } from "./theme.js";

const PAGES = ["generate", "queue", "gallery", "models", "account"];

function showPage() {
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "generate";
  for (const p of PAGES) $(`#page-${p}`).hidden = p !== page;
  for (const a of $$("nav.pages a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page === "models") renderModels().catch((e) => toast(e.message, "error"));
  if (page === "account") renderAccount().catch((e) => toast(e.message, "error"));
}

const typing = (e) => e.target.closest("input, textarea, select, [contenteditable]");

function shortcuts(e) {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
    e.preventDefault();
    generate();
    return;
  }
  if (e.key === "Escape" && typing(e) && !document.querySelector("dialog[open]")) {
    e.target.blur(); // Esc leaves a field: single-key shortcuts work again
    return;
  }
  if (e.altKey || e.ctrlKey || e.metaKey || typing(e)) return;
  const keys = {
    "g": () => { location.hash = "#generate"; $("#f-prompt").focus(); },
    "q": () => { location.hash = "#queue"; },
    "i": () => { location.hash = "#gallery"; },
    "m": () => { location.hash = "#models"; },
    "x": () => cancelJob(),
    "t": toggleTheme,
    "ArrowRight": () => step(1),
    "ArrowLeft": () => step(-1),
    "?": () => $("#help-dialog").showModal(),
  };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
}

async function boot() {
  initTheme();
  window.addEventListener("hashchange", showPage);
  document.addEventListener("keydown", shortcuts);
  $("#help-button").addEventListener("click", () => $("#help-dialog").showModal());
  $("#help-close").addEventListener("click", () => $("#help-dialog").close());
  initGenerate();
  initImageInput();
  initLoras();
  initAccount();
  initModelPick();
  initMask();
  initCanny();
  initPresets();
  initQueue();
  initGallery();
  showPage();
  await initAuth();
  await start();
  on("signed-in", () => { jobs.clear(); start(); });
  on("signed-out", () => { // nothing of the last user stays on screen
    stopLive();
    for (const id of [...jobs.keys()]) dropJob(id);
  });
  document.body.dataset.ready = "true";
  performance.mark("sdcpp-ready"); // time-to-interactive, read by the browser tests
}

let initialized = false;

async function start() {
  const once = initialized ? [] : [initModels()];
  await Promise.all([buildForm(), loadQueue(), loadPresets(), ...once]);
  if (!initialized) initStatus();
  initialized = true;
  startLive();
}

boot().catch((e) => {
  console.warn(e);
  toast(`Start-up failed: ${e.message}`, "error");
});
