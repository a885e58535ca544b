// The gateway's dashboard: hash routes (#/overview, #/requests, #/request/<id>, #/state), data from
// /ui/api/*, charts drawn as SVG here (nothing fetched from elsewhere). The admin key, when the gateway
// has one, is kept in this tab's sessionStorage and sent as a Bearer token.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#3a7bd5", "#f79009", "#12b76a", "#d92d20", "#7a5af8", "#0ba5ec", "#ee46bc", "#667085"];
const fmt = {
  n: (v) => Number(v).toLocaleString("en-US", { maximumFractionDigits: 0 }),
  usd: (v) => "$" + Number(v).toLocaleString("en-US", { maximumFractionDigits: 6 }),
  ms: (v) => Number(v).toFixed(1) + " ms",
  pct: (v) => (100 * Number(v)).toFixed(1) + " %",
  time: (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19),
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "style") node.style.cssText = v;  // the CSSOM: the page's CSP refuses style attributes
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function api(path) {
  const key = sessionStorage.getItem("gateway-admin-key");
  const response = await fetch(path, { headers: key ? { authorization: "Bearer " + key } : {} });
  const body = await response.json();
  if (response.status === 401) { showLogin(body.error.message); throw new Error("login"); }
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function filters(log) {
  const p = new URLSearchParams({ range: $("f-range").value });
  if (!log) p.set("group", $("f-group").value);
  for (const name of ["tenant", "model"]) if ($("f-" + name).value) p.set(name, $("f-" + name).value.trim());
  if (log) {
    if ($("f-status").value) p.set("status", $("f-status").value);
    if ($("f-q").value) p.set("q", $("f-q").value);
  }
  return p.toString();
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

// -- charts -----------------------------------------------------------------------------------------

function chart(title, width, height, draw, legend) {
  const box = el("div", { class: "chart" }, el("h3", {}, title));
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  draw(root);
  box.append(root);
  if (legend) box.append(el("div", { class: "legend" }, ...legend.map(([name, color]) =>
    el("span", {}, el("i", { style: `background:${color}` }), name))));
  return box;
}

function axes(root, w, h, maxY, ticks, label) {
  root.append(svg("line", { x1: 40, y1: h - 20, x2: w, y2: h - 20, stroke: "#c0c5d0" }));
  root.append(svg("line", { x1: 40, y1: 0, x2: 40, y2: h - 20, stroke: "#c0c5d0" }));
  for (const [x, text] of ticks) {
    const t = svg("text", { x, y: h - 5, "font-size": 10, fill: "#5b6475", "text-anchor": "middle" });
    t.textContent = text; root.append(t);
  }
  const top = svg("text", { x: 44, y: 10, "font-size": 10, fill: "#5b6475" });
  top.textContent = label(maxY); root.append(top);
}

function timeScale(times, w) {
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const x = (t) => 40 + (t1 === t0 ? (w - 40) / 2 : ((t - t0) / (t1 - t0)) * (w - 50));
  const ticks = [...new Set([t0, (t0 + t1) / 2, t1])].map((t) => [x(t), fmt.time(t * 1000).slice(5, 16)]);
  return { x, ticks, t0, t1 };
}

function stackedBars(title, rows, field, label) {
  const w = 520, h = 200, times = [...new Set(rows.map((r) => r.t))].sort((a, b) => a - b);
  const groups = [...new Set(rows.map((r) => r.g))];
  const color = (g) => COLORS[groups.indexOf(g) % COLORS.length];
  const totals = times.map((t) => rows.filter((r) => r.t === t).reduce((s, r) => s + Number(r[field]), 0));
  const maxY = Math.max(1e-9, ...totals);
  const slot = (w - 50) / Math.max(1, times.length), bw = Math.max(2, Math.min(40, slot * 0.8));
  const { ticks } = timeScale(times, w);
  return chart(title, w, h, (root) => {
    axes(root, w, h, maxY, ticks, label);
    times.forEach((t, i) => {
      let y = h - 20;
      for (const r of rows.filter((row) => row.t === t)) {
        const bh = (Number(r[field]) / maxY) * (h - 30);
        y -= bh;
        const rect = svg("rect", { x: 42 + i * slot, y, width: bw, height: Math.max(0, bh), fill: color(r.g),
          "data-value": r[field] });
        const tip = svg("title"); tip.textContent = `${r.g}: ${label(r[field])}`; rect.append(tip);
        root.append(rect);
      }
    });
  }, groups.map((g) => [g || "(none)", color(g)]));
}

function percentileBand(title, rows) {
  const w = 520, h = 200, times = [...new Set(rows.map((r) => r.t))].sort((a, b) => a - b);
  // per bucket, the worst group's percentiles (a tail anywhere shows)
  const at = times.map((t) => {
    const rs = rows.filter((r) => r.t === t && r.requests > 0);
    return [0, 1, 2].map((i) => Math.max(0, ...rs.map((r) => r.latency[i])));
  });
  const maxY = Math.max(1, ...at.map((p) => p[2]));
  const { x, ticks } = timeScale(times, w);
  const y = (v) => h - 20 - (v / maxY) * (h - 30);
  return chart(title, w, h, (root) => {
    axes(root, w, h, maxY, ticks, fmt.ms);
    if (!times.length) return;
    const upper = times.map((t, i) => `${x(t)},${y(at[i][2])}`);
    const lower = times.map((t, i) => `${x(t)},${y(at[i][0])}`).reverse();
    root.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: "#3a7bd5", "fill-opacity": 0.15 }));
    [[1, "#f79009"], [0, "#3a7bd5"], [2, "#d92d20"]].forEach(([i, c]) => {
      root.append(svg("polyline", { points: times.map((t, j) => `${x(t)},${y(at[j][i])}`).join(" "), fill: "none",
        stroke: c, "stroke-width": 2, class: "series" }));
      times.forEach((t, j) => root.append(svg("circle", { cx: x(t), cy: y(at[j][i]), r: 3, fill: c })));
    });
  }, [["p50", "#3a7bd5"], ["p90", "#f79009"], ["p99", "#d92d20"]]);
}

