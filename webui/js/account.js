// The Account page (auth on): your API keys (create, shown once; revoke) and, for admins, the
// users (create, role, enable/disable, delete). The API checks every action anyway.

import { api } from "./api.js";
import { $, h, toast } from "./dom.js";
import { on, session } from "./state.js";

const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "never");

async function call(path, options, message) {
  try {
    const answer = await api(path, options);
    if (message) toast(message);
    await renderAccount();
    return answer;
  } catch (e) {
    toast(e.message, "error");
    return null;
  }
}

function keyRow(k) {
  return h("tr", {},
    h("th", { scope: "row" }, k.name || ""),
    h("td", {}, k.user || ""),
    h("td", { class: "mono" }, `${k.prefix}…`),
    h("td", {}, when(k.last_used_at)),
    h("td", {}, k.revoked ? "revoked"
      : h("button", { type: "button", class: "small danger",
        onclick: () => call(`/api/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }, "Key revoked.") },
      "Revoke")));
}

function userRow(u) {
  const name = encodeURIComponent(u.username);
  const self = session.user && session.user.username === u.username;
  const patch = (body, message) => call(`/api/users/${name}`, { method: "PATCH", body }, message);
  return h("tr", {},
    h("th", { scope: "row" }, u.username),
    h("td", {}, u.role),
    h("td", {}, u.source || ""),
    h("td", {}, u.active ? "active" : "disabled"),
    h("td", {}, self ? "(you)" : [
      h("button", { type: "button", class: "small",
        onclick: () => patch({ role: u.role === "admin" ? "user" : "admin" }, "Role changed.") },
      u.role === "admin" ? "Make user" : "Make admin"), " ",
      h("button", { type: "button", class: "small", onclick: () => patch({ active: !u.active }, "Saved.") },
        u.active ? "Disable" : "Enable"), " ",
      h("button", { type: "button", class: "small danger", onclick: () => confirm(`Delete ${u.username}?`)
        && call(`/api/users/${name}`, { method: "DELETE" }, "User deleted.") }, "Delete"),
    ]));
}

export async function renderAccount() {
  if (!session.authEnabled || !session.user) return; // signed out: nothing to ask for
  const keys = await api("/api/keys");
  $("#keys-body").replaceChildren(...(keys.keys || []).map(keyRow));
  const admin = session.user && session.user.role === "admin";
  $("#users-panel").hidden = !admin;
  if (admin) {
    const users = await api("/api/users");
    $("#users-body").replaceChildren(...(users.users || []).map(userRow));
  }
}

export function initAccount() {
  on("user", () => {
    $("#nav-account").hidden = !session.authEnabled || !session.user;
    // signed in on the Account page itself (a bookmark): it was drawn for nobody
    if (session.user && !$("#page-account").hidden) {
      renderAccount().catch((e) => toast(e.message, "error"));
    }
  });
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const answer = await call("/api/keys", { method: "POST", body: { name: $("#key-name").value.trim() } });
    if (answer) {
      $("#key-new").textContent = answer.key;
      $("#key-new-box").hidden = false;
      $("#key-name").value = "";
    }
  });
  $("#user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: $("#user-new-name").value.trim(), role: $("#user-new-role").value };
    if ($("#user-new-password").value) body.password = $("#user-new-password").value;
    if (await call("/api/users", { method: "POST", body }, "User created.")) {
      $("#user-form").reset();
    }
  });
}
