// The workerd console: the status table, a chart of the last hour per program, a program's
// output on click, and the actions when the daemon has a console_token. It talks only to
// the daemon that served it: /api/status, /api/history, /api/logs, /api/stream (SSE).
// Every request carries the console token in an Authorization header, kept in this tab's
// sessionStorage (asked for once per tab): never a cookie, which any other server on the
// same host would be sent whatever its port, and never a URL. So the stream is read with
// fetch, not EventSource, which cannot send a header.
"use strict";

const HOUR = 3600;
const SVG = "http://www.w3.org/2000/svg";
const W = 900, H = 140, PAD = 28;
const series = {};          // name -> {points: [[t, depth, desired, running]], marks: [[t, kind, text]]}
const TOKEN = "workerd-token";
let actions = false;
let lastStatus = null;

function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || ["polyline", "line", "text", "title", "g"].includes(tag)
    ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "-";
  return (bytes / 1048576).toFixed(1) + "MiB";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return seconds.toFixed(1) + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + Math.floor(seconds % 60) + "s";
  return Math.floor(seconds / 3600) + "h" + Math.floor(seconds % 3600 / 60) + "m";
}

function renderStatus(status) {
  lastStatus = status;
  document.getElementById("daemon").textContent =
    `pid ${status.daemon.pid}, up ${duration(status.daemon.uptime)}, version ${status.daemon.version}`;
  const body = document.querySelector("#status tbody");
  const summary = document.getElementById("summary");
  body.replaceChildren();
  summary.replaceChildren();
  for (const program of status.programs) {
    for (const p of program.processes) {
      const name = el("a", {"data-logs": program.name}, program.name);
      name.addEventListener("click", () => openLogs(program.name));
      body.append(el("tr", {"data-program": program.name, "data-instance": String(p.instance)},
        el("td", {class: "program"}, name),
        el("td", {}, String(p.instance) + (p.outgoing ? " old" : "")),
        el("td", {}, p.pid === null ? "-" : String(p.pid)),
        el("td", {class: "state-" + p.state}, p.state),
        el("td", {}, duration(p.uptime)),
        el("td", {}, String(p.restarts)),
        el("td", {}, p.last_limit || p.last_exit || "-"),
        el("td", {}, size(p.rss)), el("td", {}, size(p.pss)),
        el("td", {}, p.cpu_percent === null || p.cpu_percent === undefined ? "-" : String(p.cpu_percent))));
    }
    const auto = program.autoscale;
    const line = `${program.name}: ${program.running}/${program.desired} running` +
      (auto ? ` (autoscale ${auto.source}: depth ${auto.depth ?? "?"}, desired ${auto.desired} in ` +
        `[${auto.min}, ${auto.max}]${auto.error ? ", error: " + auto.error : ""})` : "");
    const item = el("li", {"data-program": program.name}, line);
    if (actions) item.append(" ", ...controls(program.name));
    summary.append(item);
  }
}

function controls(name) {
  const buttons = ["restart", "stop", "start"].map(action => {
    const button = el("button", {"data-action": action}, action);
    button.addEventListener("click", () => act(name, action, {}));
    return button;
  });
  const count = el("input", {class: "count", type: "text", placeholder: "N|auto", "aria-label": "count"});
  const scale = el("button", {"data-action": "scale"}, "scale");
  scale.addEventListener("click", () => {
    const value = count.value.trim();
    act(name, "scale", {count: value === "auto" ? "auto" : Number(value)});
  });
  return [...buttons, count, scale];
}

// The token from the form, once it is sent; every request that was refused waits for the same one.
let asking = null;
function askToken(message) {
  const form = document.getElementById("login");
  document.getElementById("login-why").textContent = message;
  form.hidden = false;
  form.querySelector("input").focus();
  asking ??= new Promise(resolve => form.addEventListener("submit", event => {
    event.preventDefault();
    const input = form.querySelector("input");
    sessionStorage.setItem(TOKEN, input.value);
    input.value = "";
    form.hidden = true;
    asking = null;
    resolve();
  }, {once: true}));
  return asking;
}

// fetch with the token; a 401 asks for the token and tries again.
async function api(path, options = {}) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN);
    const headers = {...options.headers, ...(token ? {"Authorization": "Bearer " + token} : {})};
    const reply = await fetch(path, {...options, headers});
    if (reply.status !== 401) return reply;
    sessionStorage.removeItem(TOKEN);
    await askToken(token ? "Wrong token (or it was changed): the console token ([daemon] console_token):"
                         : "The console token ([daemon] console_token):");
  }
}

async function act(name, action, body) {
  const reply = await api(`/api/programs/${encodeURIComponent(name)}/${action}`, {
    method: "POST", body: JSON.stringify(body), headers: {"Content-Type": "application/json"},
  });
  const data = await reply.json();
  document.getElementById("mode").textContent = `${action} ${name}: ${data.message || data.error}`;
}