// -- views ------------------------------------------------------------------------------------------

async function overview() {
  const data = await api("/ui/api/overview?" + filters(false));
  const rows = data.series;
  const sum = (f) => rows.reduce((s, r) => s + Number(r[f]), 0);
  const requests = sum("requests");
  const worst = (i) => Math.max(0, ...rows.filter((r) => r.requests > 0).map((r) => r.latency[i]));
  const cards = el("div", { class: "cards" }, ...[
    ["Requests", fmt.n(requests), "requests"], ["Errors", requests ? fmt.pct(sum("errors") / requests) : "–", "errors"],
    ["Cost", fmt.usd(sum("cost")), "cost"], ["Tokens", fmt.n(sum("tokens")), "tokens"],
    ["Latency p50 (worst bucket)", fmt.ms(worst(0)), "p50"], ["Latency p99 (worst bucket)", fmt.ms(worst(2)), "p99"],
  ].map(([k, v, id]) => el("div", { class: "card", "data-card": id }, el("div", { class: "k" }, k), el("div", { class: "v" }, v))));
  if (!rows.length) return [cards, el("p", { class: "empty" }, "No requests in this range.")];
  return [cards, el("div", { class: "charts" },
    stackedBars(`Requests by ${data.group}`, rows, "requests", fmt.n),
    percentileBand("Latency percentiles", rows),
    stackedBars(`Cost by ${data.group}`, rows, "cost", fmt.usd),
    stackedBars(`Errors by ${data.group}`, rows, "errors", fmt.n),
    stackedBars(`Tokens by ${data.group}`, rows, "tokens", fmt.n))];
}

async function requests() {
  const data = await api("/ui/api/requests?" + filters(true));
  if (!data.requests.length) return [el("p", { class: "empty" }, "No requests match.")];
  const head = el("tr", {}, ...["time", "tenant", "key", "model", "provider", "status", "latency", "cost", "body (redacted)"]
    .map((h) => el("th", {}, h)));
  const body = data.requests.map((r) => el("tr", { class: r.status >= 400 ? "err" : "", "data-id": r.id },
    el("td", {}, el("a", { href: "#/request/" + r.id }, fmt.time(r.ts))), el("td", {}, r.tenant), el("td", {}, r.key),
    el("td", {}, r.model), el("td", {}, r.provider), el("td", {}, r.status + (r.error_code ? " " + r.error_code : "")),
    el("td", {}, fmt.ms(r.latency_ms)), el("td", {}, fmt.usd(r.cost)), el("td", { class: "body" }, r.body)));
  return [el("table", { id: "log" }, el("thead", {}, head), el("tbody", {}, ...body))];
}

