// playgate web interface: a small single-page app over the admin API.
// No inline scripts or styles (strict CSP); every value from the server is
// inserted as text, never as HTML. Times are shown in the browser's zone.
"use strict";

const state = { me: null, csrf: "", timer: null };
const PAGE = 25;

// ---------- DOM helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
// replaceChildren, leaving out absent parts (null, false) instead of printing them.
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
}
// put() for a periodic refresh: the control that had keyboard focus inside
// `el` is found again by its data-key, so focus does not fall back to the
// page body every few seconds. When it is gone, `el` (tabindex -1) keeps it.
function refresh(el, ...children) {
  const active = document.activeElement;
  if (!active || !el.contains(active)) { put(el, ...children); return; }
  const key = active.dataset.key;
  put(el, ...children);
  const again = key && Array.from(el.querySelectorAll("[data-key]")).find(x => x.dataset.key === key);
  (again || el).focus({ preventScroll: true });
}
const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $("#main");
const isAdmin = () => state.me && state.me.kind === "admin";

function toast(message) {
  const el = $("#toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}
function fmtDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const d = Math.floor(seconds / 86400), hh = Math.floor(seconds % 86400 / 3600),
    mm = Math.floor(seconds % 3600 / 60), ss = seconds % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}
function fmtHours(seconds) { return (seconds / 3600).toFixed(seconds < 360 ? 2 : 1); }
// <input type=datetime-local> value (local zone) <-> ISO
function toLocalInput(date) {
  const pad = n => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
function fromLocalInput(value) { return value ? new Date(value).toISOString() : null; }

// ---------- API ----------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status; this.field = body && body.field;
    this.users = (body && body.users) || [];
  }
}
async function api(method, path, body) {
  const headers = { "Accept": "application/json", "X-Playgate-CSRF": state.csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(path, init); }
  catch (e) { throw new ApiError(0, { error: "the server cannot be reached" }); }
  if (response.status === 401 && path !== "/api/v1/login") { signedOut("Your session has ended; please sign in again."); throw new ApiError(401, { error: "signed out" }); }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
const enc = encodeURIComponent;
function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)
    .map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? "?" + parts.join("&") : "";
}

// ---------- dialogs ----------
// Every modal dialog: Tab and Shift+Tab go round inside it, and when it
// closes the focus goes back to what opened it (or, where a reload
// replaced that, to the same control by its id or data-key, else the page).
function showModal(dialog) {
  const opener = document.activeElement;
  const openerId = opener && opener.id, openerKey = opener && opener.dataset && opener.dataset.key;
  dialog.addEventListener("keydown", event => {
    if (event.key !== "Tab") return;
    const focusable = [...dialog.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])")]
      .filter(e => !e.disabled && !e.hidden && e.getClientRects().length);
    if (!focusable.length) return;
    const first = focusable[0], last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  });
  dialog.addEventListener("close", () => {
    const back = opener && opener.isConnected && opener !== document.body ? opener
      : (openerId && document.getElementById(openerId))
        || (openerKey && document.querySelector(`[data-key="${CSS.escape(openerKey)}"]`))
        || $("#main");
    // After the dialog is gone (a close handler may still be removing it).
    setTimeout(() => { if (back && back.isConnected) back.focus(); }, 0);
  });
  dialog.showModal();
}
function confirmDialog(message, action) {
  return new Promise(resolve => {
    const cancel = h("button", { type: "button", "data-testid": "confirm-no", onclick: () => { dialog.close(); resolve(false); } }, "Cancel");
    const dialog = h("dialog", { "data-testid": "confirm" },
      h("p", { text: message }),
      h("div", { class: "form-actions" },
        h("button", { type: "button", class: "danger", "data-testid": "confirm-yes", onclick: () => { dialog.close(); resolve(true); } }, action),
        cancel));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(false); });
    document.body.append(dialog);
    showModal(dialog);
    // showModal focuses the first button, the destructive one, where a
    // stray Enter would act: the safe choice has the focus instead.
    cancel.focus();
  });
}
// A refused write, in a banner that stays until dismissed: the API's reason,
// and the users it names linked to their editor.
function showRefusal(slot, e) {
  const close = h("button", { type: "button", class: "small", onclick: () => put(slot) }, "Dismiss");
  put(slot, h("div", { class: "banner error refusal", role: "alert", "data-testid": "refusal" },
    h("p", { text: e.message }),
    e.users.length ? h("p", {}, "Edit: ", e.users.flatMap((login, i) => [i ? ", " : null,
      h("a", { href: `#/users?edit=${enc(login)}`, "data-testid": "edit-user" }, login)])) : null,
    close));
}
// A form in a modal dialog. `opts`: `submit` (the submit button's text,
// default Save), `keepOpen` (a successful submit leaves the dialog open, its
// result shown in it), `aliases` (an API field name -> the field whose slot
// shows its error, e.g. expires_at -> ttl), `wide` (a wider dialog).
function formDialog(title, content, onSubmit, opts) {
  opts = opts || {};
  const errorBox = h("div", { class: "banner error", hidden: true, role: "alert" });
  const form = h("form", { novalidate: true }, h("h2", { text: title }), errorBox, content,
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "primary", "data-testid": "save" }, opts.submit || "Save"),
      h("button", { type: "button", onclick: () => dialog.close() }, opts.keepOpen ? "Close" : "Cancel")));
  const dialog = h("dialog", { class: opts.wide ? "wide" : null }, form);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    errorBox.hidden = true;
    form.querySelectorAll(".error[data-for]").forEach(e => { e.textContent = ""; });
    try {
      await onSubmit(form);
      if (!opts.keepOpen) dialog.close();
    } catch (e) {
      const name = e.field && ((opts.aliases && opts.aliases[e.field]) || e.field);
      const slot = name && form.querySelector(`.error[data-for="${CSS.escape(name)}"]`);
      if (slot) { slot.textContent = e.message; const input = form.querySelector(`[name="${CSS.escape(name)}"]`); if (input) input.focus(); }
      else { errorBox.textContent = e.message; errorBox.hidden = false; }
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
  return dialog;
}
function field(name, labelText, input, hint) {
  input.name = name; input.id = "f-" + name;
  return h("div", { class: input.dataset.wide ? "wide" : "" },
    h("label", { for: input.id, text: labelText }), input,
    hint ? h("div", { class: "muted", text: hint }) : null,
    h("div", { class: "error", "data-for": name, "aria-live": "polite" }));
}

// ---------- tables ----------
// `rowAttrs` (optional): a row's attributes (e.g. a data- id, a class).
function table(columns, rows, emptyText, rowAttrs) {
  if (!rows.length) return h("div", { class: "panel empty", text: emptyText });
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(c => h("th", { class: c.cls || "", scope: "col", text: c.title })))),
    h("tbody", {}, rows.map(row => h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map(c => {
      const value = c.render(row);
      return h("td", { class: c.cls || "" }, value);
    }))))));
}
function pager(total, offset, go) {
  const last = Math.max(0, Math.ceil(total / PAGE) - 1), page = Math.floor(offset / PAGE);
  return h("div", { class: "pager" },
    h("span", { class: "muted", text: total ? `${offset + 1}–${Math.min(total, offset + PAGE)} of ${total}` : "" }),
    h("button", { type: "button", class: "small", "data-key": "page-previous", disabled: page <= 0, onclick: () => go(offset - PAGE) }, "‹ Previous"),
    h("button", { type: "button", class: "small", "data-key": "page-next", disabled: page >= last, onclick: () => go(offset + PAGE) }, "Next ›"));
}
function badge(text, cls) { return h("span", { class: "badge " + (cls || "") , text }); }
// A limit's input (max_sessions, max_devices, max_viewers): empty = none.
function limitInput(value) {
  return h("input", { type: "number", min: "0", step: "1", inputmode: "numeric", value: value === null || value === undefined ? "" : String(value) });
}
// Its value for the API: null when empty. Text the browser cannot read as a
// number is refused here, not sent as "empty", which would clear the limit.
function limitValue(form, name) {
  const input = form.elements[name];
  if (input.validity.badInput) throw new ApiError(422, { field: name, error: "Enter a whole number (0 or more), or leave it empty." });
  return input.value.trim() === "" ? null : Number(input.value);
}
function fmtLimit(value, none) { return value === null || value === undefined ? h("span", { class: "muted", text: none }) : String(value); }
function errorState(e) { return h("div", { class: "banner error", role: "alert", text: "Could not load: " + e.message }); }

// ---------- sign-in ----------
function signedOut(message) {
  state.me = null; state.csrf = "";
  document.querySelectorAll("dialog[open]").forEach(d => d.close());
  stopTimer();
  $("#top").hidden = true;
  renderLogin(message);
}
function renderLogin(message) {
  const error = h("div", { class: "banner error", role: "alert", id: "login-error", hidden: !message, text: message || "" });
  const login = h("input", { id: "login", name: "login", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel login-box", id: "login-form" },
    h("h1", { text: "playgate" }), error,
    h("div", { class: "field" }, h("label", { for: "login", text: "Login" }), login),
    h("div", { class: "field" }, h("label", { for: "password", text: "Password" }), password),
    h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    error.hidden = true;
    try {
      const me = await api("POST", "/api/v1/login", { login: login.value, password: password.value });
      signedIn(me);
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong login or password." : e.message;
      error.hidden = false;
      password.value = ""; password.focus();
    }
  });
  put(main(), form);
  login.focus();
}
function signedIn(me) {
  state.me = me; state.csrf = me.csrf;
  $("#top").hidden = false;
  put($("#who"), document.createTextNode(me.login), h("span", { class: "role", text: me.kind }));
  document.body.dataset.role = me.kind;
  // Admin-only sections (signing keys) are not offered to observers.
  document.querySelectorAll("#nav [data-admin]").forEach(a => { a.hidden = !isAdmin(); });
  if (!location.hash || location.hash === "#/") location.hash = "#/users";
  route();
}

