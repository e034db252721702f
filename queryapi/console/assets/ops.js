// The Operations panel of the console: GET /v1/ops every three seconds,
// shown as a chart of the users coming online and going offline per
// second over the last minute (inline SVG, with a text alternative), the
// gateways with their leases, and the partitions of the state topics with
// their checkpoints, lag, rebuilds and the processor that holds each.

import { api, el } from "./console.js";

const $ = (id) => document.getElementById(id);
const refreshMs = 3000;
const svgNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

const time = (t) => new Date(t).toLocaleTimeString();

// drawChart draws two polylines, online and offline per second, over a
// scale of the minute's peak, and says the same in words.
function drawChart(seconds) {
  const chart = $("chart");
  const w = 600, h = 120, pad = 4;
  const peak = Math.max(1, ...seconds.map((s) => Math.max(s.online, s.offline)));
  const x = (i) => seconds.length > 1 ? (i * w) / (seconds.length - 1) : 0;
  const y = (v) => h - pad - (v * (h - 2 * pad)) / peak;
  const line = (key, color) => svg("polyline", {
    points: seconds.map((s, i) => x(i).toFixed(1) + "," + y(s[key]).toFixed(1)).join(" "),
    fill: "none", stroke: color, "stroke-width": 2, "vector-effect": "non-scaling-stroke",
  });
  const keep = [...chart.children].filter((c) => c.tagName === "title" || c.tagName === "desc");
  chart.replaceChildren(...keep,
    svg("line", { x1: 0, x2: w, y1: y(peak), y2: y(peak), stroke: "#d0d7de", "stroke-dasharray": "4 4" }),
    line("online", "#1a7f37"), line("offline", "#cf222e"));
  const on = seconds.reduce((n, s) => n + s.online, 0), off = seconds.reduce((n, s) => n + s.offline, 0);
  const text = on + " users came online and " + off + " went offline in the last minute; the busiest second had " +
    Math.max(0, ...seconds.map((s) => Math.max(s.online, s.offline))) + " (the top dashed line is " + peak + " per second).";
  $("chart-desc").textContent = text;
  $("chart-text").textContent = text;
}

function cell(v, num) { return el("td", num ? { className: "num" } : {}, v === null || v === undefined ? "—" : String(v)); }

function drawGateways(gateways, truncated) {
  const rows = gateways.map((g) => el("tr", { className: g.expired ? "expired" : "", dataset: { gateway: g.gateway } },
    el("th", { scope: "row" }, g.gateway), cell(g.epoch), cell(time(g.heartbeat)), cell(time(g.expires)),
    cell(g.expired ? "lease expired" : "alive")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "note" }, "No gateway has sent a heartbeat.")));
  if (truncated) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "note" }, "More gateways than read in time: the list is partial.")));
  $("gateways").tBodies[0].replaceChildren(...rows);
}

function drawPartitions(partitions) {
  $("partitions").tBodies[0].replaceChildren(...partitions.map((p) =>
    el("tr", { className: p.lag > 0 || p.rebuilding ? "lagging" : "", dataset: { topic: p.topic, partition: p.partition } },
      el("th", { scope: "row" }, p.topic), cell(p.partition, true), cell(p.checkpoint ?? "not built", true), cell(p.end, true),
      cell(p.lag, true), cell(p.rebuilding ? "yes, " + p.checkpoint + " of " + p.rebuild_target : "no"),
      cell(p.processor || "none"))));
}

async function refresh() {
  try {
    const ops = await api("GET", "/v1/ops");
    drawChart(ops.transitions);
    drawGateways(ops.gateways, ops.gateways_truncated);
    drawPartitions(ops.partitions);
    $("ops-note").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    $("ops-note").className = "note";
  } catch (err) {
    $("ops-note").textContent = "Cannot read the operations view: " + err.message;
    $("ops-note").className = "note error";
  }
}

refresh();
setInterval(refresh, refreshMs);
