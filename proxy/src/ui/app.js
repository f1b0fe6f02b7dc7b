// Parallax diff explorer. Reads the admin JSON of the proxy that serves it
// and renders services -> routes -> fields -> a sample, refreshing itself.
// Every value from the wire goes into the page through textContent, never
// as HTML: samples hold whatever the services answered.
"use strict";

const state = { data: null, sort: { key: "raw", dir: -1 }, error: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const enc = encodeURIComponent;
const link = (href, text, focusKey) => el("a", { href, "data-focus": focusKey || href }, text);
const pct = (n, d) => (d > 0 ? (100 * n / d).toFixed(n && n / d < 0.001 ? 3 : 1) + " %" : "–");
const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–");
const us = (v) => (v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " ms" : v + " µs");

// A difference path with array indices as "*" (as the proxy counts fields).
const generalise = (p) => (p.startsWith("/") ? p.split("/").map((s) => (/^\d+$/.test(s) ? "*" : s)).join("/") : p);

async function fetchJson(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

async function load() {
  try {
    const [overview, fields, samples, latency, canary, kafka] = await Promise.all([
      fetchJson("/admin/overview"),
      fetchJson("/admin/fields"),
      fetchJson("/admin/mismatches"),
      fetchJson("/admin/latency/percentiles"),
      fetchJson("/admin/canary"),
      fetchJson("/admin/kafka"),
    ]);
    state.data = { overview, fields, samples, latency, canary, kafka };
    state.error = null;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    state.error = String(e);
  }
  render();
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const at = {};
  for (let i = 0; i + 1 < parts.length; i += 2) at[parts[i]] = parts[i + 1];
  return at; // { s: service, r: route, f: field, sample: index }
}

function render() {
  const main = document.getElementById("main");
  const focused = document.activeElement && document.activeElement.getAttribute("data-focus");
  const at = route();
  main.replaceChildren();
  crumbs(at);
  if (state.error) main.append(el("p", { class: "error", role: "alert" }, state.error));
  if (!state.data) return;
  if (at.s && at.r) routeView(main, at);
  else if (at.s) serviceView(main, at.s);
  else servicesView(main);
  if (focused) {
    const again = main.querySelector(`[data-focus="${CSS.escape(focused)}"]`) || document.querySelector(`[data-focus="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function crumbs(at) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  const items = [link("#/", "services")];
  if (at.s) items.push(link(`#/s/${enc(at.s)}`, at.s));
  if (at.s && at.r) items.push(link(`#/s/${enc(at.s)}/r/${enc(at.r)}`, at.r));
  if (at.f) items.push(el("span", { text: at.f }));
  items.forEach((item, i) => nav.append(...(i ? [" › ", item] : [item])));
}

function totals(routes) {
  const t = { compared: 0, match: 0, mismatch: 0, noise: 0 };
  for (const r of Object.values(routes)) {
    t.compared += r.outcomes.compared || 0;
    t.match += r.results.match || 0;
    t.mismatch += r.results.mismatch || 0;
    t.noise += r.results.noise || 0;
  }
  return t;
}

function table(headers, rows, caption) {
  return el("div", { class: "scroll" },
    el("table", {},
      caption ? el("caption", { text: caption }) : null,
      el("thead", {}, el("tr", {}, headers.map((h) => (h instanceof Node ? el("th", { scope: "col" }, h) : el("th", { scope: "col", text: h }))))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))));
}

function servicesView(main) {
  const services = state.data.overview.services;
  main.append(el("h1", { text: "Services" }));
  const rows = Object.entries(services).map(([name, s]) => {
    const t = totals(s.routes);
    const canary = state.data.canary.services[name];
    return [link(`#/s/${enc(name)}`, name), s.primary, s.shadow, s.secondary || "–", t.compared, t.mismatch, pct(t.mismatch, t.compared), t.noise, canary ? canary.state + " " + canary.weight_percent + " %" : "–"];
  });
  main.append(table(["service", "primary", "shadow", "secondary", "compared", "mismatches", "rate", "noise", "canary"], rows));
  if (state.data.kafka.configured) main.append(kafkaPanel(state.data.kafka));
}

function kafkaPanel(k) {
  const section = el("section", { class: "panel" }, el("h2", { text: "Kafka side effects (parallax kafka-diff)" }));
  if (!k.reachable) return section.append(el("p", { class: "error", text: `The differ at ${k.address} does not answer.` })), section;
  const r = k.summary.records;
  const pairs = (r.matched || 0) + (r.different || 0);
  section.append(table(["matched", "different", "missing in shadow", "extra in shadow", "difference rate"], [[r.matched, r.different, r.missing_in_shadow, r.extra_in_shadow, pct(r.different + r.missing_in_shadow + r.extra_in_shadow, pairs + r.missing_in_shadow + r.extra_in_shadow)]]));
  section.append(table(["side", "topic", "consumed", "pending", "lag", "without event id"], Object.entries(k.summary.sides).map(([side, s]) => [side, s.topic, s.consumed, s.pending, s.lag, s.without_event_id])));
  const samples = k.samples || [];
  if (samples.length) {
    section.append(table(["event", "result", "differences"], samples.slice(-10).reverse().map((s) => [s.event_id ?? "–", s.result, (s.differences || []).map((d) => `${d.path} (${d.kind})`).join(", ")]), "Last differing records"));
  }
  return section;
}

function serviceView(main, name) {
  const s = state.data.overview.services[name];
  if (!s) return main.append(el("p", { text: `No service ${name}.` }));
  main.append(el("h1", { text: name }));
  const fields = state.data.fields.services[name] || {};
  const rows = Object.entries(s.routes).map(([label, r]) => {
    const top = (fields[label] && fields[label].fields[0]) || null;
    const o = r.outcomes;
    const other = Object.entries(o).filter(([k, v]) => k !== "compared" && v > 0).map(([k, v]) => `${k} ${v}`).join(", ");
    return [link(`#/s/${enc(name)}/r/${enc(label)}`, label), o.compared || 0, r.results.match, r.results.mismatch, pct(r.results.mismatch, o.compared || 0), r.results.noise, r.limits, top ? top.path : "–", other || "–"];
  });
  main.append(el("h2", { text: "Routes" }), table(["route", "compared", "match", "mismatch", "rate", "noise", "limits", "most differing field", "other outcomes"], rows));
  main.append(latencyPanel(name));
  const canary = state.data.canary.services[name];
  if (canary) main.append(canaryPanel(canary));
  const ws = s.websocket;
  if (ws && Object.values(ws.upgrades).some((v) => v > 0)) main.append(wsPanel(ws));
}

function latencyPanel(name) {
  const backends = state.data.latency.services[name] || {};
  const section = el("section", { class: "panel" }, el("h2", { text: `Latency over the last ${state.data.latency.window_seconds} s` }));
  const series = Object.entries(backends).filter(([, b]) => b.points.length);
  if (!series.length) return section.append(el("p", { text: "No requests in the window." })), section;
  const W = 640, H = 260, L = 56, B = 34;
  const xs = (p) => Math.log10(1 / Math.max(1 - Math.min(p, 99.999) / 100, 1e-5));
  const maxX = xs(99.999);
  const all = series.flatMap(([, b]) => b.points.map((q) => Math.max(q[1], 1)));
  const lo = Math.log10(Math.min(...all)), hi = Math.log10(Math.max(...all)) + 0.05;
  const X = (p) => L + (W - L - 10) * xs(p) / maxX;
  const Y = (v) => H - B - (H - B - 10) * (Math.log10(Math.max(v, 1)) - lo) / Math.max(hi - lo, 0.1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "latency percentiles per backend");
  const add = (tag, attrs, text) => {
    const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text) n.textContent = text;
    svg.append(n);
  };
  for (const p of [0, 50, 90, 99, 99.9, 99.99]) {
    add("line", { x1: X(p), x2: X(p), y1: 10, y2: H - B, class: "grid" });
    add("text", { x: X(p), y: H - B + 16, "text-anchor": "middle", class: "axis" }, "p" + p);
  }
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    const v = Math.pow(10, e);
    if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
    add("line", { x1: L, x2: W - 10, y1: Y(v), y2: Y(v), class: "grid" });
    add("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end", class: "axis" }, us(v));
  }
  series.forEach(([backend, b]) => {
    add("polyline", { points: b.points.map((q) => `${X(q[0])},${Y(q[1])}`).join(" "), class: "line " + backend });
  });
  section.append(svg);
  section.append(table(["backend", "requests", "p50", "p90", "p99", "p99.9", "max"], series.map(([backend, b]) => {
    const at = (p) => { const q = b.points.find((x) => x[0] === p); return q ? us(q[1]) : "–"; };
    return [el("span", { class: "key " + backend, text: backend }), b.count, at(50), at(90), at(99), at(99.9), at(100)];
  })));
  return section;
}

