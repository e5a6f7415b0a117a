// Light and dark: the system's choice unless the user picked one (kept in localStorage).

const KEY = "sdcpp.theme";

export function currentTheme() {
  const picked = document.documentElement.dataset.theme;
  if (picked) return picked;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const button = document.getElementById("theme-toggle");
  if (button) button.setAttribute("aria-pressed", String(currentTheme() === "dark"));
}

export function toggleTheme() {
  const next = currentTheme() === "dark" ? "light" : "dark";
  localStorage.setItem(KEY, next);
  applyTheme(next);
}

export function initTheme() {
  applyTheme(localStorage.getItem(KEY));
  document.getElementById("theme-toggle").addEventListener("click", toggleTheme);
}