// ---------- router ----------
const pages = {};
// Pages for admins only: an observer who opens one gets the users page.
const adminPages = new Set(["signing-keys"]);
function stopTimer() { if (state.timer) { clearInterval(state.timer); state.timer = null; } }
function route() {
  if (!state.me) return;
  stopTimer();
  document.querySelectorAll("dialog[open]").forEach(d => d.close());
  let name = (location.hash.replace(/^#\//, "").split("?")[0]) || "users";
  if (!pages[name] || (adminPages.has(name) && !isAdmin())) name = "users";
  const page = pages[name];
  document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active", a.dataset.page === name));
  document.querySelectorAll("#nav a").forEach(a => { if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current"); });
  put(main(), h("p", { class: "muted", text: "Loading…" }));
  page();
}
window.addEventListener("hashchange", route);

// A login, linked to that user's page.
function userLink(login) {
  return h("a", { href: `#/user?login=${encodeURIComponent(login)}`, class: "user-link" }, h("strong", { text: login }));
}

// ---------- one user ----------
// #/user?login=<login>: what a support desk needs about one account, for
// observers too: every field, what it watches now and on which devices,
// its history and watch time; admins renew, kick all, edit.
pages.user = function () {
  const login = new URLSearchParams(location.hash.split("?")[1] || "").get("login") || "";
  const body = h("div", {});
  put(main(), h("p", {}, h("a", { href: "#/users" }, "‹ Users")), h("h1", { text: login }), body);
  async function load() {
    try {
      const [u, live, ended, watched, tokenPage] = await Promise.all([
        api("GET", `/api/v1/users/${enc(login)}`),
        api("GET", "/api/v1/sessions" + query({ user: login, limit: 100 })),
        api("GET", "/api/v1/sessions" + query({ user: login, state: "ended", limit: PAGE })),
        api("GET", `/api/v1/stats/users/${enc(login)}`).catch(() => null),
        api("GET", `/api/v1/users/${enc(login)}/tokens?limit=100`).catch(() => null)]);
      const limit = v => v === null || v === undefined ? "unlimited" : String(v);
      const list = (items, none) => items.length ? items.join(", ") : none;
      const facts = [
        ["Kind", u.kind], ["State", userState(u)], ["Expires", u.expires_at ? fmtTime(u.expires_at) : "never"],
        ["Concurrent sessions", limit(u.max_sessions)], ["Devices at once", limit(u.max_devices)],
        ["Packages", list(u.packages, "every stream")], ["Countries", list(u.countries, "anywhere")],
        ["Bound addresses", list(u.ips, "none")], ["Set-top box", u.stb || "—"],
        ["Password", u.has_password ? "set" : "none"], ["Tokens", String(u.tokens)],
        ["Comment", u.comment || "—"], ["Created", fmtTime(u.created_at)]];
      // No password, no token, no bound address: nothing lets it play.
      const noCredential = !u.has_password && !u.tokens && !u.ips.length;
      const devices = [...new Set(live.items.map(x => x.device))];
      const renew = months => h("button", { type: "button", class: "small", "data-testid": `renew-${months}`, onclick: async () => {
        const base = u.expires_at && new Date(u.expires_at) > new Date() ? new Date(u.expires_at) : new Date();
        base.setMonth(base.getMonth() + months);
        try { await api("PATCH", `/api/v1/users/${enc(login)}`, { expires_at: base.toISOString() }); toast(`${login} renewed until ${fmtTime(base.toISOString())}`); load(); }
        catch (e) { toast(e.message); }
      } }, `+${months} ${months === 1 ? "month" : "months"}`);
      const kickAll = h("button", { type: "button", class: "small danger", "data-testid": "kick-all", disabled: !live.items.length, onclick: async () => {
        if (!await confirmDialog(`Kick all ${live.items.length} sessions of ${login}?`, "Kick all")) return;
        for (const x of live.items) await api("DELETE", `/api/v1/sessions/${x.id}`).catch(() => {});
        toast(`${login}'s sessions kicked`); load();
      } }, "Kick all");
      put(body,
        noCredential ? h("div", { class: "banner error", "data-testid": "no-credential", text: "This account has no password, no token and no bound address: it cannot play." }) : null,
        h("dl", { class: "legend facts", "data-testid": "user-facts" }, facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])),
        isAdmin() ? h("div", { class: "toolbar" }, h("span", { class: "muted", text: "Renew:" }), renew(1), renew(3), renew(12), kickAll,
          h("button", { type: "button", class: "small", "data-testid": "edit", onclick: () => userForm(u, load) }, "Edit")) : null,
        h("h2", { text: `Tokens (${u.tokens})` }),
        tokenPage ? table([{ title: "Label", render: t => t.label || h("span", { class: "muted", text: "—" }) },
          { title: "Scope", render: t => t.scope }, { title: "Expires", render: tokenExpiry },
          { title: "Last used", render: tokenLastUsed }], tokenPage.items, "No tokens.", () => ({ "data-testid": "user-token" })) : null,
        h("p", {}, h("button", { type: "button", class: "small", "data-testid": "user-tokens", onclick: () => tokensDialog(login) }, isAdmin() ? "Manage tokens" : "Tokens")),
        h("h2", { text: `Watching now (${live.total})` }),
        table([{ title: "Stream", render: x => x.stream }, { title: "Device", render: deviceCell }, { title: "From", render: fromCell },
          { title: "For", cls: "num", render: x => fmtDuration((Date.now() - new Date(x.started_at)) / 1000) }], live.items, "Not watching now."),
        h("p", { class: "muted", "data-testid": "user-devices", text: devices.length ? `On ${devices.length} ${devices.length === 1 ? "device" : "devices"} now.` : "On no device now." }),
        h("h2", { text: "Watch time, last 24 h" }),
        watched ? h("p", { "data-testid": "user-watch-time", text: `${fmtHours(watched.watch_seconds)} hours in ${watched.sessions} ${watched.sessions === 1 ? "session" : "sessions"}` + (watched.streams.length ? ": " + watched.streams.map(x => `${x.stream} ${fmtHours(x.watch_seconds)} h`).join(", ") : ".") }) : h("p", { class: "muted", text: "No statistics." }),
        h("h2", { text: `History (${ended.total})` }),
        table([{ title: "Stream", render: x => x.stream }, { title: "Ended", render: x => fmtTime(x.ended_at) },
          { title: "Watched", cls: "num", render: x => fmtDuration((new Date(x.ended_at) - new Date(x.started_at)) / 1000) },
          { title: "End reason", render: x => endReason(x.end_reason) }], ended.items, "No ended sessions."),
        ended.total > ended.items.length ? h("p", {}, h("a", { href: `#/sessions?state=ended` }, "All history")) : null);
    } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
  }
  load();
};

// ---------- users ----------
pages.users = function () {
  let q = "", offset = 0;
  const search = h("input", { type: "search", id: "user-search", placeholder: "Search login or comment", "aria-label": "Search users" });
  const list = h("div", {});
  const title = h("h1", { text: "Users" });
  const toolbar = h("div", { class: "toolbar" }, h("div", { class: "grow" }, search),
    isAdmin() ? h("button", { type: "button", class: "primary", id: "new-user", onclick: () => userForm(null, load) }, "New user") : null);
  let debounce;
  search.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { q = search.value.trim(); offset = 0; load(); }, 250); });
  const notice = h("div", { id: "users-notice" });
  put(main(), title, toolbar, notice, list);
  // #/users?q=<text>: that search (the audit log's links);
  // #/users?edit=<login>: straight into that user's editor (links of a refusal).
  const asked = new URLSearchParams(location.hash.split("?")[1] || "");
  if (asked.get("q")) search.value = q = asked.get("q");
  const edit = asked.get("edit");
  if (edit && isAdmin()) {
    history.replaceState(null, "", "#/users");
    api("GET", `/api/v1/users/${enc(edit)}`).then(u => userForm(u, load)).catch(e => { if (e.status !== 401) showRefusal(notice, e); });
  }

  async function load() {
    try {
      const page = await api("GET", "/api/v1/users" + query({ q, limit: PAGE, offset }));
      const columns = [
        { title: "Login", render: u => userLink(u.login) },
        { title: "Kind", render: u => badge(u.kind, u.kind) },
        { title: "Enabled", render: userState },
        { title: "Expires", cls: "hide-narrow", render: u => fmtTime(u.expires_at) },
        { title: "Limit", cls: "num hide-narrow", render: u => u.max_sessions === null ? "∞" : String(u.max_sessions) },
        { title: "Devices", cls: "num hide-narrow", render: u => h("span", { title: "Devices at once", text: u.max_devices === null || u.max_devices === undefined ? "∞" : String(u.max_devices) }) },
        { title: "Packages", cls: "hide-narrow", render: u => u.packages.length ? u.packages.join(", ") : h("span", { class: "muted", text: "all streams" }) },
        { title: "Active", cls: "num", render: u => String(u.active_sessions ?? 0) },
        { title: "", cls: "actions", render: u => userActions(u, load, notice) }];
      put(list, 
        table(columns, page.items, q ? "No user matches this search." : "No users yet.", u => ({ "data-login": u.login })),
        pager(page.total, offset, next => { offset = Math.max(0, next); load(); }));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function userActions(u, reload, notice) {
  const tokens = h("button", { type: "button", class: "small", "data-testid": "tokens", onclick: () => tokensDialog(u.login) }, `Tokens (${u.tokens})`);
  // Observers have no editor, where admins see the devices: a dialog of their own.
  if (!isAdmin()) return [h("button", { type: "button", class: "small", "data-testid": "devices", onclick: () => devicesDialog(u) }, "Devices"), tokens];
  const self = state.me && u.login === state.me.login;
  const refused = e => { if (e.status === 409) showRefusal(notice, e); else if (e.status !== 401) toast(e.message); };
  return [
    h("button", { type: "button", class: "small", "data-testid": "edit", onclick: () => userForm(u, reload) }, "Edit"),
    h("button", { type: "button", class: "small", "data-testid": "toggle", onclick: async () => {
      // Disabling is as drastic as deleting (no playing, no signing in), so it is confirmed the same way.
      if (u.enabled && !await confirmDialog(self
        ? `Disable your own account ${u.login}? You are signed out at once, and only another admin can enable it again.`
        : `Disable ${u.login}? They can no longer play or sign in, and their web sessions end.`, "Disable")) return;
      try { await api("PATCH", `/api/v1/users/${enc(u.login)}`, { enabled: !u.enabled }); put(notice); toast(`${u.login} ${u.enabled ? "disabled" : "enabled"}`); reload(); }
      catch (e) { refused(e); }
    } }, u.enabled ? "Disable" : "Enable"),
    tokens,
    h("button", { type: "button", class: "small", "data-testid": "make-link", title: `Make a signed playback link for ${u.login}`, onclick: () => linkDialog(u.login) }, "Link"),
    h("button", { type: "button", class: "small danger", onclick: async () => {
      if (!await confirmDialog(self
        ? `Delete your own account ${u.login}? You are signed out at once.`
        : `Delete user ${u.login}? Their sessions end and their tokens stop working.`, "Delete")) return;
      try { await api("DELETE", `/api/v1/users/${enc(u.login)}`); put(notice); toast(`${u.login} deleted`); reload(); }
      catch (e) { refused(e); }
    } }, "Delete")];
}
// The packages of a user: one checkbox per package, and "every stream" as a
// choice of its own. With no package a user may watch everything, so that
// is never what unchecking the last box silently means: saving with nothing
// chosen is refused. `names` null: the list could not be loaded.
function packagePicker(names, current) {
  const every = h("input", { type: "checkbox", id: "f-every-stream", checked: !!current && current.length === 0 });
  const boxes = (names || []).map(name => h("input", { type: "checkbox", name: "packages", value: name, checked: !!current && current.includes(name) }));
  every.addEventListener("change", () => { if (every.checked) boxes.forEach(b => { b.checked = false; }); });
  for (const box of boxes) box.addEventListener("change", () => { if (box.checked) every.checked = false; });
  const el = h("fieldset", { class: "wide packages", id: "f-packages" },
    h("legend", { text: "Packages (what the user may watch)" }),
    names === null ? h("p", { class: "muted", text: "The packages could not be loaded; they are left as they are." })
      : h("div", { class: "choices" }, boxes.length ? boxes.map(b => h("label", { class: "check" }, b, b.value))
        : h("p", { class: "muted", text: "No packages yet: create them under Packages to limit what users may watch." })),
    names === null ? null : h("label", { class: "check every" }, every, "Every stream (no package)"),
    h("div", { class: "error", "data-for": "packages", "aria-live": "polite" }));
  // The chosen names ([] = every stream), undefined = leave unchanged.
  function value() {
    if (names === null) {
      if (current) return undefined;
      throw new ApiError(422, { field: "packages", error: "The packages could not be loaded; close this form and try again." });
    }
    if (every.checked) return [];
    const chosen = boxes.filter(b => b.checked).map(b => b.value);
    if (!chosen.length) throw new ApiError(422, { field: "packages", error: "Choose at least one package, or \u201cEvery stream (no package)\u201d to let this user watch everything." });
    return chosen;
  }
  return { el, value };
}
async function userForm(user, reload) {
  let packages = null;
  try { packages = (await api("GET", "/api/v1/packages?limit=1000")).items.map(p => p.name); } catch (e) { if (e.status === 401) return; }
  const v = user || { login: "", kind: "user", comment: "", ips: [], stb: "", expires_at: null, max_sessions: null, max_devices: null, packages: [], enabled: true };
  const kind = h("select", {}, ["user", "observer", "admin"].map(k => h("option", { value: k, selected: v.kind === k }, k)));
  // A new user starts with nothing chosen: every stream has to be asked for.
  const picker = packagePicker(packages, user ? user.packages : null);
  const generate = h("input", { type: "checkbox", id: "f-generate" });
  const enabled = h("input", { type: "checkbox", checked: v.enabled });
  const content = h("div", { class: "grid" },
    field("login", "Login", h("input", { value: v.login, required: true, autocomplete: "off" })),
    field("password", user ? "New password (empty: unchanged)" : "Password (optional)", h("input", { type: "password", autocomplete: "new-password" })),
    field("kind", "Kind", kind),
    field("max_sessions", "Concurrent sessions (empty: unlimited)", limitInput(v.max_sessions)),
    field("max_devices", "Devices at once (empty: unlimited)", limitInput(v.max_devices)),
    field("expires_at", "Expires (empty: never)", h("input", { type: "datetime-local", value: v.expires_at ? toLocalInput(new Date(v.expires_at)) : "" })),
    field("stb", "STB", h("input", { value: v.stb })),
    field("ips", "Bound IPs / networks (comma separated)", h("input", { value: v.ips.join(", ") })),
    picker.el,
    field("comment", "Comment", h("input", { value: v.comment, "data-wide": "1" })),
    h("div", {}, h("label", { for: "f-enabled" }, enabled, " Enabled")),
    user ? null : h("div", {}, h("label", { for: "f-generate" }, generate, " Generate a token")),
    user ? h("div", { class: "wide" }, h("button", { type: "button", "data-testid": "editor-make-link", onclick: () => linkDialog(user.login) }, "Make a signed link…")) : null,
    user ? devicesView(user) : null);
  enabled.id = "f-enabled";
  formDialog(user ? `Edit ${user.login}` : "New user", content, async form => {
    const val = name => form.elements[name].value.trim();
    const body = {
      login: val("login"), kind: kind.value, comment: val("comment"), stb: val("stb"),
      ips: val("ips") ? val("ips").split(",").map(s => s.trim()).filter(Boolean) : [],
      max_sessions: limitValue(form, "max_sessions"),
      max_devices: limitValue(form, "max_devices"),
      expires_at: fromLocalInput(val("expires_at")),
      packages: picker.value(),
      enabled: enabled.checked };
    const password = form.elements.password.value;
    if (password) body.password = password;
    else if (!user) body.password = null;
    if (!user && generate.checked) body.token = true;
    const answer = user ? await api("PATCH", `/api/v1/users/${enc(user.login)}`, body)
      : await api("POST", "/api/v1/users", body);
    toast(user ? `${answer.login} saved` : `${answer.login} created`);
    reload();
    if (answer.token) setTimeout(() => showSecret(answer.login, answer.token), 0);
  });
}
// A user's devices now: their active sessions grouped by `device` (the id
// the streamer or caller sent, else "<client ip> <user agent>"), each with
// its streams and when it was last seen. Loaded once, when shown.
function devicesView(user) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading devices…" }));
  const el = h("section", { class: "wide devices", "data-testid": "user-devices", "aria-label": `Devices of ${user.login}` },
    h("h3", { text: "Devices now" }), body);
  (async () => {
    try {
      const page = await api("GET", "/api/v1/sessions" + query({ user: user.login, limit: 1000 }));
      const byDevice = new Map();
      for (const s of page.items) {
        const key = s.device || "";
        const d = byDevice.get(key) || { device: key, streams: [], ips: [], last: "" };
        if (!d.streams.includes(s.stream)) d.streams.push(s.stream);
        if (!d.ips.includes(s.client_ip)) d.ips.push(s.client_ip);
        if (s.last_seen_at > d.last) d.last = s.last_seen_at;
        byDevice.set(key, d);
      }
      const devices = Array.from(byDevice.values()).sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0));
      const max = user.max_devices === null || user.max_devices === undefined ? "unlimited" : String(user.max_devices);
      put(body,
        h("p", { class: "muted", text: `${devices.length} ${devices.length === 1 ? "device" : "devices"} in ${page.total} active ${page.total === 1 ? "session" : "sessions"}; devices at once: ${max}.` }),
        devices.length ? table([
          { title: "Device", render: d => d.device ? h("span", { class: "device", text: d.device }) : h("span", { class: "muted", text: "—" }) },
          { title: "Streams", render: d => d.streams.join(", ") },
          { title: "From", cls: "hide-narrow", render: d => d.ips.join(", ") },
          { title: "Last seen", render: d => fmtTime(d.last) }], devices, "") : null,
        page.total > page.items.length ? h("p", { class: "muted", text: `Counted from the first ${page.items.length} of ${page.total} sessions.` }) : null);
    } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
  })();
  return el;
}
function devicesDialog(user) {
  const dialog = h("dialog", {}, h("h2", { text: `Devices of ${user.login}` }), devicesView(user),
    h("div", { class: "form-actions" }, h("button", { type: "button", id: "close-devices", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
}
function playbackUrl(token) {
  return `https://streamer.example.com/STREAM/index.m3u8?token=${token}`;
}
// A Copy button for the text of `code` (an element): the clipboard, or,
// where the browser refuses it, the text selected for Ctrl+C.
function copyButton(id, code, what) {
  return h("button", { type: "button", class: "small", id, onclick: async () => {
    try { await navigator.clipboard.writeText(code.textContent); toast(`${what} copied`); }
    catch (e) { const r = document.createRange(); r.selectNodeContents(code); const s = getSelection(); s.removeAllRanges(); s.addRange(r); toast("Press Ctrl+C to copy"); }
  } }, "Copy");
}
function showSecret(login, token) {
  const code = h("code", { id: "new-token", text: token });
  const copy = copyButton("copy-token", code, "Token");
  const dialog = h("dialog", { "data-testid": "secret" },
    h("h2", { text: `New token for ${login}` }),
    h("p", { class: "banner info", text: "This is the only time the token is shown. Copy it now." }),
    h("div", { class: "secret" }, code, copy),
    h("p", { class: "muted", text: "Playback URL example (any streamer hook takes token=):" }),
    h("code", { class: "block", text: playbackUrl(token) }),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, "Done")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
}
function tokenExpiry(t) {
  if (!t.expires_at) return h("span", { class: "muted", text: "never" });
  return new Date(t.expires_at) <= new Date() ? badge("expired " + fmtTime(t.expires_at), "off") : fmtTime(t.expires_at);
}
function tokenLastUsed(t) { return t.last_used_at ? fmtTime(t.last_used_at) : h("span", { class: "muted", text: "not yet" }); }
async function tokensDialog(login) {
  const body = h("div", {});
  const dialog = h("dialog", {}, h("h2", { text: `Tokens of ${login}` }), body,
    h("div", { class: "form-actions" },
      isAdmin() ? h("button", { type: "button", class: "primary", id: "create-token", onclick: async () => {
        try {
          const label = $("#token-label", dialog).value.trim(), given = $("#token-value", dialog).value.trim();
          const body = label ? { label } : {};
          if (given) body.token = given;
          const created = await api("POST", `/api/v1/users/${enc(login)}/tokens`, body);
          dialog.close(); route();
          // A given value is the admin's already: shown again only when generated.
          if (given) toast("Token saved"); else showSecret(login, created.token);
        } catch (e) { toast(e.message); }
      } }, "Create token") : null,
      h("button", { type: "button", id: "close-tokens", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
  async function load() {
    try {
      const page = await api("GET", `/api/v1/users/${enc(login)}/tokens?limit=1000`);
      put(body, 
        table([
          { title: "Label", render: t => t.label || h("span", { class: "muted", text: "—" }) },
          { title: "Created", render: t => fmtTime(t.created_at) },
          { title: "Expires", render: tokenExpiry },
          { title: "Last used", render: tokenLastUsed },
          { title: "", cls: "actions", render: t => isAdmin() ? h("button", { type: "button", class: "small danger", "data-testid": "revoke", onclick: async () => {
            if (!await confirmDialog("Revoke this token? Players using it are refused from now on.", "Revoke")) return;
            try { await api("DELETE", `/api/v1/users/${enc(login)}/tokens/${t.id}`); toast("Token revoked"); load(); } catch (e) { toast(e.message); }
          } }, "Revoke") : "" }], page.items, "No tokens."),
        isAdmin() ? h("div", { class: "toolbar" }, h("div", { class: "grow" },
          h("label", { for: "token-label", text: "Label of a new token (optional)" }), h("input", { id: "token-label" })),
          h("div", { class: "grow" },
          h("label", { for: "token-value", text: "Its value (empty: generated)" }), h("input", { id: "token-value", autocomplete: "off", spellcheck: "false" }))) : null);
    } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
  }
  load();
}

// ---------- sessions: live, and the history (?state=ended) ----------
// Why a session ended (SPEC §1 `end_reason`), for the badge's tooltip and the
// legend; a reason not listed here is shown all the same, as it is.
const END_REASONS = {
  stopped: "the player or the streamer stopped it",
  timeout: "not refreshed in time (the usual end: close callbacks get lost)",
  kicked: "kicked by an admin, or the user was deleted",
  limit: "ended for a newer session of the user beyond max_sessions (kick_oldest)",
  replaced: "ended by the same device starting another channel (zapping)",
};
function endReason(reason) {
  if (!reason) return h("span", { class: "muted", text: "—" });
  const why = Object.prototype.hasOwnProperty.call(END_REASONS, reason) ? END_REASONS[reason] : null;
  return h("span", { class: "badge reason", title: why, "data-reason": reason, text: reason });
}
function reasonLegend() {
  return h("dl", { class: "legend", "data-testid": "end-reasons" },
    Object.entries(END_REASONS).flatMap(([reason, why]) => [h("dt", {}, endReason(reason)), h("dd", { text: why })]));
}
// The device a session records: the id the streamer or caller sent, else
// "<client ip> <user agent>".
function deviceCell(s) {
  return s.device ? h("span", { class: "device", text: s.device }) : h("span", { class: "muted", text: "—" });
}
pages.sessions = function () {
  const asked = new URLSearchParams(location.hash.split("?")[1] || "");
  const ended = asked.get("state") === "ended";
  if (asked.get("view") === "channels") return channelsView();
  // #/sessions?stream=<name>: one channel's viewers (from the channel view).
  const channel = asked.get("stream") || "";
  let offset = 0;
  const endedFrom = h("input", { type: "datetime-local", id: "history-from" });
  const endedTo = h("input", { type: "datetime-local", id: "history-to" });
  // One search box: a piece of the user, the stream or the address (?q=, any case).
  const search = h("input", { type: "search", id: "session-q", placeholder: "User, stream or address", "aria-label": "Search sessions" });
  // The registered streamers (their networks' sessions) and the order.
  const streamer = h("select", { id: "session-streamer", "aria-label": "Streamer" }, h("option", { value: "" }, "any streamer"));
  const sortBy = h("select", { id: "session-sort", "aria-label": "Order" },
    (ended ? [["", "newest ended first"], ["ended", "oldest ended first"], ["-bytes", "most bytes first"], ["user", "by user"], ["stream", "by stream"]]
           : [["", "longest watching first"], ["-started", "newest first"], ["-last_seen", "last seen first"], ["-bytes", "most bytes first"], ["user", "by user"], ["stream", "by stream"]])
      .map(([value, text]) => h("option", { value }, text)));
  api("GET", "/api/v1/streamers?limit=1000").then(page => {
    for (const st of page.items) streamer.append(h("option", { value: st.name }, `${st.name} (${st.kind})`));
  }).catch(() => {});
  const list = h("div", { tabindex: "-1" });
  const stamp = h("span", { class: "muted", id: "sessions-updated" });
  put(main(), h("h1", { text: ended ? "Session history" : "Live sessions" }), sessionViews(ended ? "ended" : "live"),
    channel ? h("p", { "data-testid": "channel-filter" }, `Channel ${channel} only. `, h("a", { href: ended ? "#/sessions?state=ended" : "#/sessions" }, "All channels")) : null,
    h("div", { class: "toolbar" }, h("div", { class: "grow" }, search),
      // The history's window: sessions that ended from … until ….
      ended ? [h("div", {}, h("label", { for: "history-from", text: "Ended from" }), endedFrom),
               h("div", {}, h("label", { for: "history-to", text: "until" }), endedTo)] : null, streamer, sortBy, stamp), list);
  for (const input of [endedFrom, endedTo, streamer, sortBy]) input.addEventListener("change", () => { offset = 0; load(); });
  let debounce;
  for (const event of ["input", "change"]) search.addEventListener(event, () => { clearTimeout(debounce); debounce = setTimeout(() => { offset = 0; load(); }, 250); });
  // What an empty list says: nobody at all, or nobody the search finds.
  const none = (nobody) => search.value.trim() ? `No session matches “${search.value.trim()}”.` : nobody;
  const who = { title: "User", render: s => s.user ? userLink(s.user) : h("span", { class: "muted", text: "anonymous" }) };
  async function loadLive() {
    const page = await api("GET", "/api/v1/sessions" + query({ q: search.value.trim(), stream: channel, streamer: streamer.value, sort: sortBy.value, limit: PAGE, offset }));
    // Paged by the API, the total counted there: a page past the end after
    // viewers left goes back to the last one.
    if (!page.items.length && offset > 0 && page.total > 0) { offset = Math.floor((page.total - 1) / PAGE) * PAGE; return loadLive(); }
    const now = Date.now();
    refresh(list, table([
      who,
      { title: "Stream", render: s => s.stream },
      { title: "Device", render: deviceCell },
      { title: "From", render: fromCell },
      { title: "Streamer", cls: "hide-narrow", render: s => `${s.streamer || "—"} (${s.dialect})` },
      { title: "Protocol", cls: "hide-narrow", render: s => s.protocol || "—" },
      { title: "For", cls: "num", render: s => h("span", { title: "since " + fmtTime(s.started_at), text: fmtDuration((now - new Date(s.started_at)) / 1000) }) },
      { title: "Last seen", cls: "num hide-narrow", render: s => h("span", { title: fmtTime(s.last_seen_at), text: fmtDuration(Math.max(0, (now - new Date(s.last_seen_at)) / 1000)) + " ago" }) },
      { title: "Received", cls: "num hide-narrow", render: bytesCell },
      { title: "", cls: "actions", render: s => isAdmin() ? [h("button", { type: "button", class: "small danger", "data-testid": "kick", "data-key": "kick " + s.id, onclick: async () => {
        if (!await confirmDialog(`Kick ${s.user || "this viewer"} off ${s.stream}?`, "Kick")) return;
        try { await api("DELETE", `/api/v1/sessions/${s.id}`); toast("Session kicked"); load(); } catch (e) { toast(e.message); }
      } }, "Kick"),
      // An address that restreams: a deny rule for it, then its sessions kicked.
      h("button", { type: "button", class: "small danger", "data-testid": "block", "data-key": "block " + s.id, onclick: async () => {
        if (!await confirmDialog(`Block ${s.client_ip}? A deny rule for this address refuses every request from it, and its sessions are kicked.`, "Block")) return;
        try {
          await api("POST", "/api/v1/ip-rules", { network: s.client_ip, action: "deny", comment: `blocked from live sessions: ${s.user || "anonymous"} on ${s.stream}` });
          const same = await api("GET", "/api/v1/sessions" + query({ q: s.client_ip, limit: 500 }));
          for (const other of same.items.filter(x => x.client_ip === s.client_ip)) await api("DELETE", `/api/v1/sessions/${other.id}`).catch(() => {});
          toast(`${s.client_ip} blocked`); load();
        } catch (e) { toast(e.message); }
      } }, "Block")] : "" }], page.items, none("Nobody is watching right now.")),
      h("p", { class: "muted", "data-testid": "sessions-total", text: page.total === 1 ? "1 session" : `${page.total} sessions` }),
      page.total > PAGE ? pager(page.total, offset, next => { offset = Math.max(0, next); load(); }) : null);
  }
  async function loadEnded() {
    const page = await api("GET", "/api/v1/sessions" + query({ state: "ended", q: search.value.trim(), stream: channel, streamer: streamer.value, sort: sortBy.value,
      from: fromLocalInput(endedFrom.value), to: fromLocalInput(endedTo.value), limit: PAGE, offset }));
    put(list, table([
      who,
      { title: "Stream", render: s => s.stream },
      { title: "Device", render: deviceCell },
      { title: "From", cls: "hide-narrow", render: fromCell },
      { title: "Streamer", cls: "hide-narrow", render: s => `${s.streamer || "—"} (${s.dialect})` },
      { title: "Started", cls: "hide-narrow", render: s => fmtTime(s.started_at) },
      { title: "Ended", render: s => fmtTime(s.ended_at) },
      { title: "Watched", cls: "num", render: s => s.ended_at ? fmtDuration((new Date(s.ended_at) - new Date(s.started_at)) / 1000) : "—" },
      { title: "Received", cls: "num hide-narrow", render: bytesCell },
      { title: "End reason", render: s => endReason(s.end_reason) }], page.items, none("No ended sessions.")),
      pager(page.total, offset, next => { offset = Math.max(0, next); load(); }),
      reasonLegend());
  }
  async function load() {
    try {
      await (ended ? loadEnded() : loadLive());
      stamp.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
  // The live list follows the viewers; the history is paged, so it stays put.
  if (!ended) state.timer = setInterval(() => { if (!document.querySelector("dialog[open]")) load(); }, 5000);
};

// ---------- statistics ----------
pages.stats = function () {
  const now = new Date(), dayAgo = new Date(now - 86400000);
  const from = h("input", { type: "datetime-local", id: "stats-from", value: toLocalInput(dayAgo) });
  const to = h("input", { type: "datetime-local", id: "stats-to", value: toLocalInput(now) });
  // A preset is a span ending now (asked as "no to": the server's now, to
  // the second); typing a time in From or To makes the range fixed.
  let span = 86400000;
  const PRESETS = [["1 h", 3600000], ["24 h", 86400000], ["7 d", 7 * 86400000], ["30 d", 30 * 86400000]];
  const presetButtons = PRESETS.map(([label, ms]) => h("button", { type: "button", class: "small", "data-preset": label,
    "aria-pressed": ms === span ? "true" : "false", onclick: () => choose(ms) }, label));
  function choose(ms) {
    span = ms;
    const end = new Date();
    from.value = toLocalInput(new Date(end - ms)); to.value = toLocalInput(end);
    for (const b of presetButtons) b.setAttribute("aria-pressed", String(PRESETS.find(p => p[0] === b.dataset.preset)[1] === ms));
    load();
  }
  for (const input of [from, to]) input.addEventListener("change", () => {
    span = null;
    for (const b of presetButtons) b.setAttribute("aria-pressed", "false");
  });
  const streamChoices = h("datalist", { id: "stats-streams" });
  const stream = h("input", { id: "stats-stream", placeholder: "every stream", list: "stats-streams" });
  const nowCards = h("div", { class: "cards" });
  const chart = h("div", { class: "panel chart", id: "chart" });
  const top = h("div", {});
  // Viewers by country (/api/v1/stats/countries): hidden where the server has no such endpoint (404).
  const countries = h("div", {});
  const countrySection = h("section", { id: "stats-countries", "data-testid": "stats-countries", hidden: true },
    h("h2", { text: "Viewers by country" }), countries);
  // Denials by reason (/api/v1/stats/denials): session_limit is how account sharing shows.
  const denials = h("div", {});
  const denialSection = h("section", { id: "stats-denials", "data-testid": "stats-denials" },
    h("h2", { text: "Denials by reason" }), denials);
  put(main(), h("h1", { text: "Statistics" }),
    h("h2", { text: "Viewers now" }), nowCards,
    h("div", { class: "views", role: "group", "aria-label": "Range ending now" }, presetButtons),
    h("form", { class: "toolbar", id: "stats-range" },
      h("div", {}, h("label", { for: "stats-from", text: "From" }), from),
      h("div", {}, h("label", { for: "stats-to", text: "To" }), to),
      h("div", {}, h("label", { for: "stats-stream", text: "Stream (chart)" }), stream, streamChoices),
      h("button", { type: "submit", class: "primary" }, "Show")),
    h("h2", { text: "Concurrent viewers" }), chart,
    h("h2", { text: "Top streams" }), top, countrySection, denialSection);
  $("#stats-range").addEventListener("submit", e => { e.preventDefault(); load(); });
  // Viewers now, as the server counts them (every active session, not a
  // page of them), refreshed every 10 s.
  async function loadNow() {
    try {
      const [live, streams] = await Promise.all([
        api("GET", "/api/v1/sessions?limit=1"),
        api("GET", "/api/v1/stats/streams" + query({ from: new Date(Date.now() - 60000).toISOString() }))]);
      const ranked = streams.items.filter(x => x.viewers > 0).sort((a, b) => b.viewers - a.viewers);
      put(nowCards,
        h("div", { class: "card" }, h("div", { class: "value", text: String(live.total) }), h("div", { class: "label", text: "all streams" })),
        ranked.slice(0, 11).map(x => h("div", { class: "card", "data-stream": x.stream }, h("div", { class: "value", text: String(x.viewers) }), h("div", { class: "label", text: x.stream }))));
    } catch (e) { if (e.status !== 401) put(nowCards, errorState(e)); }
  }
  // Viewers now every 10 s; a range ending now (a preset) again every 60 s.
  let ticks = 0;
  state.timer = setInterval(() => { ticks += 1; if (span && ticks % 6 === 0 && !document.querySelector("dialog[open]")) load(); else loadNow(); }, 10000);
  async function load() {
    const range = span ? { from: new Date(Date.now() - span).toISOString() } : { from: fromLocalInput(from.value), to: fromLocalInput(to.value) };
    // Whether anyone watched (the chart's stream, or any) in the range.
    let viewed = true;
    try {
      await loadNow();
      const streams = await api("GET", "/api/v1/stats/streams" + query(range));
      const ranked = streams.items.slice().sort((a, b) => b.watch_seconds - a.watch_seconds).filter(s => s.plays || s.watch_seconds);
      const charted = stream.value.trim();
      // The chart's stream picker offers the streams of the range.
      put(streamChoices, streams.items.map(x => h("option", { value: x.stream })));
      viewed = ranked.some(s => !charted || s.stream === charted);
      const hours = ranked.reduce((n, s) => n + s.watch_seconds, 0);
      put(top, 
        h("p", { class: "muted", text: `${fmtHours(hours)} watch hours in this range.` }),
        table([
          { title: "Stream", render: s => s.stream },
          { title: "Watch hours", cls: "num", render: s => fmtHours(s.watch_seconds) },
          { title: "Plays", cls: "num", render: s => String(s.plays) },
          { title: "Unique users", cls: "num hide-narrow", render: s => String(s.unique_users) },
          { title: "Peak", cls: "num hide-narrow", render: s => String(s.peak_viewers) },
          { title: "Now", cls: "num", render: s => String(s.viewers) }], ranked.slice(0, 50), "No viewing in this range."));
    } catch (e) {
      if (e.status === 401) return;
      const msg = e.status === 404 ? "Per-stream statistics are not available on this server." : "Could not load: " + e.message;
      put(top, h("div", { class: "banner error", text: msg }));
      put(nowCards, );
    }
    await loadCountries(range);
    await loadDenials(range);
    try {
      const tl = await api("GET", "/api/v1/stats/timeline" + query({ ...range, stream: stream.value.trim() }));
      drawChart(chart, tl.points, viewed);
    } catch (e) { if (e.status !== 401) put(chart, errorState(e)); }
  }
  async function loadDenials(range) {
    try {
      const answer = await api("GET", "/api/v1/stats/denials" + query(range));
      put(denials, table([
        { title: "Reason", render: d => h("code", { text: d.reason }) },
        { title: "What it means", cls: "hide-narrow", render: d => DENIAL_HINTS[d.reason] || "" },
        { title: "Denials", cls: "num", render: d => String(d.count) }], answer.items, "No denials in this range.",
        d => ({ "data-reason": d.reason })));
    } catch (e) { if (e.status !== 401) put(denials, errorState(e)); }
  }
  async function loadCountries(range) {
    try {
      const answer = await api("GET", "/api/v1/stats/countries" + query(range));
      const rows = (Array.isArray(answer) ? answer : (answer && answer.items) || [])
        .filter(c => c.plays || c.watch_seconds || c.viewers)
        .sort((a, b) => b.watch_seconds - a.watch_seconds || b.plays - a.plays);
      countrySection.hidden = false;
      put(countries, table([
        { title: "Country", render: c => countryCell(c.country) },
        { title: "Watch hours", cls: "num", render: c => fmtHours(c.watch_seconds) },
        { title: "Plays", cls: "num", render: c => String(c.plays) },
        { title: "Unique users", cls: "num hide-narrow", render: c => String(c.unique_users) },
        { title: "Peak", cls: "num hide-narrow", render: c => String(c.peak_viewers) },
        { title: "Now", cls: "num", render: c => String(c.viewers) }], rows, "No viewing in this range.",
        c => ({ "data-country": c.country })));
    } catch (e) {
      if (e.status === 401) return;
      // Not on this server (yet): no section rather than an error.
      countrySection.hidden = e.status === 404;
      put(countries, e.status === 404 ? null : errorState(e));
    }
  }
  load();
};
// A session's client address, with the country and AS GeoIP gave it at
// the start where a database is configured (null otherwise).
// Live sessions grouped by channel: each stream's viewers now, as the
// server counts them, linked to that channel's sessions.
// The three views of the sessions page, `current` marked.
function sessionViews(current) {
  const view = (name, href, text) => h("a", { href, class: current === name ? "active" : "", "aria-current": current === name ? "page" : null, "data-testid": "view-" + name }, text);
  return h("div", { class: "views", role: "group", "aria-label": "Live sessions or history" },
    view("live", "#/sessions", "Live"), view("channels", "#/sessions?view=channels", "By channel"),
    view("ended", "#/sessions?state=ended", "History"));
}
function channelsView() {
  const list = h("div", {});
  put(main(), h("h1", { text: "Live sessions" }), sessionViews("channels"), list);
  async function load() {
    try {
      const streams = await api("GET", "/api/v1/stats/streams" + query({ from: new Date(Date.now() - 60000).toISOString() }));
      const watched = streams.items.filter(x => x.viewers > 0).sort((a, b) => b.viewers - a.viewers || a.stream.localeCompare(b.stream));
      const all = watched.reduce((sum, x) => sum + x.viewers, 0);
      refresh(list, table([
        { title: "Channel", render: x => h("a", { href: `#/sessions?stream=${encodeURIComponent(x.stream)}`, text: x.stream }) },
        { title: "Viewers now", cls: "num", render: x => String(x.viewers) },
        { title: "Share", cls: "num hide-narrow", render: x => `${Math.round(x.viewers * 100 / all)} %` },
        { title: "Users (last minute)", cls: "num hide-narrow", render: x => String(x.unique_users) }],
        watched, "Nobody is watching right now.", x => ({ "data-channel": x.stream })),
        h("p", { class: "muted", "data-testid": "channels-total", text: `${all} watching ${watched.length} ${watched.length === 1 ? "channel" : "channels"}` }));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
  state.timer = setInterval(() => { if (!document.querySelector("dialog[open]")) load(); }, 5000);
}
// Bytes the streamer reported, and the average bitrate over the session
// so far (where the streamer reports bytes at all: Flussonic, nginx-rtmp, SRS).
function fmtBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}
function bytesCell(s) {
  if (s.bytes === null || s.bytes === undefined) return h("span", { class: "muted", title: "this streamer reports no bytes", text: "—" });
  const seconds = (new Date(s.ended_at || s.last_seen_at) - new Date(s.started_at)) / 1000;
  const rate = seconds > 0 ? ` · ${(s.bytes * 8 / seconds / 1000).toFixed(0)} kbit/s` : "";
  return h("span", { "data-testid": "bytes", title: `${s.bytes} bytes`, text: fmtBytes(s.bytes) + rate });
}
function fromCell(s) {
  const where = [s.country, s.asn ? "AS" + s.asn : null].filter(Boolean).join(" · ");
  return [h("span", { text: s.client_ip }),
    where ? h("span", { class: "muted", "data-testid": "session-geo", text: " " + where }) : null];
}
// What the denial reasons an operator acts on mean (SPEC §2 has them all).
const DENIAL_HINTS = {
  session_limit: "the account is watched on more players than its limit: account sharing shows here",
  device_limit: "more devices than the account's max_devices",
  stream_full: "a package's or the service's viewer cap was reached",
  unknown_token: "a token nobody has (guessing, or a revoked token)",
  bad_credentials: "a wrong login or password",
  no_credentials: "a request without token, password or link",
  user_expired: "the subscription has ended",
  user_disabled: "the account is disabled",
  stream_not_allowed: "the user's packages do not include the stream",
  ip_denied: "an IP deny rule",
  ip_mismatch: "the account is bound to other addresses",
  rule_denied: "an access rule",
  country_mismatch: "the user may not watch from that country",
  session_kicked: "a kicked viewer coming back",
  rate_limited: "too many failed attempts from the client",
  db_unavailable: "PostgreSQL did not answer",
  token_expired: "the token's own end has passed",
  link_invalid: "a signed link that does not verify",
  link_expired: "a signed link past its time",
  link_used: "a once-only link used again",
  publish_not_allowed: "a publish request (playgate authorizes playback)",
  upstream_unavailable: "the Ministra portal did not answer",
  bad_request: "a hook request that could not be read",
};
// An account's state: an expired one may not play, whatever `enabled` says.
function userState(u) {
  if (!u.enabled) return badge("disabled", "off");
  if (u.expires_at && new Date(u.expires_at) <= new Date()) return h("span", { class: "badge off", "data-state": "expired", title: "expired " + fmtTime(u.expires_at), text: "expired" });
  return badge("enabled", "on");
}
// A country code with its name in the browser's language; XX: no GeoIP entry.
function countryCell(code) {
  let name = "";
  if (code === "XX") name = "unknown";
  else {
    try { name = new Intl.DisplayNames([navigator.language || "en"], { type: "region" }).of(code) || ""; } catch (e) { name = ""; }
  }
  return [h("strong", { text: code }), name && name !== code ? h("span", { class: "muted", text: " " + name }) : null];
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}
function drawChart(container, points, viewed) {
  // Nobody in the whole range: said in words, not drawn as a flat line.
  if (!points.length || (!viewed && !points.some(p => p.viewers > 0))) { put(container, h("div", { class: "empty", "data-testid": "chart-empty", text: "Nobody watched in this range." })); return; }
  const W = 800, H = 260, L = 44, R = 12, T = 12, B = 28;
  const t0 = new Date(points[0].t).getTime(), t1 = new Date(points[points.length - 1].t).getTime() || t0 + 1;
  const maxV = Math.max(1, ...points.map(p => p.viewers));
  const niceMax = maxV <= 5 ? maxV : Math.ceil(maxV / 5) * 5;
  const x = t => L + (W - L - R) * ((t - t0) / Math.max(1, t1 - t0));
  const y = v => T + (H - T - B) * (1 - v / niceMax);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Concurrent viewers over time" });
  const ticks = Math.min(5, niceMax);
  for (let i = 0; i <= ticks; i++) {
    const v = Math.round(niceMax * i / ticks);
    svg.append(s("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }), s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const spanDays = (t1 - t0) > 2 * 86400000;
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4, d = new Date(t);
    svg.append(s("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      spanDays ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  // Step line: the count holds until the next point.
  let path = "";
  points.forEach((p, i) => {
    const px = x(new Date(p.t).getTime()), py = y(p.viewers);
    path += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
  });
  const area = `${path}V${y(0)}H${x(t0)}Z`;
  svg.append(s("path", { class: "area", d: area }), s("path", { class: "line", d: path }),
    s("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  // Hover: each point's band says its time and count (an SVG <title>).
  points.forEach((p, i) => {
    const from = x(new Date(p.t).getTime()), to = i + 1 < points.length ? x(new Date(points[i + 1].t).getTime()) : W - R;
    const band = s("rect", { class: "hover", x: from, y: T, width: Math.max(1, to - from), height: H - T - B, "data-viewers": p.viewers });
    band.append(s("title", {}, `${fmtTime(p.t)}: ${p.viewers} ${p.viewers === 1 ? "viewer" : "viewers"}`));
    svg.append(band);
  });
  const peak = points.reduce((a, b) => (b.viewers > a.viewers ? b : a));
  put(container, svg, h("p", { class: "muted", text: `Peak ${peak.viewers} at ${fmtTime(peak.t)}; ${points.length} points.` }));
}

// ---------- packages ----------
pages.packages = function () {
  const list = h("div", {});
  const notice = h("div", { id: "packages-notice" });
  put(main(), h("h1", { text: "Packages" }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-package", onclick: () => packageForm(null, load) }, "New package")) : null, notice, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/packages?limit=1000");
      put(list, table([
        { title: "Name", render: p => h("strong", { text: p.name }) },
        { title: "Streams", render: p => p.streams.join(", ") },
        { title: "Viewers at most", cls: "num", render: p => fmtLimit(p.max_viewers, "no cap") },
        { title: "Users", cls: "num", render: p => String(p.users) },
        { title: "Comment", cls: "hide-narrow", render: p => p.comment },
        { title: "", cls: "actions", render: p => isAdmin() ? [
          h("button", { type: "button", class: "small", onclick: () => packageForm(p, load) }, "Edit"),
          h("button", { type: "button", class: "small danger", onclick: async () => {
            // The server refuses to delete the only package of a user (none = every stream) and says whose.
            if (!await confirmDialog(p.users
              ? `Delete package ${p.name}? Its ${p.users === 1 ? "user keeps" : p.users + " users keep"} their other packages; where it is someone's only package, the deletion is refused until they are given another.`
              : `Delete package ${p.name}? No user has it.`, "Delete")) return;
            try { await api("DELETE", `/api/v1/packages/${enc(p.name)}`); put(notice); toast(`${p.name} deleted`); load(); }
            catch (e) { if (e.status === 409) showRefusal(notice, e); else if (e.status !== 401) toast(e.message); }
          } }, "Delete")] : "" }], page.items, "No packages yet: every user may watch every stream."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function packageForm(p, reload) {
  const v = p || { name: "", streams: [], comment: "", max_viewers: null };
  const content = h("div", { class: "grid" },
    field("name", "Name", h("input", { value: v.name, required: true })),
    field("streams", "Streams (one per line; * matches any characters)", h("textarea", { rows: "5", "data-wide": "1" }, v.streams.join("\n"))),
    field("max_viewers", "Viewers at most (empty: no cap)", limitInput(v.max_viewers),
      "Active sessions on these streams, all viewers together."),
    field("comment", "Comment", h("input", { value: v.comment })));
  formDialog(p ? `Edit ${p.name}` : "New package", content, async form => {
    const body = { name: form.elements.name.value.trim(), comment: form.elements.comment.value.trim(),
      streams: form.elements.streams.value.split(/[\n,]/).map(x => x.trim()).filter(Boolean),
      max_viewers: limitValue(form, "max_viewers") };
    if (p) await api("PATCH", `/api/v1/packages/${enc(p.name)}`, body); else await api("POST", "/api/v1/packages", body);
    toast(`${body.name} saved`); reload();
  });
}

// ---------- IP rules ----------
pages["ip-rules"] = function () {
  const list = h("div", {});
  put(main(), h("h1", { text: "IP rules" }),
    h("p", { class: "muted", text: "deny refuses any request from the network; allow admits viewers without credentials." }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-rule", onclick: () => ruleForm(null, load) }, "New rule")) : null, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/ip-rules?limit=1000");
      put(list, table([
        { title: "Network", render: r => h("strong", { text: r.network }) },
        { title: "Action", render: r => badge(r.action, r.action === "allow" ? "on" : "off") },
        { title: "Comment", render: r => r.comment },
        { title: "Until", render: ruleUntil },
        { title: "Created", cls: "hide-narrow", render: r => fmtTime(r.created_at) },
        { title: "", cls: "actions", render: r => isAdmin() ? [
          h("button", { type: "button", class: "small", "data-testid": "rule-edit", onclick: () => ruleForm(r, load) }, "Edit"),
          h("button", { type: "button", class: "small danger", onclick: async () => {
            if (!await confirmDialog(`Delete the ${r.action} rule for ${r.network}?`, "Delete")) return;
            try { await api("DELETE", `/api/v1/ip-rules/${r.id}`); toast("Rule deleted"); load(); } catch (e) { toast(e.message); }
          } }, "Delete")] : "" }], page.items, "No IP rules."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
// A rule's end: "for good", the time it stops applying, or that it has.
function ruleUntil(r) {
  if (!r.expires_at) return h("span", { class: "muted", text: "for good" });
  const ended = new Date(r.expires_at) <= new Date();
  return ended ? badge("ended " + fmtTime(r.expires_at), "off") : h("span", { text: fmtTime(r.expires_at) });
}
// A new rule takes every field; an existing one changes in place (PATCH:
// comment and end), its network and action being what the rule is.
function ruleForm(r, reload) {
  const v = r || { network: "", action: "deny", comment: "", expires_at: null };
  const action = h("select", { disabled: !!r }, ["deny", "allow"].map(a => h("option", { value: a, selected: v.action === a }, a)));
  const network = h("input", { value: v.network, required: true, disabled: !!r });
  const until = h("input", { type: "datetime-local", value: v.expires_at ? toLocalInput(new Date(v.expires_at)) : "" });
  const content = h("div", { class: "grid" },
    field("network", "Network (IP or CIDR)", network, r ? "A rule for another network or action is another rule: create it." : null),
    field("action", "Action", action),
    field("comment", "Comment", h("input", { value: v.comment })),
    field("expires_at", "Until (empty: for good)", until, "A temporary ban stops applying at this time."));
  formDialog(r ? `Edit rule ${r.network}` : "New IP rule", content, async form => {
    const comment = form.elements.comment.value.trim(), expires_at = fromLocalInput(until.value);
    if (r) await api("PATCH", `/api/v1/ip-rules/${r.id}`, { comment, expires_at });
    else await api("POST", "/api/v1/ip-rules", { network: network.value.trim(), action: action.value, comment, expires_at });
    toast("Rule saved"); reload();
  });
}

// ---------- streamers ----------
// Streamers with a control API (SPEC §12): told to drop a viewer when
// playgate ends the session itself. The password is write-only.
const STREAMER_KINDS = ["nginx-rtmp", "srs", "mediamtx", "astra", "flussonic"];
const CALL_STATUS = { done: "on", pending: "", failed: "off" };
pages.streamers = function () {
  const list = h("div", {});
  put(main(), h("h1", { text: "Streamers" }),
    h("p", { class: "muted", text: "A kicked, replaced or barred viewer is dropped at once through its streamer's control API, not at the streamer's next question (Astra never asks again)." }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-streamer", onclick: () => streamerForm(null, load) }, "New streamer")) : null, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/streamers?limit=1000");
      put(list, table([
        { title: "Name", render: st => h("strong", { text: st.name }) },
        { title: "Kind", render: st => st.kind },
        { title: "Control API", cls: "hide-narrow", render: st => h("code", { text: st.control_url }) },
        { title: "Calls come from", render: st => st.addresses.join(", ") },
        { title: "Credentials", cls: "hide-narrow", render: st => st.username ? `${st.username}${st.password_set ? " + password" : ""}` : h("span", { class: "muted", text: "none" }) },
        { title: "Comment", cls: "hide-narrow", render: st => st.comment },
        { title: "", cls: "actions", render: st => [
          h("button", { type: "button", class: "small", "data-testid": "streamer-calls", onclick: () => callsDialog(st) }, "Calls"),
          isAdmin() ? h("button", { type: "button", class: "small", "data-testid": "streamer-test", onclick: async () => {
            try { const r = await api("POST", `/api/v1/streamers/${enc(st.name)}/test`); toast(`${st.name}: ${r.ok ? "answers" : "does not answer"} (${r.detail})`); }
            catch (e) { if (e.status !== 401) toast(e.message); }
          } }, "Test") : null,
          isAdmin() ? h("button", { type: "button", class: "small", "data-testid": "streamer-edit", onclick: () => streamerForm(st, load) }, "Edit") : null,
          isAdmin() ? h("button", { type: "button", class: "small danger", onclick: async () => {
            if (!await confirmDialog(`Delete streamer ${st.name}? Its viewers are then only cut at their next refresh.`, "Delete")) return;
            try { await api("DELETE", `/api/v1/streamers/${enc(st.name)}`); toast(`${st.name} deleted`); load(); } catch (e) { toast(e.message); }
          } }, "Delete") : null] }], page.items,
        "No streamers registered: kicks take effect at each streamer's next question."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function streamerForm(st, reload) {
  const v = st || { name: "", kind: "nginx-rtmp", control_url: "", username: "", password_set: false, addresses: [], comment: "" };
  const kind = h("select", {}, STREAMER_KINDS.map(k => h("option", { value: k, selected: v.kind === k }, k)));
  const password = h("input", { type: "password", autocomplete: "new-password", placeholder: v.password_set ? "unchanged" : "" });
  const content = h("div", { class: "grid" },
    field("name", "Name", h("input", { value: v.name, required: true, disabled: !!st })),
    field("kind", "Kind (its hook)", kind),
    field("control_url", "Control API URL", h("input", { value: v.control_url, required: true, placeholder: "http://10.0.0.5:8080/control" }),
      "nginx-rtmp: its rtmp_control location; SRS :1985; MediaMTX :9997; Astra and Flussonic: their HTTP port."),
    field("addresses", "Hook calls come from (addresses or networks, one per line)", h("textarea", { rows: "3", "data-wide": "1" }, v.addresses.join("\n"))),
    field("username", "API user (HTTP Basic; empty: none)", h("input", { value: v.username, autocomplete: "off" })),
    field("password", st ? "API password (empty: unchanged)" : "API password", password),
    field("comment", "Comment", h("input", { value: v.comment })));
  formDialog(st ? `Edit ${st.name}` : "New streamer", content, async form => {
    const body = { kind: kind.value, control_url: form.elements.control_url.value.trim(),
      addresses: form.elements.addresses.value.split(/[\n,]/).map(x => x.trim()).filter(Boolean),
      username: form.elements.username.value.trim(), comment: form.elements.comment.value.trim() };
    if (password.value) body.password = password.value;
    if (st) await api("PATCH", `/api/v1/streamers/${enc(st.name)}`, body);
    else await api("POST", "/api/v1/streamers", { name: form.elements.name.value.trim(), ...body });
    toast("Streamer saved"); reload();
  });
}
async function callsDialog(st) {
  const body = h("div", {});
  const dialog = h("dialog", { class: "wide" }, h("h2", { text: `Drop calls to ${st.name}` }), body,
    h("div", { class: "form-actions" }, h("button", { type: "button", id: "close-calls", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
  try {
    const page = await api("GET", `/api/v1/streamers/${enc(st.name)}/calls?limit=50`);
    put(body, table([
      { title: "When", render: c => fmtTime(c.created_at) },
      { title: "Viewer", render: c => `${c.stream} (${c.target})` },
      { title: "Why", render: c => endReason(c.end_reason) },
      { title: "Status", render: c => badge(c.status, CALL_STATUS[c.status]) },
      { title: "Attempts", cls: "num", render: c => String(c.attempts) },
      { title: "Answer", render: c => c.result || "" }], page.items, "No drop calls yet."),
      page.total > page.items.length ? h("p", { class: "muted", text: `The latest ${page.items.length} of ${page.total}.` }) : null);
  } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
}

// ---------- access rules ----------
// The conditions of SPEC §10, what is watched first (the list reads "stream
// in sport/* and country not in RU, KZ"): what the list calls each one, and
// how the form takes its values (comma- or line-separated; user
// agents one per line, since they contain commas; `none`: the value "",
// "nothing sent", as a checkbox of its own).
const RULE_CONDITIONS = [
  { name: "streams", noun: "stream", label: "Streams", hint: "Names or globs with *: sport/*." },
  { name: "networks", noun: "network", label: "Networks", hint: "Addresses or CIDR networks: 203.0.113.0/24, 2001:db8::/32." },
  { name: "countries", noun: "country", label: "Countries", hint: "ISO 3166-1 alpha-2 codes: RU, KZ; XX = unknown (no GeoIP entry)." },
  { name: "asns", noun: "ASN", label: "AS numbers", hint: "13335 or AS13335; 0 = unknown." },
  { name: "user_agents", noun: "user agent", label: "User agents", lines: true, none: "No user agent sent",
    hint: "One per line; * matches anything, case does not matter: *bot*, VLC/*." },
  { name: "referers", noun: "referer", label: "Referer hosts", none: "No referer sent", startsOnly: true,
    hint: "Host names or *.host globs, no scheme or path: example.com, *.example.com. Checked on starts only." },
  { name: "protocols", noun: "protocol", label: "Protocols", hint: "As the hooks report them: hls, dash, rtmp, rtsp, webrtc, srt, llhls, http." },
  { name: "dialects", noun: "hook", label: "Dialects (hooks)", hint: "decide, astra, flussonic, nginx-rtmp, srs, mediamtx, ovenmediaengine, forward-auth." },
];
const RULE_VALUES_SHOWN = 8;
// One condition of a rule in words: "country not in RU, KZ"; the value ""
// of user agents and referers is "(none sent)", alone "no referer sent".
function conditionText(rule, c) {
  const values = rule[c.name] || [];
  const negated = (rule.negate || []).includes(c.name);
  if (values.length === 1 && values[0] === "") return negated ? `a ${c.noun} sent` : `no ${c.noun} sent`;
  const shown = values.slice(0, RULE_VALUES_SHOWN).map(v => (v === "" ? "(none sent)" : String(v)));
  const more = values.length > RULE_VALUES_SHOWN ? ` and ${values.length - RULE_VALUES_SHOWN} more` : "";
  return `${c.noun} ${negated ? "not in" : "in"} ${shown.join(", ")}${more}`;
}
function ruleConditions(rule) { return RULE_CONDITIONS.filter(c => (rule[c.name] || []).length); }
function ruleSummaryText(rule) { return ruleConditions(rule).map(c => conditionText(rule, c)).join(" and "); }
function ruleSummary(rule) {
  const conditions = ruleConditions(rule);
  if (!conditions.length) return h("span", { class: "muted", text: "no condition" });
  return h("ul", { class: "conditions" }, conditions.map((c, i) => h("li", { "data-condition": c.name },
    i ? "and " : "", conditionText(rule, c),
    c.startsOnly ? h("span", { class: "muted", title: "Refreshes and segments carry no referer: this rule is checked on starts only." }, " (starts only)") : null)));
}
function ruleLabel(rule) { return `rule ${rule.position} (${rule.action})`; }

pages["access-rules"] = function () {
  let offset = 0, total = 0;
  const list = h("div", { tabindex: "-1" });
  const notice = h("div", { id: "access-rules-notice" });
  put(main(), h("h1", { text: "Access rules" }),
    h("p", { class: "muted", text: "Checked in order after the IP rules: the first rule whose conditions all hold decides. deny refuses the request (rule_denied); allow lets it past every later rule (the user's own checks still apply). Disabled rules are skipped." }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-access-rule", onclick: () => accessRuleForm(null, total, shown) }, "New rule")) : null,
    notice, list);
  // After a save or a move: the page that holds the rule.
  function shown(rule) {
    if (rule && rule.position) offset = Math.floor((rule.position - 1) / PAGE) * PAGE;
    load();
  }
  const refused = e => { if (e.status !== 401) showRefusal(notice, e); };
  async function move(rule, to) {
    try { const moved = await api("PATCH", `/api/v1/access-rules/${rule.id}`, { position: to }); put(notice); shown(moved); }
    catch (e) { refused(e); }
  }
  function actions(r) {
    if (!isAdmin()) return "";
    return [
      h("button", { type: "button", class: "small move", "data-testid": "rule-up", "data-key": "up " + r.id, disabled: r.position <= 1,
        title: "Move up: checked earlier", "aria-label": `Move ${ruleLabel(r)} up`, onclick: () => move(r, r.position - 1) }, "\u2191"),
      h("button", { type: "button", class: "small move", "data-testid": "rule-down", "data-key": "down " + r.id, disabled: r.position >= total,
        title: "Move down: checked later", "aria-label": `Move ${ruleLabel(r)} down`, onclick: () => move(r, r.position + 1) }, "\u2193"),
      h("button", { type: "button", class: "small", "data-testid": "rule-edit", "data-key": "edit " + r.id, onclick: () => accessRuleForm(r, total, shown) }, "Edit"),
      h("button", { type: "button", class: "small", "data-testid": "rule-toggle", "data-key": "toggle " + r.id, onclick: async () => {
        // Disabling lets through what the rule stopped (or stops what it let past): asked first.
        if (r.enabled && !await confirmDialog(`Disable ${ruleLabel(r)}: ${ruleSummaryText(r)}? It stops applying on every server within a second, until it is enabled again.`, "Disable")) return;
        try { await api("PATCH", `/api/v1/access-rules/${r.id}`, { enabled: !r.enabled }); put(notice); toast(`Rule ${r.position} ${r.enabled ? "disabled" : "enabled"}`); load(); }
        catch (e) { refused(e); }
      } }, r.enabled ? "Disable" : "Enable"),
      h("button", { type: "button", class: "small danger", "data-testid": "rule-delete", "data-key": "delete " + r.id, onclick: async () => {
        if (!await confirmDialog(`Delete ${ruleLabel(r)}: ${ruleSummaryText(r)}? It stops applying on every server within a second; the rules after it move up one place.`, "Delete")) return;
        try { await api("DELETE", `/api/v1/access-rules/${r.id}`); put(notice); toast(`Rule ${r.position} deleted`); load(); }
        catch (e) { refused(e); }
      } }, "Delete")];
  }
  async function load() {
    try {
      const page = await api("GET", "/api/v1/access-rules" + query({ limit: PAGE, offset }));
      // The last page emptied by a delete: the one before it.
      if (!page.items.length && offset > 0 && page.total > 0) { offset = Math.floor((page.total - 1) / PAGE) * PAGE; load(); return; }
      total = page.total;
      const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
      refresh(list, table([
        { title: "#", cls: "num", render: r => String(r.position) },
        { title: "Action", render: r => badge(r.action, r.action === "allow" ? "on" : "off") },
        { title: "Conditions", render: ruleSummary },
        { title: "Enabled", render: r => r.enabled ? badge("enabled", "on") : badge("disabled", "off") },
        { title: "Comment", cls: "hide-narrow", render: r => r.comment },
        { title: "", cls: "actions", render: actions }],
        page.items, "No access rules: only the IP rules and each user's own settings apply.",
        r => ({ "data-rule": String(r.id), class: r.enabled ? null : "rule-off" })),
        pager(page.total, offset, next => { offset = Math.max(0, next); load(); }));
      // A move to the first or last place disables the button that did it:
      // the keyboard focus goes to the rule's other move button.
      if (focused && !list.contains(document.activeElement)) {
        const id = focused.split(" ")[1];
        const other = Array.from(list.querySelectorAll("button.move")).find(b => b.dataset.key.split(" ")[1] === id && !b.disabled);
        (other || list).focus({ preventScroll: true });
      }
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
// One condition of the form: its values and a Negate box beside them (and,
// for user agents and referers, "none sent" as a box of its own).
function conditionField(c, rule) {
  const values = rule ? rule[c.name] || [] : [];
  const text = h("textarea", { rows: "2", name: c.name, id: "f-" + c.name, spellcheck: "false", autocomplete: "off", "aria-describedby": "h-" + c.name },
    values.filter(v => v !== "").join(c.lines ? "\n" : ", "));
  const negate = h("input", { type: "checkbox", id: "f-negate-" + c.name, "data-negate": c.name, checked: !!rule && (rule.negate || []).includes(c.name) });
  const none = c.none ? h("input", { type: "checkbox", id: "f-none-" + c.name, checked: values.includes("") }) : null;
  const el = h("div", { class: "condition", "data-condition": c.name },
    h("label", { for: text.id, text: c.label }),
    h("div", { class: "condition-row" }, text,
      h("div", { class: "condition-options" },
        h("label", { class: "check", for: negate.id, title: "The condition holds when none of its values matches" }, negate, "Negate (not in)"),
        none ? h("label", { class: "check", for: none.id }, none, c.none) : null)),
    h("div", { class: "muted hint", id: "h-" + c.name, text: c.hint }),
    h("div", { class: "error", "data-for": c.name, "aria-live": "polite" }));
  function read() {
    let out = text.value.split(c.lines ? /\n/ : /[\n,]/).map(v => v.trim()).filter(Boolean);
    if (c.name === "asns") {
      out = out.map(v => {
        const m = /^(?:AS)?(\d{1,10})$/i.exec(v);
        if (!m) throw new ApiError(422, { field: "asns", error: `'${v}' is not an AS number (digits: 13335 or AS13335).` });
        return Number(m[1]);
      });
    }
    if (none && none.checked) out.push("");
    return out;
  }
  return { name: c.name, el, read, negated: () => negate.checked };
}
// New rule (`rule` null) or edit. A new rule leaves out the conditions left
// empty; an edit sends them as [] (removed). `done(saved)` shows the list.
function accessRuleForm(rule, total, done) {
  const v = rule || { action: "deny", enabled: true, comment: "" };
  const action = h("select", {}, [["deny", "deny: refuse the request (rule_denied)"], ["allow", "allow: no later rule applies"]]
    .map(([value, text]) => h("option", { value, selected: v.action === value }, text)));
  const enabled = h("input", { type: "checkbox", id: "f-enabled", checked: v.enabled });
  const conditions = RULE_CONDITIONS.map(c => conditionField(c, rule));
  const position = h("input", { type: "number", min: "1", step: "1", inputmode: "numeric", value: rule ? String(rule.position) : "" });
  const content = h("div", { class: "grid" },
    field("action", "Action", action),
    field("position", rule ? "Position" : "Position (empty: last)", position,
      `1 is checked first; the rules from there on move down one. ${total === 1 ? "1 rule" : total + " rules"} now.`),
    field("comment", "Comment", h("input", { value: v.comment || "", "data-wide": "1" })),
    h("div", {}, h("label", { class: "check", for: "f-enabled" }, enabled, "Enabled")),
    h("fieldset", { class: "wide conditions" },
      h("legend", { text: "Conditions: the rule matches when every condition given holds, a condition when any of its values does" }),
      h("div", { class: "error", "data-for": "conditions", "aria-live": "polite" }),
      conditions.map(c => c.el),
      h("div", { class: "error", "data-for": "negate", "aria-live": "polite" })));
  formDialog(rule ? `Edit rule ${rule.position}` : "New access rule", content, async form => {
    const body = { action: action.value, enabled: enabled.checked, comment: form.elements.comment.value.trim() };
    if (position.validity.badInput) throw new ApiError(422, { field: "position", error: "Enter a whole number (1 is the first place), or leave it empty." });
    if (position.value.trim() !== "" && (!rule || Number(position.value) !== rule.position)) body.position = Number(position.value);
    const negate = [];
    for (const c of conditions) {
      const values = c.read();
      if (values.length) body[c.name] = values;
      else if (rule) body[c.name] = [];
      if (c.negated()) negate.push(c.name);
    }
    if (negate.length || rule) body.negate = negate;
    const saved = rule ? await api("PATCH", `/api/v1/access-rules/${rule.id}`, body) : await api("POST", "/api/v1/access-rules", body);
    toast(rule ? `Rule ${saved.position} saved` : `Rule ${saved.position} created`);
    done(saved);
  }, { submit: rule ? "Save" : "Create", wide: true });
}

// ---------- signing keys (admins only) and signed links ----------
// The link formats of SPEC §9: what a link of each can carry.
const LINK_FORMATS = {
  playgate: { label: "playgate (native pglink)", user: true, once: true },
  securetoken: { label: "securetoken (Flussonic, Astra, Alta)", user: true, uri: true },
  nginx: { label: "nginx (secure_link)", uri: true },
  wowza: { label: "wowza (SecureToken v2)" },
  akamai: { label: "akamai (EdgeAuth 2.0)", uri: true },
};
const NGINX_TEMPLATE = "$secure_link_expires$uri$remote_addr $secret";
// A key's options with the format's defaults filled in.
function keyOptions(key) {
  const o = key.options || {};
  switch (key.format) {
    case "securetoken": return { subject: o.subject || "stream", check_ip: o.check_ip !== false };
    case "nginx": return { template: o.template || NGINX_TEMPLATE };
    case "wowza": return { prefix: o.prefix || "wowzatoken", algorithm: o.algorithm || "sha256", check_ip: o.check_ip === true };
    case "akamai": return { param: o.param || "__token__", algorithm: o.algorithm || "sha256" };
    default: return {};
  }
}
function optionsSummary(key) {
  const o = keyOptions(key);
  switch (key.format) {
    case "securetoken": return `subject ${o.subject}; ${o.check_ip ? "signs the client address" : "no address check"}`;
    case "nginx": return `template ${o.template}`;
    case "wowza": return `prefix ${o.prefix}; ${o.algorithm}; ${o.check_ip ? "signs the client address" : "no address check"}`;
    case "akamai": return `param ${o.param}; ${o.algorithm}`;
    default: return "";
  }
}
// What a link of this key does with the client address: "required" (the
// address is inside the signature), "network" (optional, an address or a
// CIDR), "address" (optional, one address), "none" (cannot carry one).
function ipMode(key) {
  const o = keyOptions(key);
  switch (key.format) {
    case "playgate": return "network";
    case "akamai": return "address";
    case "nginx": return o.template.includes("$remote_addr") ? "required" : "none";
    default: return o.check_ip ? "required" : "none";
  }
}
function keyLabel(key) { return `${key.id} (${key.format})`; }

pages["signing-keys"] = function () {
  const list = h("div", {});
  const notice = h("div", { id: "keys-notice" });
  put(main(), h("h1", { text: "Signing keys" }),
    h("p", { class: "muted", text: "The keys signed playback links are made and checked with. A key's secret is shown once, when it is created; disabling or deleting a key refuses its links on every server within a second." }),
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-key", onclick: () => keyForm(load) }, "New key")),
    notice, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/signing-keys?limit=1000");
      put(list, table([
        { title: "ID", render: k => h("strong", { text: k.id }) },
        { title: "Format", render: k => badge(k.format) },
        { title: "Options", cls: "hide-narrow", render: k => k.format === "playgate" ? h("span", { class: "muted", text: "—" }) : h("span", { class: "changes", text: optionsSummary(k) }) },
        { title: "Comment", cls: "hide-narrow", render: k => k.comment },
        { title: "Enabled", render: k => k.enabled ? badge("enabled", "on") : badge("disabled", "off") },
        { title: "Created", cls: "hide-narrow", render: k => fmtTime(k.created_at) },
        { title: "", cls: "actions", render: k => [
          h("button", { type: "button", class: "small", "data-testid": "key-toggle", "data-key": "toggle " + k.id, onclick: async () => {
            if (!await confirmDialog(k.enabled
              ? `Disable key ${k.id}? Links signed with it are refused on every server within a second, until it is enabled again.`
              : `Enable key ${k.id}? Its links that have not expired are accepted again.`, k.enabled ? "Disable" : "Enable")) return;
            try { await api("PATCH", `/api/v1/signing-keys/${enc(k.id)}`, { enabled: !k.enabled }); put(notice); toast(`${k.id} ${k.enabled ? "disabled" : "enabled"}`); load(); }
            catch (e) { if (e.status !== 401) showRefusal(notice, e); }
          } }, k.enabled ? "Disable" : "Enable"),
          h("button", { type: "button", class: "small danger", "data-testid": "key-delete", "data-key": "delete " + k.id, onclick: async () => {
            if (!await confirmDialog(`Delete key ${k.id}? Its links are refused on every server within a second, and it cannot be brought back: its secret is gone.`, "Delete")) return;
            try { await api("DELETE", `/api/v1/signing-keys/${enc(k.id)}`); put(notice); toast(`${k.id} deleted`); load(); }
            catch (e) { if (e.status !== 401) showRefusal(notice, e); }
          } }, "Delete")] }], page.items, "No signing keys yet: create one to make signed links."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function keyForm(reload) {
  const select = (options, selected) => h("select", {}, options.map(([value, text]) => h("option", { value, selected: value === selected }, text)));
  const check = (name, text, checked) => {
    const box = h("input", { type: "checkbox", name, id: "f-" + name, checked });
    return h("div", {}, h("label", { class: "check", for: box.id }, box, text));
  };
  const only = (format, el) => { el.dataset.format = format; return el; };
  const format = select(Object.entries(LINK_FORMATS).map(([name, f]) => [name, f.label]), "playgate");
  const secret = h("input", { type: "password", autocomplete: "off", spellcheck: "false" });
  const secretHint = h("div", { class: "muted" });
  const content = h("div", { class: "grid" },
    field("id", "Key ID", h("input", { required: true, autocomplete: "off", spellcheck: "false", maxlength: "32" }), "1–32 of a–z, 0–9 and -; links name the key by it."),
    field("format", "Format", format),
    only("securetoken", field("subject", "Signs", select([["stream", "the stream name (Flussonic)"], ["path", "the request path (Astra, Alta)"]], "stream"))),
    only("securetoken", check("st_check_ip", "Sign the client address (check_ip)", true)),
    only("nginx", field("template", "secure_link_md5 template (empty: the default)", h("input", { placeholder: NGINX_TEMPLATE, spellcheck: "false", "data-wide": "1" }),
      "As in nginx.conf: $secure_link_expires, $uri, $remote_addr, and $secret, which it must contain.")),
    only("wowza", field("prefix", "Parameter prefix (empty: wowzatoken)", h("input", { placeholder: "wowzatoken", spellcheck: "false" }))),
    only("wowza", field("wowza_algorithm", "Hash", select([["sha256", "SHA-256"], ["sha384", "SHA-384"], ["sha512", "SHA-512"]], "sha256"))),
    only("wowza", check("wowza_check_ip", "Sign the client address (check_ip)", false)),
    only("akamai", field("param", "Query parameter (empty: __token__)", h("input", { placeholder: "__token__", spellcheck: "false" }))),
    only("akamai", field("akamai_algorithm", "HMAC", select([["sha256", "SHA-256"], ["sha1", "SHA-1"], ["md5", "MD5"]], "sha256"))),
    h("div", { class: "wide error", "data-for": "options", "aria-live": "polite" }),
    h("div", { class: "wide" }, h("label", { for: "f-secret", text: "Secret (optional)" }), secret, secretHint,
      h("div", { class: "error", "data-for": "secret", "aria-live": "polite" })),
    field("comment", "Comment", h("input", { "data-wide": "1" })));
  secret.name = "secret"; secret.id = "f-secret";
  function shown() {
    content.querySelectorAll("[data-format]").forEach(el => { el.hidden = el.dataset.format !== format.value; });
    secretHint.textContent = format.value === "akamai"
      ? "Empty: generated, 256 bits as 64 hex digits. A given one is hexadecimal (an even number of digits)."
      : "Empty: generated, 256 bits as 43 characters. A given one (16–256 characters) is what the streamer or portal already uses.";
  }
  format.addEventListener("change", shown);
  shown();
  formDialog("New signing key", content, async form => {
    const val = name => form.elements[name].value.trim();
    const checked = name => form.elements[name].checked;
    const options = {
      playgate: () => ({}),
      securetoken: () => ({ subject: val("subject"), check_ip: checked("st_check_ip") }),
      nginx: () => (val("template") ? { template: val("template") } : {}),
      wowza: () => Object.assign(val("prefix") ? { prefix: val("prefix") } : {}, { algorithm: val("wowza_algorithm"), check_ip: checked("wowza_check_ip") }),
      akamai: () => Object.assign(val("param") ? { param: val("param") } : {}, { algorithm: val("akamai_algorithm") }),
    }[format.value]();
    const body = { id: val("id"), format: format.value, options, comment: val("comment") };
    // The secret as typed (spaces are allowed in one); empty: generated.
    if (secret.value !== "") body.secret = secret.value;
    const created = await api("POST", "/api/v1/signing-keys", body);
    toast(`${created.id} created`);
    reload();
    setTimeout(() => showKeySecret(created), 0);
  }, { submit: "Create", wide: true });
}
// The new key's secret: shown here once, never again (the API lists no secrets).
function showKeySecret(key) {
  const code = h("code", { id: "new-secret", text: key.secret });
  const dialog = h("dialog", { "data-testid": "key-secret" },
    h("h2", { text: `Secret of key ${key.id}` }),
    h("p", { class: "banner info", text: "Copy the secret now: it will not be shown again. Neither this page nor the API can show it later; a lost secret means a new key." }),
    h("div", { class: "secret" }, code, copyButton("copy-secret", code, "Secret")),
    h("p", { class: "muted", text: key.format === "akamai"
      ? "Give it to the CDN (its HMAC key is these hex digits, decoded) or to whatever makes the links."
      : key.format === "playgate" ? "playgate checks its own links with it; give it to whatever makes links, or make them here (Users, Link)."
        : "Configure the streamer (or whatever makes the links) with the same secret." }),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, "Done")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
}
// Presets of a link's lifetime, in seconds.
const LINK_TTLS = [["1 h", 3600], ["24 h", 86400], ["7 d", 604800]];
const EXAMPLE_ORIGIN = "https://streamer.example.com";
// Where a viewer would play the link: `uri` when given; else what the key
// signs for formats that sign a path, else the stream's HLS playlist.
function linkExample(key, stream, uri, queryText) {
  const path = uri || (key.format === "nginx" || key.format === "akamai" || (key.format === "securetoken" && keyOptions(key).subject === "path")
    ? "/" + stream : `/${stream}/index.m3u8`);
  return `${EXAMPLE_ORIGIN}${path.split("/").map(part => part === "*" ? part : enc(part)).join("/")}?${queryText}`;
}
// "Make a link" for a user: POST /api/v1/links with one of the enabled keys.
async function linkDialog(login) {
  let keys;
  try { keys = (await api("GET", "/api/v1/signing-keys?limit=1000")).items.filter(k => k.enabled); }
  catch (e) { if (e.status !== 401) toast("Could not load the signing keys: " + e.message); return; }
  if (!keys.length) {
    const dialog = h("dialog", { "data-testid": "link-dialog" }, h("h2", { text: `Signed link for ${login}` }),
      h("p", {}, "There is no enabled signing key. ", h("a", { href: "#/signing-keys", onclick: () => dialog.close() }, "Create one under Signing keys"), " first."),
      h("div", { class: "form-actions" }, h("button", { type: "button", onclick: () => dialog.close() }, "Close")));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    showModal(dialog);
    return;
  }
  // Default: the newest enabled playgate key (the list is oldest first), else the newest key.
  const playgate = keys.filter(k => k.format === "playgate");
  const preferred = (playgate.length ? playgate : keys)[(playgate.length ? playgate : keys).length - 1];
  const keySelect = h("select", {}, keys.map(k => h("option", { value: k.id, selected: k === preferred }, keyLabel(k))));
  const keyHint = h("div", { class: "muted" });
  const forUser = h("input", { type: "checkbox", name: "user", id: "f-link-user", checked: true });
  const userHint = h("div", { class: "muted" });
  const ttl = h("input", { type: "number", min: "1", max: "604800", step: "1", inputmode: "numeric", value: "3600" });
  const ttlShown = h("span", { class: "muted", "data-testid": "ttl-shown" });
  const presets = LINK_TTLS.map(([text, seconds]) => h("button", { type: "button", class: "small", "data-ttl": String(seconds),
    onclick: () => { ttl.value = String(seconds); ttlChanged(); } }, text));
  const ipHint = h("div", { class: "muted" });
  const once = h("input", { type: "checkbox", name: "once", id: "f-link-once" });
  const result = h("div", { class: "wide", "data-testid": "link-result", "aria-live": "polite" });
  const part = (name, el) => { el.dataset.part = name; return el; };
  const content = h("div", { class: "grid" },
    field("stream", "Stream", h("input", { required: true, spellcheck: "false", autocomplete: "off" }), "The stream's name (a playgate link may name a * glob)."),
    h("div", {}, h("label", { for: "f-key", text: "Signing key" }), keySelect, keyHint, h("div", { class: "error", "data-for": "key", "aria-live": "polite" })),
    h("div", { class: "wide" }, h("label", { class: "check", for: forUser.id }, forUser, `For ${login}: their packages and limits apply`), userHint,
      h("div", { class: "error", "data-for": "user", "aria-live": "polite" })),
    h("div", {}, h("label", { for: "f-ttl", text: "Valid for (seconds)" }), ttl,
      h("div", { class: "presets", role: "group", "aria-label": "Valid for" }, presets, ttlShown),
      h("div", { class: "error", "data-for": "ttl", "aria-live": "polite" })),
    part("ip", h("div", {}, h("label", { for: "f-ip", text: "Client address" }), h("input", { name: "ip", id: "f-ip", spellcheck: "false", autocomplete: "off" }), ipHint,
      h("div", { class: "error", "data-for": "ip", "aria-live": "polite" }))),
    part("uri", field("uri", "Path the player requests (optional)", h("input", { spellcheck: "false", autocomplete: "off", placeholder: "/stream" }),
      "What nginx, akamai and path-signing securetoken links sign, e.g. /live/news/index.m3u8; empty: / + stream.")),
    part("once", h("div", {}, h("label", { class: "check", for: once.id }, once, "Once: starts one session only"),
      h("div", { class: "error", "data-for": "once", "aria-live": "polite" }))),
    result);
  keySelect.name = "key"; keySelect.id = "f-key";
  ttl.name = "ttl"; ttl.id = "f-ttl";
  const selected = () => keys.find(k => k.id === keySelect.value);
  function ttlChanged() {
    const seconds = Number(ttl.value);
    ttlShown.textContent = ttl.value && Number.isFinite(seconds) && seconds > 0 ? "= " + fmtDuration(seconds) : "";
    presets.forEach(b => b.setAttribute("aria-pressed", String(b.dataset.ttl === ttl.value)));
  }
  function keyChanged() {
    const key = selected(), f = LINK_FORMATS[key.format] || {}, mode = ipMode(key);
    keyHint.textContent = key.comment || (key.format === "playgate" ? "" : optionsSummary(key));
    forUser.disabled = !f.user;
    if (!f.user) forUser.checked = false;
    else if (forUser.dataset.touched !== "1") forUser.checked = true;
    userHint.textContent = f.user ? "" : `A ${key.format} link names no user: whoever holds it may watch, anonymously, without ${login}'s limits.`;
    content.querySelector("[data-part=ip]").hidden = mode === "none";
    ipHint.textContent = { required: "Required: this key signs the client address, so the link plays from that address only.",
      network: "Optional: an address or a network (CIDR) the link plays from.",
      address: "Optional: the one address the link plays from." }[mode] || "";
    content.querySelector("[data-part=uri]").hidden = !f.uri;
    content.querySelector("[data-part=once]").hidden = !f.once;
  }
  forUser.addEventListener("change", () => { forUser.dataset.touched = "1"; });
  keySelect.addEventListener("change", keyChanged);
  ttl.addEventListener("input", ttlChanged);
  keyChanged(); ttlChanged();
  formDialog(`Signed link for ${login}`, content, async form => {
    const key = selected(), f = LINK_FORMATS[key.format] || {};
    const val = name => form.elements[name].value.trim();
    if (ttl.validity.badInput) throw new ApiError(422, { field: "ttl", error: "Enter a whole number of seconds (1 to 604800)." });
    const body = { stream: val("stream"), key: key.id };
    if (val("ttl") !== "") body.ttl = Number(val("ttl"));
    if (forUser.checked && !forUser.disabled) body.user = login;
    if (ipMode(key) !== "none" && val("ip")) body.ip = val("ip");
    if (f.uri && val("uri")) body.uri = val("uri");
    if (f.once && once.checked) body.once = true;
    put(result);
    const link = await api("POST", "/api/v1/links", body);
    const queryCode = h("code", { id: "link-query", class: "block", text: link.query });
    const urlCode = h("code", { id: "link-url", class: "block", text: linkExample(key, body.stream.replace(/^\/+|\/+$/g, ""), body.uri, link.query) });
    put(result, h("h3", { text: "The link" }),
      h("p", { class: "muted", text: `Signed with ${link.key} (${link.format}); valid until ${fmtTime(link.expires_at)}${body.user ? ", for " + body.user : ", for anyone who holds it"}${body.once ? ", once" : ""}.` }),
      h("div", { class: "caption", text: "Query (append to the stream's URL after ?)" }), h("div", { class: "secret" }, queryCode, copyButton("copy-link-query", queryCode, "Query")),
      h("div", { class: "caption", text: "Example URL (put your streamer's address in place of streamer.example.com)" }), h("div", { class: "secret" }, urlCode, copyButton("copy-link-url", urlCode, "URL")));
    result.scrollIntoView({ block: "nearest" });
    toast("Link made");
  }, { submit: "Make link", keepOpen: true, wide: true, aliases: { expires_at: "ttl", not_before: "ttl" } });
}

// ---------- webhooks ----------
// Receivers of session and limit events (docs/webhooks.md): observers see
// them and their deliveries, admins create, edit, test and delete. The
// secret is shown once, when a webhook is created.
const WEBHOOK_EVENTS = [
  ["session.started", "Session started"],
  ["session.ended", "Session ended (watch time, bytes)"],
  ["limit.reached", "Start refused by a limit (session_limit, device_limit, stream_full)"],
];
const DELIVERY_STATUS = { delivered: "on", failed: "off", pending: "" };
pages.webhooks = function () {
  const list = h("div", {});
  const notice = h("div", { id: "webhooks-notice" });
  put(main(), h("h1", { text: "Webhooks" }),
    h("p", { class: "muted", text: "Where playgate POSTs session and limit events, signed in the Standard Webhooks format. Failed deliveries are retried for 24 h; a receiver may get an event twice, with the same webhook-id." }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-webhook", onclick: () => webhookForm(null, load) }, "New webhook")) : null,
    notice, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/webhooks?limit=1000");
      put(list, table([
        { title: "URL", render: w => h("span", { class: "changes webhook-url", text: w.url }) },
        { title: "Events", render: w => w.events.map(e => badge(e)) },
        { title: "Enabled", render: w => w.enabled ? badge("enabled", "on") : badge("disabled", "off") },
        { title: "Comment", cls: "hide-narrow", render: w => w.comment },
        { title: "", cls: "actions", render: w => [
          h("button", { type: "button", class: "small", "data-testid": "webhook-deliveries", "data-key": "deliveries " + w.id, onclick: () => deliveriesDialog(w) }, "Deliveries"),
          isAdmin() ? h("button", { type: "button", class: "small", "data-testid": "webhook-test", "data-key": "test " + w.id, onclick: async () => {
            try { await api("POST", `/api/v1/webhooks/${w.id}/test`, {}); put(notice); toast("Test event queued"); deliveriesDialog(w); }
            catch (e) { if (e.status !== 401) showRefusal(notice, e); }
          } }, "Send test") : null,
          isAdmin() ? h("button", { type: "button", class: "small", "data-testid": "webhook-edit", "data-key": "edit " + w.id, onclick: () => webhookForm(w, load) }, "Edit") : null,
          isAdmin() ? h("button", { type: "button", class: "small danger", "data-testid": "webhook-delete", "data-key": "delete " + w.id, onclick: async () => {
            if (!await confirmDialog(`Delete the webhook to ${w.url}? Its queued deliveries are dropped and its secret is gone.`, "Delete")) return;
            try { await api("DELETE", `/api/v1/webhooks/${w.id}`); put(notice); toast("Webhook deleted"); load(); }
            catch (e) { if (e.status !== 401) showRefusal(notice, e); }
          } }, "Delete") : null] }],
        page.items, "No webhooks yet: create one to tell a billing or CRM system about sessions.", w => ({ "data-webhook": w.id })));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
// New (w null) or edit: url, events, enabled, comment; a secret only when new.
function webhookForm(w, reload) {
  const boxes = WEBHOOK_EVENTS.map(([name, text]) => {
    const box = h("input", { type: "checkbox", name: "event", value: name, id: "f-event-" + name, checked: w ? w.events.includes(name) : name !== "limit.reached" });
    return h("div", {}, h("label", { class: "check", for: box.id }, box, " ", h("code", { text: name }), " ", h("span", { class: "muted", text: text })));
  });
  const enabled = h("input", { type: "checkbox", name: "enabled", id: "f-enabled", checked: w ? w.enabled : true });
  const content = h("div", { class: "grid" },
    field("url", "URL", h("input", { type: "url", required: true, autocomplete: "off", spellcheck: "false", placeholder: "https://billing.example/playgate", value: w ? w.url : "", "data-wide": "1" }),
      "http or https; link-local and cloud metadata addresses are refused."),
    h("fieldset", { class: "wide packages" }, h("legend", { text: "Events" }), ...boxes, h("div", { class: "error", "data-for": "events", "aria-live": "polite" })),
    h("div", {}, h("label", { class: "check", for: "f-enabled" }, enabled, " Enabled")),
    w ? null : field("secret", "Secret (optional)", h("input", { type: "password", autocomplete: "off", spellcheck: "false", placeholder: "whsec_…" }),
      "Empty: generated. A given one is whsec_ and base64 (24–64 bytes)."),
    field("comment", "Comment", h("input", { value: w ? w.comment : "", "data-wide": "1" })));
  formDialog(w ? "Edit webhook" : "New webhook", content, async form => {
    const body = {
      url: form.elements.url.value.trim(),
      events: [...form.querySelectorAll("input[name=event]:checked")].map(b => b.value),
      enabled: form.elements.enabled.checked,
      comment: form.elements.comment.value.trim(),
    };
    if (!w && form.elements.secret.value !== "") body.secret = form.elements.secret.value;
    if (w) {
      await api("PATCH", `/api/v1/webhooks/${w.id}`, body);
      toast("Webhook saved");
      reload();
      return;
    }
    const created = await api("POST", "/api/v1/webhooks", body);
    toast("Webhook created");
    reload();
    setTimeout(() => showWebhookSecret(created), 0);
  }, { submit: w ? "Save" : "Create", wide: true });
}
// The new webhook's secret: shown here once (the API lists no secrets).
function showWebhookSecret(w) {
  const code = h("code", { id: "new-webhook-secret", text: w.secret });
  const dialog = h("dialog", { "data-testid": "webhook-secret" },
    h("h2", { text: "Signing secret of the new webhook" }),
    h("p", { class: "banner info", text: "Copy the secret now: it will not be shown again. The receiver verifies each delivery with it (webhook-signature)." }),
    h("div", { class: "secret" }, code, copyButton("copy-webhook-secret", code, "Secret")),
    h("p", { class: "muted", text: "With the standardwebhooks library: new Webhook(secret).verify(body, headers)." }),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, "Done")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  showModal(dialog);
}
// The last deliveries of one webhook, newest first, refreshed every 2 s
// while open (a test delivery lands within a second).
function deliveriesDialog(w) {
  const body = h("div", { "data-testid": "deliveries" }, h("p", { class: "muted", text: "Loading…" }));
  const dialog = h("dialog", { class: "wide", "data-testid": "deliveries-dialog" },
    h("h2", { text: "Deliveries" }), h("p", { class: "changes", text: w.url }), body,
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, "Close")));
  let timer = null;
  async function load() {
    try {
      const page = await api("GET", `/api/v1/webhooks/${w.id}/deliveries?limit=50`);
      refresh(body, table([
        { title: "When", render: d => fmtTime(d.at) },
        { title: "Event", render: d => h("code", { text: d.event_type }) },
        { title: "Attempt", render: d => String(d.attempt) },
        { title: "Status", render: d => badge(d.status, DELIVERY_STATUS[d.status]) },
        { title: "Answer", render: d => d.response_status === null ? h("span", { class: "muted", text: "—" }) : String(d.response_status) },
        { title: "Error", cls: "hide-narrow", render: d => d.error ? h("span", { class: "changes", text: d.error }) : "" }],
        page.items, "No deliveries yet.", d => ({ "data-delivery": d.id, "data-status": d.status })),
        h("p", { class: "muted", text: page.total > page.items.length ? `The last ${page.items.length} of ${page.total}.` : "" }));
    } catch (e) { if (e.status !== 401) refresh(body, errorState(e)); }
  }
  dialog.addEventListener("close", () => { clearInterval(timer); dialog.remove(); });
  document.body.append(dialog);
  showModal(dialog);
  load();
  timer = setInterval(load, 2000);
}

// ---------- audit ----------
pages.audit = function () {
  let offset = 0;
  const actor = h("input", { type: "search", placeholder: "Actor", "aria-label": "Filter by actor" });
  const objectType = h("select", { "aria-label": "Object type", id: "audit-object" }, ["", "user", "token", "package", "ip_rule", "access_rule", "session", "users", "signing_key", "link", "streamer", "webhook"].map(t => h("option", { value: t }, t || "any object")));
  const action = h("select", { "aria-label": "Action", id: "audit-action" }, ["", "create", "update", "delete", "kick", "import", "issue", "test"].map(a => h("option", { value: a }, a || "any action")));
  const from = h("input", { type: "datetime-local", id: "audit-from", "aria-label": "From" });
  const to = h("input", { type: "datetime-local", id: "audit-to", "aria-label": "Until" });
  const list = h("div", {});
  put(main(), h("h1", { text: "Audit log" }),
    h("div", { class: "toolbar" }, h("div", { class: "grow" }, actor), objectType, action,
      h("label", { for: "audit-from", class: "muted", text: "From" }), from, h("label", { for: "audit-to", class: "muted", text: "until" }), to), list);
  let debounce;
  actor.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { offset = 0; load(); }, 250); });
  [objectType, action, from, to].forEach(control => control.addEventListener("change", () => { offset = 0; load(); }));
  async function load() {
    try {
      const page = await api("GET", "/api/v1/audit" + query({ actor: actor.value.trim(), object_type: objectType.value, action: action.value,
        from: fromLocalInput(from.value), to: fromLocalInput(to.value), limit: PAGE, offset }));
      put(list, table([
        { title: "When", render: a => fmtTime(a.at) },
        { title: "Who", render: a => a.actor },
        { title: "Action", render: a => badge(a.action) },
        { title: "Object", render: auditObject },
        { title: "Changes", cls: "hide-narrow", render: a => h("span", { class: "changes", "data-testid": "audit-changes", text: auditChanges(a) }) }],
        page.items, actor.value || objectType.value || action.value || from.value || to.value ? "No change matches these filters." : "No changes recorded.", a => ({ "data-audit": a.id })),
        pager(page.total, offset, next => { offset = Math.max(0, next); load(); }));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};

// What an audit entry was about, in words, linked to where it is managed:
// "wojtek on sport/football1" for a kick, a user's login, a rule's network.
function auditObject(a) {
  const c = a.changes || {};
  const link = (href, text) => h("a", { href, text });
  switch (a.object_type) {
    case "session": return c.user || c.stream ? `${c.user || "anonymous"} on ${c.stream || "?"}` : `session ${a.object_id}`;
    case "user": case "token": return a.action === "delete" && a.object_type === "user" ? `user ${a.object_id}` : link(`#/users?q=${encodeURIComponent(a.object_id.split("/")[0])}`, `user ${a.object_id}`);
    case "package": return link("#/packages", `package ${a.object_id}`);
    case "ip_rule": return link("#/ip-rules", c.network ? `${c.action || ""} rule ${c.network}`.trim() : `IP rule ${a.object_id}`);
    case "access_rule": return link("#/access-rules", `access rule ${a.object_id}`);
    case "signing_key": return link("#/signing-keys", `signing key ${a.object_id}`);
    case "streamer": return link("#/streamers", `streamer ${a.object_id}`);
    case "webhook": return link("#/webhooks", c.url ? `webhook ${c.url}` : `webhook ${a.object_id}`);
    default: return `${a.object_type} ${a.object_id}`;
  }
}
// The changes in words: "comment: abuse → restreamer" where the entry has
// the values before and after, else "field: value"; secrets are "[set]".
function auditChanges(a) {
  const c = a.changes || {};
  const word = v => v === null || v === undefined ? "none" : Array.isArray(v) ? (v.length ? v.join(", ") : "none")
    : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (c.before && c.after && typeof c.before === "object" && typeof c.after === "object") {
    const keys = [...new Set([...Object.keys(c.before), ...Object.keys(c.after)])]
      .filter(k => JSON.stringify(c.before[k]) !== JSON.stringify(c.after[k]));
    return keys.length ? keys.map(k => `${k}: ${word(c.before[k])} → ${word(c.after[k])}`).join("; ") : "no change";
  }
  const pairs = Object.entries(c).filter(([k]) => k !== "before" && k !== "after");
  return pairs.length ? pairs.map(([k, v]) => `${k}: ${word(v)}`).join("; ") : "—";
}

// ---------- start ----------
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", async () => {
    try { await api("POST", "/api/v1/logout"); } catch (e) { /* signed out anyway */ }
    location.hash = "";
    signedOut("");
  });
  try {
    const response = await fetch("/api/v1/login", { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (response.ok) { signedIn(await response.json()); return; }
  } catch (e) { /* fall through to the form */ }
  renderLogin("");
});