function canaryPanel(c) {
  const section = el("section", { class: "panel" }, el("h2", { text: "Canary" }));
  section.append(el("p", {}, `state ${c.state}, weight ${c.weight_percent} %, steps ${c.steps_percent.join(" → ")} %` + (c.step !== null && c.step !== undefined ? `, step ${c.step + 1} for ${Math.round(c.step_seconds)} s` : "")));
  if (c.rollback) {
    section.append(el("p", { class: "error" }, `rolled back at ${time(c.rollback.at_unix_seconds * 1000)}: ${c.rollback.reason} — ${c.rollback.detail}`));
  }
  if (c.window) {
    section.append(table(["arm", "requests", "failures"], ["primary", "shadow"].filter((a) => c.window[a]).map((a) => [a, c.window[a].requests, c.window[a].failures])));
  }
  return section;
}

function wsPanel(ws) {
  const section = el("section", { class: "panel" }, el("h2", { text: "WebSocket" }));
  section.append(table(["frames", ...Object.keys(ws.frames)], [["count", ...Object.values(ws.frames)]]));
  section.append(el("p", {}, `connections open: primary ${ws.connections.primary}, shadow ${ws.connections.shadow}; paired ${ws.skew.count}, mean |skew| ${(ws.skew.mean_abs_seconds * 1e3).toFixed(2)} ms, shadow first ${pct(ws.skew.negative, ws.skew.count)}`));
  return section;
}