function renderCharts() {
  if (!lastStatus) return;
  const box = document.getElementById("charts");
  const now = Date.now() / 1000;
  for (const program of lastStatus.programs) {
    const name = program.name;
    const data = series[name] || {points: [], marks: []};
    let chart = box.querySelector(`.chart[data-program="${CSS.escape(name)}"]`);
    if (!chart) {
      chart = el("div", {class: "chart", "data-program": name}, el("h3", {}, name));
      box.append(chart);
    }
    chart.querySelector("svg")?.remove();
    chart.append(draw(name, data, now, program.autoscale !== null));
  }
  for (const chart of box.querySelectorAll(".chart")) {
    if (!lastStatus.programs.some(p => p.name === chart.dataset.program)) chart.remove();
  }
}

function draw(name, data, now, autoscaled) {
  const points = data.points.filter(p => p[0] >= now - HOUR);
  const start = points.length ? Math.min(points[0][0], now - 60) : now - 60;
  const x = t => PAD + (t - start) / Math.max(now - start, 1) * (W - 2 * PAD);
  const top = Math.max(1, ...points.flatMap(p => [p[1] ?? 0, p[2], p[3]]));
  const y = v => H - PAD + 10 - v / top * (H - PAD);
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, "data-program": name, "data-points": String(points.length),
                         role: "img", "aria-label": `${name}: the last hour`});
  svg.append(el("line", {class: "axis", x1: PAD, y1: y(0), x2: W - PAD, y2: y(0)}),
             el("text", {x: 2, y: y(top) + 4}, String(top)), el("text", {x: 2, y: y(0)}, "0"),
             el("text", {x: PAD, y: H - 2}, new Date(start * 1000).toLocaleTimeString()),
             el("text", {x: W - PAD - 50, y: H - 2}, new Date(now * 1000).toLocaleTimeString()));
  const lines = [["desired", 2], ["running", 3]];
  if (autoscaled) lines.unshift(["depth", 1]);
  for (const [kind, column] of lines) {
    const kept = points.filter(p => p[column] !== null);
    svg.append(el("polyline", {class: kind, "data-series": kind,
      "data-values": kept.map(p => p[column]).join(","),
      points: kept.map(p => `${x(p[0]).toFixed(1)},${y(p[column]).toFixed(1)}`).join(" ")}));
  }
  for (const [t, kind, text] of data.marks.filter(m => m[0] >= start)) {
    svg.append(el("line", {class: kind, "data-mark": kind, x1: x(t), x2: x(t), y1: y(top), y2: y(0)},
                  el("title", {}, `${new Date(t * 1000).toLocaleTimeString()} ${text}`)));
  }
  return svg;
}

async function openLogs(name) {
  const reply = await api(`/api/logs/${encodeURIComponent(name)}?lines=100`);
  document.getElementById("logs").hidden = false;
  document.getElementById("logs-program").textContent = name;
  document.getElementById("logs-text").textContent = await reply.text();
}

function merge(name, points, marks) {
  const data = series[name] ??= {points: [], marks: []};
  for (const point of points) {
    const last = data.points[data.points.length - 1];
    if (last && Math.floor(last[0]) === Math.floor(point[0])) data.points[data.points.length - 1] = point;
    else if (!last || point[0] > last[0]) data.points.push(point);
  }
  data.marks.push(...marks.filter(m => !data.marks.some(k => k[0] === m[0] && k[2] === m[2])));
  const cut = Date.now() / 1000 - HOUR;
  data.points = data.points.filter(p => p[0] >= cut);
  data.marks = data.marks.filter(m => m[0] >= cut);
}

// One Server-Sent Event: "event: update" and its data lines; keep-alive comments are skipped.
function received(block) {
  const lines = block.split("\n");
  if (!lines.includes("event: update")) return;
  const update = JSON.parse(lines.filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n"));
  for (const [name, points] of Object.entries(update.points)) merge(name, points, update.marks[name] || []);
  renderStatus(update.status);
  renderCharts();
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

// The live stream, read with fetch; reopened after a pause (1 s, doubling to 30 s) when it ends.
async function follow() {
  const live = document.getElementById("live");
  let pause = 1000;
  for (;;) {
    try {
      const reply = await api("/api/stream");
      if (reply.ok) {
        live.textContent = "live";
        live.className = "";
        pause = 1000;
        const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
          buffer += chunk.value;
          for (let end; (end = buffer.indexOf("\n\n")) >= 0; buffer = buffer.slice(end + 2)) {
            received(buffer.slice(0, end));
          }
        }
      }
    } catch (error) {
      // the daemon went away: tried again below
    }
    live.textContent = "reconnecting";
    live.className = "off";
    await new Promise(resolve => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 30000);
  }
}

async function start() {
  const config = await (await api("/api/config")).json();
  actions = config.actions;
  document.getElementById("mode").textContent =
    !config.public ? "Actions are on: restart, stop, start and scale each program below."
    : actions ? "Public: anyone who reaches this address reads it; an action asks for the console token once per tab."
    : "Read-only: the daemon has no [daemon] console_token, so nothing can be changed from here.";
  renderStatus(await (await api("/api/status")).json());
  await Promise.all(lastStatus.programs.map(async program => {
    const history = await (await api(`/api/history/${encodeURIComponent(program.name)}`)).json();
    merge(program.name, history.points, history.marks);
  }));
  renderCharts();
  follow();
}

start();