async function request(id) {
  const data = await api("/ui/api/requests/" + encodeURIComponent(id));
  const r = data.request;
  const facts = [["request id", r.request_id], ["time", r.ts], ["tenant / key", `${r.tenant} / ${r.api_key_id}`],
    ["model", `${r.model_requested} → ${r.model_served || "–"}`], ["provider / route", `${r.provider} ${r.route_path || ""}`],
    ["status", `${r.status_code} ${r.error_code || ""}`], ["latency", fmt.ms(r.latency_ms)],
    ["gateway overhead", fmt.ms(r.gateway_overhead_ms)], ["attempts", r.attempts],
    ["tokens in / out", `${r.prompt_tokens} / ${r.completion_tokens}`], ["cost", r.cost_usd === null ? "unpriced" : fmt.usd(r.cost_usd)],
    ["guardrails", data.verdicts.map((v) => `${v.guardrail} ${v.phase} ${v.outcome}`).join(", ") || "–"],
    ["request body (redacted)", r.request_body || "(cleared)"]];
  const events = data.events;
  const w = 720, rowH = 22, h = 30 + rowH * Math.max(1, events.length);
  const starts = events.map((e) => e.ts - e.duration_ms), ends = events.map((e) => e.ts);
  const t0 = Math.min(...starts), t1 = Math.max(...ends, t0 + 1);
  const x = (t) => 200 + ((t - t0) / (t1 - t0)) * (w - 210);
  const timeline = chart("Stage timeline", w, h, (root) => {
    events.forEach((e, i) => {
      const label = svg("text", { x: 0, y: 20 + i * rowH, "font-size": 11, fill: "#1d2433" });
      label.textContent = `${e.stage} · ${e.type}`; root.append(label);
      const bar = svg("rect", { x: x(e.ts - e.duration_ms), y: 8 + i * rowH, height: 14, class: "stage",
        width: Math.max(2, x(e.ts) - x(e.ts - e.duration_ms)), fill: e.status === "error" ? "#d92d20" : "#3a7bd5" });
      const tip = svg("title"); tip.textContent = `${e.stage}: ${e.duration_ms.toFixed(2)} ms`; bar.append(tip);
      root.append(bar);
    });
  });
  const called = events.find((e) => e.attrs && Array.isArray(e.attrs.attempts));
  const attempts = called ? called.attrs.attempts : [];
  const calls = el("table", {}, el("tr", {}, ...["target", "status", "code", "ms"].map((h) => el("th", {}, h))),
    ...attempts.map((a) => el("tr", {}, el("td", {}, a.target), el("td", {}, a.status), el("td", {}, a.code || ""),
      el("td", {}, a.ms))));
  return [el("h2", {}, "Request"), el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    timeline, el("h3", {}, "Provider calls"), calls];
}

async function state() {
  const data = await api("/ui/api/state");
  const usage = (used, limit) => {
    if (!limit) return "–";
    const share = Math.min(1, used / limit);
    return el("div", { class: "bar", title: fmt.pct(used / limit) },
      el("div", { class: share > 0.8 ? "hot" : "", style: `width:${(share * 100).toFixed(1)}%` }));
  };
  const scopes = el("table", { id: "scopes" },
    el("tr", {}, ...["scope", "spent", "budget", "", "requests/min", "rpm", "", "tokens/min", "tpm"].map((h) => el("th", {}, h))),
    ...data.scopes.map((s) => el("tr", {}, el("td", {}, s.scope), el("td", {}, fmt.usd(s.budget_spent_usd || 0)),
      el("td", {}, s.budget_limit_usd ? fmt.usd(s.budget_limit_usd) : "–"), el("td", {}, usage(s.budget_spent_usd || 0, s.budget_limit_usd)),
      el("td", {}, fmt.n(s.rate_limit_requests || 0)), el("td", {}, s.rate_limit_requests_limit || "–"),
      el("td", {}, usage(s.rate_limit_requests || 0, s.rate_limit_requests_limit)),
      el("td", {}, fmt.n(s.rate_limit_tokens || 0)), el("td", {}, s.rate_limit_tokens_limit || "–"))));
  const breakers = el("table", { id: "breakers" }, el("tr", {}, ...["target", "state", "since"].map((h) => el("th", {}, h))),
    ...data.breakers.map((b) => el("tr", { class: b.state === "open" ? "err" : "" }, el("td", {}, b.key),
      el("td", {}, b.state || "?"), el("td", {}, b.since ? fmt.time(b.since * 1000) : ""))));
  const changes = el("table", { id: "changes" }, el("tr", {}, ...["time", "kind", "subject", "change", "by"].map((h) => el("th", {}, h))),
    ...data.changes.map((c) => el("tr", {}, el("td", {}, fmt.time(c.ts)), el("td", {}, c.kind), el("td", {}, c.subject),
      el("td", {}, `${c.from_state} → ${c.to_state} ${c.reason}`), el("td", {}, c.source))));
  return [el("h2", {}, "Budgets and rate limits"), data.scopes.length ? scopes : el("p", { class: "empty" }, "No limited scope has traffic yet."),
    el("h2", {}, "Circuit breakers"), data.breakers.length ? breakers : el("p", { class: "empty" }, "All closed: none has tripped."),
    el("h2", {}, "Config changes and breaker transitions"), changes];
}

async function render() {
  const [, view, arg] = (location.hash || "#/overview").split("/");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  document.querySelectorAll(".log-only").forEach((n) => { n.hidden = view !== "requests"; });
  $("filters").hidden = !["overview", "requests"].includes(view);
  $("status").textContent = "";
  const views = { overview, requests, request: () => request(arg), state };
  try {
    const nodes = await (views[view] || overview)();
    $("view").replaceChildren(...nodes);
    $("login").hidden = true;
    document.body.dataset.loaded = view;
  } catch (err) {
    if (err.message !== "login") $("status").textContent = err.message;
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("gateway-admin-key", $("admin-key").value);
  render();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem("gateway-admin-key"); showLogin(""); });
$("apply").addEventListener("click", render);
window.addEventListener("hashchange", render);

(async () => {  // ask for the key first when the gateway needs one, rather than fail a call without it
  const auth = await (await fetch("/ui/api/auth")).json();
  if (auth.key_required && !sessionStorage.getItem("gateway-admin-key")) showLogin("");
  else render();
})();
