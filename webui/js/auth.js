// Sign-in: a login form when the server wants credentials. The token lives in the HttpOnly
// session cookie the login sets (pages never read it); refreshed before it expires.

import { api, ApiError, onAuthRequired } from "./api.js";
import { $, toast } from "./dom.js";
import { emit, on, session } from "./state.js";

let refreshTimer = null;

function scheduleRefresh(expiresIn) {
  clearTimeout(refreshTimer);
  if (!expiresIn) return;
  const wait = Math.max(30, expiresIn - 300) * 1000; // five minutes early
  refreshTimer = setTimeout(refresh, Math.min(wait, 2 ** 31 - 1));
}

export async function refresh() {
  try {
    const answer = await api("/api/auth/refresh", { method: "POST" });
    scheduleRefresh(answer.expires_in);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) showLogin();
  }
}

function setUser(user) {
  session.user = user;
  const menu = $("#user-menu");
  menu.hidden = !session.authEnabled || !user;
  $("#user-name").textContent = user ? `${user.username} (${user.role})` : "";
  document.body.classList.toggle("is-admin", !!user && user.role === "admin");
  emit("user", user);
}

export function showLogin(message = "") {
  const dialog = $("#login-dialog");
  $("#login-error").textContent = message;
  if (!dialog.open) dialog.showModal();
  $("#login-username").focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const username = $("#login-username").value.trim();
  const password = $("#login-password").value;
  try {
    const answer = await api("/api/auth/login", { method: "POST", body: { username, password } });
    $("#login-password").value = "";
    $("#login-dialog").close();
    session.authEnabled = true;
    setUser(answer.user);
    scheduleRefresh(answer.expires_in);
    emit("signed-in", answer.user);
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
}

export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } catch (e) {
    toast(e.message, "error");
  }
  clearTimeout(refreshTimer);
  setUser(null);
  emit("signed-out");
  showLogin();
}

// Who are we? Resolves once signed in (at once when auth is off or the cookie is valid).
export async function initAuth() {
  $("#login-form").addEventListener("submit", submitLogin);
  $("#logout").addEventListener("click", logout);
  $("#login-dialog").addEventListener("cancel", (e) => e.preventDefault());
  onAuthRequired((e) => {
    session.authEnabled = true;
    if (session.user) setUser(null);
    showLogin(e.code === "INVALID_CREDENTIALS" ? "Your session ended: sign in again." : "");
  });
  try {
    const me = await api("/api/auth/me");
    session.authEnabled = me.user && me.user.username !== "anonymous";
    setUser(me.user);
    if (session.authEnabled) refresh();
    return;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
  }
  await new Promise((resolve) => on("signed-in", resolve));
}