function routeView(main, at) {
  const stats = (state.data.fields.services[at.s] || {})[at.r];
  const samples = ((state.data.samples.services[at.s] || {})[at.r]) || [];
  if (!stats) return main.append(el("p", { text: `No route ${at.r} in ${at.s}.` }));
  if (at.f !== undefined || at.sample !== undefined) return sampleView(main, at, samples);
  main.append(el("h1", { text: `${at.s} ${at.r}` }));
  main.append(el("p", {}, `${stats.comparisons} comparisons` + (stats.comparisons_with_secondary ? `, ${stats.comparisons_with_secondary} with a secondary` : "") + `; the ${stats.capacity} most differing paths are kept.`));
  main.append(fieldTable(at, stats));
  main.append(el("h2", { text: "Samples" }));
  if (!samples.length) main.append(el("p", { text: "No mismatch sampled yet." }));
  else main.append(table(["at", "request", "mismatching paths"], samples.slice().reverse().map((s, j) => {
    const i = samples.length - 1 - j;
    return [time(s.at_unix_ms), link(`#/s/${enc(at.s)}/r/${enc(at.r)}/sample/${i}`, `${s.method} ${s.target}`), s.mismatches.map((d) => d.path).join(", ")];
  })));
}

function fieldTable(at, stats) {
  const cols = [["path", "path"], ["raw", "differs"], ["mismatch", "mismatch"], ["noise", "noise"], ["secondary", "primaries differ"], ["kinds", "kinds"], ["first_seen_unix_ms", "first seen"], ["last_seen_unix_ms", "last seen"]];
  const { key, dir } = state.sort;
  const rows = stats.fields.slice().sort((a, b) => {
    const va = a[key], vb = b[key];
    const c = typeof va === "string" ? va.localeCompare(vb) : (va > vb) - (va < vb);
    return c * dir || a.path.localeCompare(b.path);
  });
  const header = cols.map(([k, label]) => k === "kinds" ? label : el("button", {
    type: "button", class: "sort", "data-focus": "sort-" + k, "aria-sort": key === k ? (dir > 0 ? "ascending" : "descending") : "none",
    onclick: () => { state.sort = { key: k, dir: key === k ? -dir : (k === "path" ? 1 : -1) }; render(); },
  }, label + (key === k ? (dir > 0 ? " ▲" : " ▼") : "")));
  const body = rows.map((f) => [
    link(`#/s/${enc(at.s)}/r/${enc(at.r)}/f/${enc(f.path)}`, f.path, "field-" + f.path),
    `${f.raw} (${pct(f.raw, stats.comparisons)})` + (f.error ? ` ±${f.error}` : ""),
    f.mismatch, f.noise,
    stats.comparisons_with_secondary ? `${f.secondary} (${pct(f.secondary, stats.comparisons_with_secondary)})` : "–",
    Object.entries(f.kinds).map(([k, v]) => `${k} ${v}`).join(", "),
    time(f.first_seen_unix_ms), time(f.last_seen_unix_ms),
  ]);
  const t = table(header, body, "Fields that differ, most often first");
  t.querySelector("table").id = "fields";
  return t;
}

