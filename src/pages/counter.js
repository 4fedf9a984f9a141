// The counter page (software caller, rule Q5, docs/branch-api.md "Pages"):
// a counter logs in with its id and token (kept in sessionStorage only,
// gone with the tab), acts through the branch API and follows the stream
// to keep its current ticket and waiting counts fresh.
"use strict";
(function () {
  const el = (id) => document.getElementById(id);
  // Chinese for the API's stable error codes; the English message comes
  // from kioskd.
  const ZH = {
    bad_request: "请求有误", unauthorized: "令牌无效，请重新登录", forbidden: "无权以此窗口操作",
    not_found: "找不到", unknown_service: "没有这项业务", no_such_ticket: "今天没有这个号码",
    still_serving: "请先办结、过号或转移当前号码", nobody_waiting: "没有等候的客户",
    no_current_ticket: "当前没有号码", not_skipped: "这个号码不是过号", other_day: "不是今天的号码",
    same_service: "已经在这项业务中", not_allowed: "不允许", store_unavailable: "数据库不可用，未执行",
    internal: "内部错误", network: "无法连接叫号主机",
  };
  let id = sessionStorage.getItem("kioskCounterId");
  let token = sessionStorage.getItem("kioskCounterToken");
  let source = null;
  let allServices = [];

  function showError(code, message) {
    const e = el("error");
    e.dataset.code = code;
    e.textContent = `${ZH[code] || "错误"} — ${message} (${code})`;
    e.hidden = false;
  }
  function clearError() { el("error").hidden = true; el("error").dataset.code = ""; }

  async function api(method, path, body) {
    let r;
    try {
      r = await fetch(path, {
        method,
        headers: Object.assign({ Authorization: `Bearer ${token}` }, body ? { "Content-Type": "application/json" } : {}),
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      showError("network", String(e));
      throw e;
    }
    const data = await r.json().catch(() => null);
    if (!r.ok) {
      const err = (data && data.error) || { code: "internal", message: `HTTP ${r.status}` };
      showError(err.code, err.message);
      if (r.status === 401) logout();
      throw new Error(err.code);
    }
    return data;
  }

  function renderView(v) {
    el("title").innerHTML = "";
    el("title").append(v.counter.label_zh + " ");
    const en = document.createElement("span");
    en.className = "en";
    en.textContent = v.counter.label_en;
    el("title").append(en);
    el("current-number").textContent = v.current ? v.current.number : "—";
    el("current-number").dataset.number = v.current ? v.current.number : "";
    const svc = v.current && allServices.find((s) => s.id === v.current.service);
    el("current-service").textContent = svc ? `${svc.name_zh} ${svc.name_en}` : "";
    ["recall", "skip", "serve", "transfer"].forEach((b) => { el(b).disabled = !v.current; });
    el("call-next").disabled = !!v.current;
    const list = el("services");
    list.textContent = "";
    v.services.forEach((s) => {
      const li = document.createElement("li");
      li.dataset.service = s.id;
      const name = document.createElement("span");
      name.textContent = `${s.letter} ${s.name_zh} ${s.name_en}`;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(s.waiting);
      li.append(name, count);
      list.append(li);
    });
  }

  async function refresh() {
    renderView(await api("GET", `/api/v1/counters/${encodeURIComponent(id)}`));
  }

  async function act(action) {
    clearError();
    let body;
    if (action === "transfer") body = { service: el("transfer-service").value };
    if (action === "reactivate") body = { number: el("reactivate-number").value.trim().toUpperCase() };
    try {
      await api("POST", `/api/v1/counters/${encodeURIComponent(id)}/${action}`, body);
      if (action === "reactivate") el("reactivate-number").value = "";
      await refresh();
    } catch (_) { /* shown */ }
  }

  function follow() {
    source = new EventSource("/api/v1/stream");
    source.addEventListener("open", () => { el("link").textContent = ""; });
    source.addEventListener("state", (m) => {
      const s = JSON.parse(m.data);
      allServices = s.services;
      const sel = el("transfer-service");
      const chosen = sel.value;
      sel.textContent = "";
      s.services.forEach((svc) => {
        const o = document.createElement("option");
        o.value = svc.id;
        o.textContent = `${svc.letter} ${svc.name_zh} ${svc.name_en}`;
        sel.append(o);
      });
      if (chosen) sel.value = chosen;
      refresh().catch(() => {});
    });
    ["issued", "called", "recalled", "skipped", "reactivated", "transferred", "served"].forEach((k) => {
      source.addEventListener(k, () => refresh().catch(() => {}));
    });
    source.addEventListener("error", () => {
      el("link").textContent = "重新连接中… Reconnecting…";
      if (source.readyState === EventSource.CLOSED) setTimeout(follow, 2000);
    });
  }

  function loggedIn() {
    el("login").hidden = true;
    el("desk").hidden = false;
    el("logout").hidden = false;
    follow();
  }

  function logout() {
    sessionStorage.removeItem("kioskCounterId");
    sessionStorage.removeItem("kioskCounterToken");
    if (source) source.close();
    source = null;
    el("desk").hidden = true;
    el("logout").hidden = true;
    el("login").hidden = false;
  }

  el("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    id = el("counter-id").value.trim();
    token = el("counter-token").value.trim();
    try {
      await refresh();
      sessionStorage.setItem("kioskCounterId", id);
      sessionStorage.setItem("kioskCounterToken", token);
      el("counter-token").value = "";
      loggedIn();
    } catch (_) { /* shown */ }
  });
  el("logout").addEventListener("click", logout);
  document.querySelectorAll("button[data-action]").forEach((b) => {
    b.addEventListener("click", () => act(b.dataset.action));
  });

  if (id && token) loggedIn(); else el("login").hidden = false;
})();
