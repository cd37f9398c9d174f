// muxtrio dashboard: a client of the management API (/v1/management, see docs/management.md).
//
// Invariants: nothing is fetched from anywhere but this origin; no HTML is built from strings (every value goes
// through textContent or an SVG attribute), so nothing a provider, a client or a config file says can run here; the
// management key lives in sessionStorage only and is sent as a bearer token to /v1/management and nowhere else.
"use strict";

(() => {
  const API = "/v1/management";
  const KEY_STORE = "muxtrio.management-key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const params = new URLSearchParams(window.location.search);
  // How often live state is polled (?poll=ms, 500 ms to 60 s); charts, usage and failures follow slower clocks.
  const POLL_MS = clamp(Number(params.get("poll")) || 3000, 500, 60000);
  const TRAFFIC_MS = Math.max(POLL_MS, Math.min(5000, POLL_MS * 4));
  const SLOW_MS = Math.max(POLL_MS, Math.min(15000, POLL_MS * 6));
  const BUCKET_S = 300; // the last hour as twelve five-minute buckets of the usage report
  const BUCKETS = 12;
  const SETTLE_S = 60; // usage rows land after the writer's flush: a closed bucket is re-read for this long
  const FAILURES_SHOWN = 20;
  const LOGS_INSPECTED = 60;

  const $ = (id) => document.getElementById(id);
  const state = {
    key: null,
    timers: [],
    credentialRows: new Map(),
    countdowns: [],
    buckets: new Map(),
    usageOff: false,
    samples: [],
    logSummaries: new Map(),
    configHash: undefined,
  };

  // ------------------------------------------------------------------ helpers
  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const today = new Date();
    const day = date.toDateString() === today.toDateString() ? "" : `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `;
    return day + clock(date);
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function number(value) {
    if (value === null || value === undefined) return "–";
    if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
    if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
    return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  }

  function ms(value) {
    return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
  }

  function setError(id, message) {
    $(id).textContent = message || "";
  }

  // ------------------------------------------------------------------ the API
  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.key}` };
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(API + path, { method: options.method || "GET", headers, body, cache: "no-store" });
    } catch (err) {
      throw new ApiFailure(0, "UNREACHABLE", "the gateway did not answer");
    }
    if (!response.ok) {
      let code = `HTTP_${response.status}`;
      let message = `${response.status} ${response.statusText}`;
      try {
        const error = (await response.json()).error;
        if (error && error.message) {
          code = error.code || code;
          message = error.message;
        }
      } catch (err) {
        // not a management error body: keep the status line
      }
      const failure = new ApiFailure(response.status, code, message);
      if (response.status === 401) loggedOut("The management key was refused.");
      throw failure;
    }
    if (options.raw) return response;
    return (await response.json()).data;
  }

  function describe(err) {
    return err instanceof ApiFailure ? `${err.message}` : String(err);
  }

  // ------------------------------------------------------------------ login
  function showLogin(message) {
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("status-line").textContent = "";
    $("poll-state").textContent = "";
    setError("login-error", message);
    $("login-key").focus();
  }

  function loggedOut(message) {
    stopPolling();
    state.key = null;
    sessionStorage.removeItem(KEY_STORE);
    $("login-key").value = "";
    showLogin(message);
  }

  async function logIn(key) {
    state.key = key;
    try {
      const status = await api("/status");
      sessionStorage.setItem(KEY_STORE, key);
      $("login").hidden = true;
      $("app").hidden = false;
      $("logout").hidden = false;
      $("login-key").value = "";
      setError("login-error", "");
      renderStatus(status);
      startPolling();
    } catch (err) {
      if (err.status === 401) return; // loggedOut() already said so
      state.key = null;
      sessionStorage.removeItem(KEY_STORE);
      if (err.status === 404) {
        showLogin("The management API is off on this gateway: no management key is configured.");
      } else if (err.status === 403) {
        showLogin(`Refused: ${err.message}`);
      } else {
        showLogin(`Cannot log in: ${describe(err)}`);
      }
    }
  }

  // ------------------------------------------------------------------ polling
  function every(ms, task) {
    let running = false;
    const run = async () => {
      if (running || state.key === null) return;
      running = true;
      try {
        await task();
      } finally {
        running = false;
      }
    };
    run();
    state.timers.push(window.setInterval(run, ms));
  }

  function startPolling() {
    stopPolling();
    every(POLL_MS, pollLive);
    every(1000, tickCountdowns);
    every(TRAFFIC_MS, refreshTraffic);
    every(SLOW_MS, refreshUsage);
    every(SLOW_MS, refreshFailures);
  }

  function stopPolling() {
    for (const timer of state.timers) window.clearInterval(timer);
    state.timers = [];
  }

  async function pollLive() {
    try {
      const [status, credentials] = await Promise.all([api("/status"), api("/credentials")]);
      renderStatus(status);
      setError("credentials-error", "");
      renderCredentials(credentials);
      // With --workers N each worker answers with its own view of the pools.
      const worker = credentials.length ? credentials[0].worker : undefined;
      $("credentials-worker").textContent = worker && status.workers > 1 ? `as seen by worker ${worker}` : "";
      $("poll-state").textContent = `updated ${clock(new Date())}`;
      $("poll-state").classList.remove("stale");
      if (status.config_hash !== state.configHash) {
        state.configHash = status.config_hash;
        await refreshConfig();
      }
    } catch (err) {
      setError("credentials-error", describe(err));
      $("poll-state").textContent = `not updated since ${clock(new Date())}: ${describe(err)}`;
      $("poll-state").classList.add("stale");
    }
  }

  // ------------------------------------------------------------------ status and reloads
  function renderStatus(status) {
    const parts = [`v${status.version}`, `up ${duration(status.uptime_seconds)}`];
    parts.push(`${status.workers} worker${status.workers === 1 ? "" : "s"}`);
    if (status.config_hash) parts.push(`config ${String(status.config_hash).slice(0, 12)}`);
    if (status.engines_draining) parts.push(`${status.engines_draining} older config(s) draining`);
    $("status-line").textContent = parts.join(" · ");
    renderReloads(status.reloads || [], status.last_reload_error);
  }

  function renderReloads(reloads, lastError) {
    const body = $("reloads").tBodies[0];
    body.replaceChildren();
    const newestFirst = [...reloads].sort((a, b) => String(b.at).localeCompare(String(a.at)));
    for (const record of newestFirst.slice(0, 8)) {
      const row = document.createElement("tr");
      row.append(
        el("td", when(record.at)),
        el("td", record.trigger),
        el("td", record.result, `reload-result ${record.result}`),
        el("td", (record.changes || []).join(", ") || "–"),
        el("td", (record.needs_restart || []).join(", ") || "–"),
        el("td", record.error || ""),
      );
      body.append(row);
    }
    if (!newestFirst.length) {
      const row = document.createElement("tr");
      const cell = el("td", "no reload yet", "empty");
      cell.colSpan = 6;
      row.append(cell);
      body.append(row);
    }
    setError("config-error", lastError ? `Last reload error: ${lastError}` : "");
  }

  function showReloadResult(record) {
    const target = $("reload-result");
    const parts = [record.result];
    if (record.changes && record.changes.length) parts.push(`changed: ${record.changes.join(", ")}`);
    if (record.needs_restart && record.needs_restart.length) {
      parts.push(`needs restart: ${record.needs_restart.join(", ")}`);
    }
    if (record.error) parts.push(record.error);
    target.textContent = `${clock(new Date())} ${parts.join(" — ")}`;
    target.className = `reload-result ${record.result}`;
  }

  async function reload() {
    const button = $("reload");
    button.disabled = true;
    try {
      const record = await api("/reload", { method: "POST" });
      showReloadResult(record);
    } catch (err) {
      showReloadResult({ result: "rejected", error: describe(err) });
    } finally {
      button.disabled = false;
    }
    await pollLive();
    await refreshConfig();
  }

  async function refreshConfig() {
    try {
      const config = await api("/config");
      $("config-json").textContent = JSON.stringify(config, null, 2);
    } catch (err) {
      setError("config-error", describe(err));
    }
  }

  // ------------------------------------------------------------------ credentials
  function credentialRow(cred) {
    const row = document.createElement("tr");
    row.dataset.label = cred.label;
    const cells = {};
    for (const name of ["label", "provider", "key", "state", "breaker", "inFlight", "counts", "lastError"]) {
      cells[name] = document.createElement("td");
      row.append(cells[name]);
    }
    cells.label.className = "mono";
    cells.key.className = "mono";
    cells.inFlight.className = "num";
    cells.counts.className = "num";
    const actions = el("td", null, "actions");
    const buttons = {};
    for (const action of ["reset", "enable", "disable"]) {
      const button = el("button", action, "small");
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", () => credentialAction(cred.label, action, button));
      buttons[action] = button;
      actions.append(button);
    }
    row.append(actions);
    return { row, cells, buttons };
  }

  function renderCredentials(credentials) {
    const body = $("credentials").tBodies[0];
    const seen = new Set();
    state.countdowns = [];
    const now = performance.now();
    for (const cred of credentials) {
      seen.add(cred.label);
      let entry = state.credentialRows.get(cred.label);
      if (!entry) {
        entry = credentialRow(cred);
        state.credentialRows.set(cred.label, entry);
      }
      body.append(entry.row); // keeps the server's order
      const { row, cells, buttons } = entry;
      cells.label.textContent = cred.label;
      cells.provider.textContent = cred.account ? `${cred.provider} (account)` : cred.provider;
      cells.key.textContent = cred.key || "–";
      cells.breaker.textContent = cred.breaker;
      cells.inFlight.textContent = cred.in_flight;
      cells.counts.textContent = `${cred.successes} / ${cred.failures}`;
      cells.lastError.textContent = cred.last_error_class || "";
      row.classList.toggle("removed", Boolean(cred.removed));
      renderCredentialState(cells.state, cred, now);
      buttons.enable.disabled = !cred.disabled || cred.removed;
      buttons.disable.disabled = cred.disabled || cred.removed;
      buttons.reset.disabled = Boolean(cred.removed);
    }
    for (const [label, entry] of state.credentialRows) {
      if (!seen.has(label)) {
        entry.row.remove();
        state.credentialRows.delete(label);
      }
    }
    if (!credentials.length) {
      setError("credentials-error", "No credentials: the configuration has no providers.");
    }
  }

  function renderCredentialState(cell, cred, now) {
    cell.replaceChildren();
    const cooling = (cred.cooling || []).filter((c) => c.seconds_left > 0);
    const refused = (cred.refused || []).filter((r) => r.seconds_left > 0);
    const modelName = (model) => (!model || model === "*" ? "every model" : model);
    let badge;
    let detail = "";
    const countdown = (word, entries) => {
      const longest = Math.max(...entries.map((e) => e.seconds_left));
      badge = el("span", `${word} ${duration(longest)}`, `state state-${word === "cooling" ? "cooling" : "broken"}`);
      state.countdowns.push({ node: badge, word, deadline: now + longest * 1000 });
    };
    if (cred.removed) {
      badge = el("span", "removed, draining", "state state-removed");
    } else if (cred.retired) {
      badge = el("span", "retired", "state state-removed");
      detail = "the account's token file is gone";
    } else if (cred.disabled) {
      badge = el("span", "disabled", "state state-disabled");
      detail = cred.disabled_reason || "";
    } else if (cred.breaker === "open") {
      badge = el("span", "breaker open", "state state-broken");
    } else if (refused.length) {
      countdown("refused", refused);
      detail = refused
        .map((r) => `${modelName(r.model)}: ${r.status ? `HTTP ${r.status}` : "refused"}` +
          (r.refusals > 1 ? `, ${r.refusals} times` : ""))
        .join("; ");
    } else if (cooling.length) {
      countdown("cooling", cooling);
      detail = cooling.map((c) => `${modelName(c.model)}: ${c.reason || "rate limited"}`).join("; ");
    } else {
      badge = el("span", "ok", "state state-ok");
    }
    cell.dataset.state = badge.textContent.split(" ")[0];
    cell.append(badge);
    if (detail) cell.append(el("span", detail, "detail"));
  }

  function tickCountdowns() {
    const now = performance.now();
    for (const countdown of state.countdowns) {
      const left = (countdown.deadline - now) / 1000;
      countdown.node.textContent = left > 0 ? `${countdown.word} ${duration(left)}` : `${countdown.word}, ending`;
    }
  }

  async function credentialAction(label, action, button) {
    button.disabled = true;
    try {
      const json = action === "disable" ? { reason: "disabled from the dashboard" } : {};
      await api(`/credentials/${encodeURIComponent(label)}/${action}`, { method: "POST", json });
      setError("credentials-error", "");
    } catch (err) {
      setError("credentials-error", `${action} ${label}: ${describe(err)}`);
    }
    await pollLive();
  }

  // ------------------------------------------------------------------ charts
  // A line chart of [{t, v}] (t in seconds, v a number or null for "no data") between xMin and xMax.
  function lineChart(target, points, { xMin, xMax, unit, empty }) {
    const width = 320;
    const height = 140;
    const left = 40;
    const right = 8;
    const top = 10;
    const bottom = 20;
    target.replaceChildren();
    const values = points.filter((p) => p.v !== null && p.v !== undefined);
    const yMax = niceCeiling(Math.max(0, ...values.map((p) => p.v)));
    const x = (t) => left + ((t - xMin) / Math.max(1, xMax - xMin)) * (width - left - right);
    const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
    target.append(
      svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }),
      svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }),
      svg("text", { class: "tick", x: left - 4, y: top + 4, "text-anchor": "end" }, number(yMax)),
      svg("text", { class: "tick", x: left - 4, y: height - bottom, "text-anchor": "end" }, "0"),
    );
    for (const fraction of [0, 0.5, 1]) {
      const t = xMin + fraction * (xMax - xMin);
      const label = fraction === 1 ? "now" : `-${Math.round((xMax - t) / 60)}m`;
      const anchor = fraction === 0 ? "start" : fraction === 1 ? "end" : "middle";
      target.append(svg("text", { class: "tick", x: x(t), y: height - 6, "text-anchor": anchor }, label));
    }
    if (!values.length) {
      target.append(svg("text", { class: "nodata", x: width / 2, y: height / 2, "text-anchor": "middle" }, empty));
      return;
    }
    // Segments of consecutive points with data; a null breaks the line.
    let segment = [];
    const segments = [segment];
    for (const p of points) {
      if (p.v === null || p.v === undefined) {
        if (segment.length) segments.push((segment = []));
      } else {
        segment.push(p);
      }
    }
    for (const part of segments.filter((s) => s.length)) {
      const path = part.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
      const base = y(0).toFixed(1);
      const area = `${path} L${x(part[part.length - 1].t).toFixed(1)},${base} L${x(part[0].t).toFixed(1)},${base} Z`;
      target.append(svg("path", { class: "area", d: area }), svg("path", { class: "line", d: path }));
    }
    for (const p of values) {
      const point = svg("circle", { class: "point", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 });
      point.setAttribute("data-value", String(p.v));
      point.append(svg("title", {}, `${clock(new Date(p.t * 1000))}: ${number(p.v)}${unit}`));
      target.append(point);
    }
  }

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * magnitude) return step * magnitude;
    }
    return 10 * magnitude;
  }

  // ------------------------------------------------------------------ traffic over the last hour
  async function refreshTraffic() {
    if (!state.usageOff) {
      try {
        await refreshBuckets();
        setError("traffic-error", "");
        return;
      } catch (err) {
        if (err.status !== 503) {
          setError("traffic-error", describe(err));
          return;
        }
        state.usageOff = true; // the usage store is off: fall back to this worker's counters
      }
    }
    try {
      await sampleCounters();
      setError("traffic-error", "");
    } catch (err) {
      setError("traffic-error", describe(err));
    }
  }

  async function refreshBuckets() {
    const now = Date.now() / 1000;
    const current = Math.floor(now / BUCKET_S) * BUCKET_S;
    const starts = Array.from({ length: BUCKETS }, (_, i) => current - (BUCKETS - 1 - i) * BUCKET_S);
    const stale = starts.filter((start) => {
      const cached = state.buckets.get(start);
      return !cached || !cached.settled;
    });
    const answers = await Promise.all(
      stale.map((start) => {
        const end = Math.min(start + BUCKET_S, now);
        return api(`/usage?from=${start}&to=${end.toFixed(3)}&group-by=provider`).then((report) => [start, report]);
      }),
    );
    for (const [start, report] of answers) {
      state.buckets.set(start, { summary: report.summary, settled: start + BUCKET_S + SETTLE_S < now });
    }
    for (const start of state.buckets.keys()) {
      if (start < starts[0]) state.buckets.delete(start);
    }
    const points = { requests: [], errors: [], latency: [], ttft: [] };
    for (const start of starts) {
      const summary = state.buckets.get(start).summary;
      // The open bucket's rate is over at least a minute, so its first seconds do not spike.
      const minutes = Math.max(1, (Math.min(start + BUCKET_S, now) - start) / 60);
      const t = Math.min(start + BUCKET_S, now);
      points.requests.push({ t, v: summary.requests / minutes });
      points.errors.push({ t, v: summary.failure_count / minutes });
      points.latency.push({ t, v: summary.requests ? summary.avg_duration_ms : null });
      points.ttft.push({ t, v: summary.requests ? summary.avg_ttft_ms : null });
    }
    $("traffic-source").textContent = "from the usage store, five-minute buckets, all workers";
    drawTraffic(points, starts[0], now, "");
  }

  async function sampleCounters() {
    const snapshot = await api("/metrics");
    const now = Date.now() / 1000;
    const failed = Number(snapshot.failed_attempts || 0);
    state.samples.push({ t: now, requests: Number(snapshot.requests || 0), failed });
    state.samples = state.samples.filter((s) => s.t >= now - 3600);
    const points = { requests: [], errors: [], latency: [], ttft: [] };
    for (let i = 1; i < state.samples.length; i += 1) {
      const before = state.samples[i - 1];
      const after = state.samples[i];
      const minutes = (after.t - before.t) / 60;
      if (minutes <= 0) continue;
      // A counter that went down is another process's (a restart, or another of --workers N): no rate from it.
      if (after.requests < before.requests || after.failed < before.failed) continue;
      const requests = after.requests - before.requests;
      const errors = after.failed - before.failed;
      points.requests.push({ t: after.t, v: requests / minutes });
      points.errors.push({ t: after.t, v: errors / minutes });
    }
    $("traffic-source").textContent =
      "the usage store is off: sampled from this worker's counters since the page opened (errors = failed attempts)";
    drawTraffic(points, now - 3600, now, "latency and TTFT need the usage store");
  }

  function drawTraffic(points, xMin, xMax, missing) {
    const waiting = "waiting for data";
    lineChart($("chart-requests"), points.requests, { xMin, xMax, unit: " req/min", empty: waiting });
    lineChart($("chart-errors"), points.errors, { xMin, xMax, unit: " errors/min", empty: waiting });
    $("chart-errors").classList.add("errors");
    lineChart($("chart-latency"), points.latency, { xMin, xMax, unit: " ms", empty: missing || "no requests" });
    lineChart($("chart-ttft"), points.ttft, { xMin, xMax, unit: " ms", empty: missing || "no streamed requests" });
  }

  // ------------------------------------------------------------------ usage by model / provider / key
  const GROUP_TITLES = { model: "Model", provider: "Provider", key: "Client key" };

  // The report's group value as shown: "-" is what the store groups requests without that value under.
  function groupName(row, group) {
    const value = row[group];
    if (value === null || value === undefined || value === "-") {
      return group === "key" ? "- (no named client key)" : "-";
    }
    return String(value);
  }

  async function refreshUsage() {
    const range = $("usage-range").value;
    const group = $("usage-group").value;
    try {
      const report = await api(`/usage?from=${encodeURIComponent(range)}&group-by=${group}`);
      renderUsage(report, group);
      setError("usage-error", "");
    } catch (err) {
      setError("usage-error", describe(err));
    }
  }

  function renderUsage(report, group) {
    const rows = [...(report[`by_${group}`] || [])].sort((a, b) => b.requests - a.requests);
    const summary = report.summary || {};
    const tokens = summary.tokens || {};
    $("usage-summary").textContent =
      `${summary.requests || 0} requests, ${summary.failure_count || 0} failed, ` +
      `${number(tokens.total)} tokens (${number(tokens.input)} in, ${number(tokens.output)} out)` +
      (report.period ? ` · ${when(report.period.from)} → ${when(report.period.to)}` : "");
    $("usage-group-name").textContent = GROUP_TITLES[group];
    const body = $("usage-table").tBodies[0];
    body.replaceChildren();
    for (const row of rows) {
      const t = row.tokens || {};
      const line = document.createElement("tr");
      line.append(
        el("td", groupName(row, group), "mono"),
        el("td", row.requests, "num"),
        el("td", row.failure_count, "num"),
        el("td", number(t.input), "num"),
        el("td", number(t.output), "num"),
        el("td", number(t.total), "num"),
        el("td", ms(row.avg_duration_ms), "num"),
        el("td", ms(row.avg_ttft_ms), "num"),
      );
      body.append(line);
    }
    if (!rows.length) {
      const line = document.createElement("tr");
      const cell = el("td", "no requests in this range", "empty");
      cell.colSpan = 8;
      line.append(cell);
      body.append(line);
    }
    barChart($("usage-chart"), rows, group);
  }

  // Horizontal bars: requests per group, the failed part in red, total tokens written after the bar.
  function barChart(target, rows, group) {
    const width = Math.max(360, Math.round(target.getBoundingClientRect().width) || 720); // text at its CSS size
    const rowHeight = 22;
    const labelWidth = 180;
    const valueWidth = 140;
    const shown = rows.slice(0, 12);
    const height = Math.max(1, shown.length) * rowHeight + 8;
    target.setAttribute("viewBox", `0 0 ${width} ${height}`);
    target.replaceChildren();
    if (!shown.length) {
      target.append(svg("text", { class: "nodata", x: width / 2, y: 18, "text-anchor": "middle" }, "no data"));
      return;
    }
    const most = Math.max(1, ...shown.map((r) => r.requests));
    const span = width - labelWidth - valueWidth;
    shown.forEach((row, i) => {
      const y = 4 + i * rowHeight;
      const name = groupName(row, group);
      const total = (row.requests / most) * span;
      const failed = (row.failure_count / most) * span;
      target.append(
        svg("text", { class: "label", x: labelWidth - 6, y: y + 14, "text-anchor": "end" }, name.slice(0, 28)),
        svg("rect", { class: "bar", x: labelWidth, y: y + 3, width: Math.max(1, total).toFixed(1), height: 14 }),
      );
      if (failed > 0) {
        target.append(svg("rect", { class: "bar failed", x: labelWidth, y: y + 3, width: failed.toFixed(1), height: 14 }));
      }
      const tokens = row.tokens && row.tokens.total !== null ? `, ${number(row.tokens.total)} tok` : "";
      target.append(svg("text", { class: "value", x: labelWidth + total + 6, y: y + 14 }, `${row.requests} req${tokens}`));
    });
  }

  // ------------------------------------------------------------------ recent failed requests
  async function refreshFailures() {
    let files;
    try {
      files = await api("/request-logs");
    } catch (err) {
      setError("failures-error", describe(err));
      return;
    }
    const recent = files.slice(0, LOGS_INSPECTED);
    const missing = recent.filter((f) => !state.logSummaries.has(f.name));
    const read = await Promise.all(
      missing.map(async (file) => {
        try {
          const response = await api(`/request-logs/${encodeURIComponent(file.name)}`, { raw: true });
          const entry = await response.json();
          return [file.name, summarizeLog(entry, file)];
        } catch (err) {
          return [file.name, null]; // removed by rotation in between, or not a request log: skip it
        }
      }),
    );
    for (const [name, summary] of read) state.logSummaries.set(name, summary);
    const keep = new Set(recent.map((f) => f.name));
    for (const name of state.logSummaries.keys()) if (!keep.has(name)) state.logSummaries.delete(name);
    const failed = recent
      .map((f) => state.logSummaries.get(f.name))
      .filter((s) => s && (s.status >= 400 || s.status === 0 || s.errorClass))
      .slice(0, FAILURES_SHOWN);
    renderFailures(failed);
    setError("failures-error", "");
  }

  function summarizeLog(entry, file) {
    const upstream = Array.isArray(entry.upstream) ? entry.upstream : [];
    const lastAttempt = upstream.length ? upstream[upstream.length - 1] : null;
    return {
      name: file.name,
      time: entry.ts || file.modified,
      requestId: entry.request_id || "",
      path: entry.path || "",
      status: Number(entry.status || 0),
      errorClass: entry.error_class || (lastAttempt && lastAttempt.status >= 400 ? `upstream ${lastAttempt.status}` : ""),
      error: entry.error || "",
    };
  }

  function renderFailures(failed) {
    const body = $("failures").tBodies[0];
    body.replaceChildren();
    for (const item of failed) {
      const row = document.createElement("tr");
      const link = el("a", "download");
      link.href = `${API}/request-logs/${encodeURIComponent(item.name)}`;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        download(item.name);
      });
      const logCell = el("td");
      logCell.append(link);
      row.append(
        el("td", when(item.time)),
        el("td", item.requestId, "mono"),
        el("td", item.path, "mono"),
        el("td", item.status || "–", "num"),
        el("td", item.errorClass || "–"),
        el("td", item.error.length > 160 ? `${item.error.slice(0, 160)}…` : item.error),
        logCell,
      );
      body.append(row);
    }
    if (!failed.length) {
      const row = document.createElement("tr");
      const cell = el("td", "no failed requests in the recent request logs", "empty");
      cell.colSpan = 7;
      row.append(cell);
      body.append(row);
    }
  }

  // The log needs the management key, so it is fetched here and handed to the browser as a file.
  async function download(name) {
    try {
      const response = await api(`/request-logs/${encodeURIComponent(name)}`, { raw: true });
      const url = URL.createObjectURL(await response.blob());
      const anchor = document.createElement("a");
      anchor.href = url;
      anchor.download = name;
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      setError("failures-error", `${name}: ${describe(err)}`);
    }
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("login-key").value.trim();
      if (key) logIn(key);
    });
    $("logout").addEventListener("click", () => loggedOut(""));
    $("reload").addEventListener("click", reload);
    $("usage-form").addEventListener("submit", (event) => {
      event.preventDefault();
      refreshUsage();
    });
    $("usage-range").addEventListener("change", refreshUsage);
    $("usage-group").addEventListener("change", refreshUsage);
    const saved = sessionStorage.getItem(KEY_STORE);
    if (saved) logIn(saved);
    else showLogin("");
  });
})();