function sampleView(main, at, samples) {
  let index = at.sample !== undefined ? Number(at.sample) : -1;
  if (at.f !== undefined && at.sample === undefined) {
    for (let i = samples.length - 1; i >= 0; i--) {
      const all = samples[i].mismatches.concat(samples[i].noise);
      if (all.some((d) => generalise(d.path) === at.f)) { index = i; break; }
    }
  }
  const sample = samples[index];
  main.append(el("h1", { text: at.f !== undefined ? `${at.r} · ${at.f}` : `${at.r} · sample` }));
  if (!sample) return main.append(el("p", { text: "No sample of this field is kept (samples are the last mismatches of the route)." }));
  const diffs = sample.mismatches.map((d) => ({ ...d, noise: false })).concat(sample.noise.map((d) => ({ ...d, noise: true })));
  main.append(el("p", {}, `${sample.method} ${sample.target} at ${time(sample.at_unix_ms)} — ${sample.outcome}`));
  main.append(table(["path", "kind", "primary", "shadow", ""], diffs.map((d) => [
    el("code", { class: generalise(d.path) === at.f ? "focus" : "" , text: d.path }), d.kind, d.primary ?? "–", d.shadow ?? "–", d.noise ? "noise" : "mismatch",
  ]), "Differences"));
  const paths = new Set(diffs.map((d) => d.path));
  const sides = [["request", sample.request], ["primary", sample.primary], ["shadow", sample.shadow]];
  if (sample.secondary) sides.push(["secondary", sample.secondary]);
  main.append(el("div", { class: "sides" }, sides.map(([name, m]) => messagePanel(name, m, name === "request" ? new Set() : paths, at.f))));
  const focus = main.querySelector(".answer .focus");
  if (focus && !state.scrolled) { focus.scrollIntoView({ block: "center" }); state.scrolled = true; }
}

function messagePanel(name, m, paths, field) {
  const head = el("div", { class: "head" }, m.status ? `${m.status}` : "", m.headers.map(([k, v]) => el("div", {}, el("span", { class: "hname", text: k + ": " }), v)));
  const body = el("pre", { class: "json" });
  if (paths.has("body")) body.classList.add("diff");
  if (m.body === "") { body.textContent = "(empty)"; return el("section", { class: "answer " + name, "aria-label": name }, el("h2", { text: name }), head, body); }
  renderJson(body, m.body, "", paths, field, 0);
  return el("section", { class: "answer " + name, "aria-label": name }, el("h2", { text: name }), head, body);
}

function renderJson(parent, v, path, paths, field, depth) {
  // Members and elements are marked on their line (below); only the
  // whole body is marked on itself.
  const mark = (node) => {
    if (path === "" && paths.has("")) node.classList.add("diff");
    return node;
  };
  const pad = "  ".repeat(depth);
  if (v === null || typeof v !== "object") {
    parent.append(mark(el("span", { class: "v " + (v === null ? "null" : typeof v), "data-path": path, text: JSON.stringify(v) })));
    return;
  }
  const isArray = Array.isArray(v);
  const wrap = mark(el("span", { "data-path": path }));
  parent.append(wrap);
  const entries = isArray ? v.map((x, i) => [String(i), x]) : Object.entries(v);
  if (!entries.length) { wrap.append(isArray ? "[]" : "{}"); return; }
  wrap.append(isArray ? "[\n" : "{\n");
  entries.forEach(([k, x], i) => {
    const child = path + "/" + k.replace(/~/g, "~0").replace(/\//g, "~1");
    const line = el("span", { "data-path": child });
    if (paths.has(child)) line.classList.add("diff");
    if (field !== undefined && generalise(child) === field) line.classList.add("focus");
    line.append(pad + "  ");
    if (!isArray) line.append(el("span", { class: "k", text: JSON.stringify(k) }), ": ");
    renderJson(line, x, child, paths, field, depth + 1);
    line.append(i + 1 < entries.length ? ",\n" : "\n");
    wrap.append(line);
  });
  wrap.append(pad + (isArray ? "]" : "}"));
}

let timer = null;
function schedule() {
  clearInterval(timer);
  if (document.getElementById("live").checked) timer = setInterval(load, 2000);
}

window.addEventListener("hashchange", () => { state.scrolled = false; render(); document.getElementById("main").focus(); });
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("live").addEventListener("change", schedule);
  load();
  schedule();
});
