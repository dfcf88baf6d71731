"""The explorer's HTML page: the data as JSON in the page and a small hand-written canvas viewer (no library, no
CDN, nothing fetched), so that the file opens offline in any browser."""

from __future__ import annotations

__all__ = ["render_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 10px 18px; background: #1f3b5c; color: white; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; font-size: 13px; opacity: 0.85; }
main { padding: 0 18px 40px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
#mapbox { display: flex; gap: 14px; align-items: flex-start; }
#map { border: 1px solid #ccc; background: #fbfbfb; cursor: crosshair; }
#info { width: 300px; min-height: 200px; border: 1px solid #ddd; padding: 8px; font-size: 13px; }
#info td { vertical-align: top; overflow-wrap: anywhere; }
#legend { margin: 4px 0 8px; font-size: 13px; max-width: 1080px; }
#legend .key { display: inline-block; margin-right: 12px; white-space: nowrap; }
#legend .key i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
#info img, .thumb img { image-rendering: pixelated; }
.thumb img { width: 100%; height: 100%; object-fit: contain; }
#info img { width: 144px; height: 144px; object-fit: contain; background: #eee; display: block; }
.controls { margin: 8px 0; font-size: 14px; }
.note { color: #a15c00; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 4px; padding: 6px; width: 300px; font-size: 12px; }
.card h3 { margin: 0 0 4px; font-size: 13px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 2px; margin-top: 4px; }
.thumb { width: 48px; height: 48px; background: #eee; display: flex; align-items: center; justify-content: center;
  overflow: hidden; font-size: 8px; line-height: 9px; }
.thumb.text { width: 96px; height: 60px; align-items: flex-start; padding: 2px; box-sizing: border-box; }
.thumb.far { outline: 2px solid #e69f00; }
.bar { display: inline-block; height: 10px; background: #4472c4; vertical-align: middle; }
.bar.cur { background: #e69f00; }
table.counts { border-collapse: collapse; font-size: 12px; }
table.counts td, table.counts th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
"""

_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("curata-data").textContent);
const P = D.points, N = P.x.length;
const PALETTE = ["#4e79a7","#f28e2b","#e15759","#76b7b2","#59a14f","#edc948","#b07aa1","#ff9da7","#9c755f",
  "#bab0ac","#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const labelName = v => (D.names && v !== null && v !== undefined) ? D.names[v] : String(v);

function sampleView(idx, extraClass) {
  const view = D.samples[String(idx)];
  if (view === undefined) return `<div class="thumb ${extraClass || ""}" title="sample ${idx}">${idx}</div>`;
  if (D.kind === "image")
    return `<div class="thumb ${extraClass || ""}" title="sample ${idx}"><img alt="sample ${idx}" src="${view}"></div>`;
  return `<div class="thumb text ${extraClass || ""}" title="${esc(view)}">${esc(view)}</div>`;
}

// ---- the map: a canvas with zoom (wheel), pan (drag), hover and click
const canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
const W = canvas.width, H = canvas.height, PAD = 12;
let scale = 1, offX = 0, offY = 0, pinned = -1, hovered = -1, colourBy = D.colour;
function screen(i) {
  return [PAD + (P.x[i] * (W - 2 * PAD)) * scale + offX, PAD + ((1 - P.y[i]) * (H - 2 * PAD)) * scale + offY];
}
function colourOf(i) {
  if (colourBy.startsWith("cluster")) { const l = P.levels[+colourBy.slice(7)]; return PALETTE[l[i] % 20]; }
  if (colourBy === "label") return PALETTE[P.label[i] % 20];
  if (colourBy === "curated") return P.curated[i] ? "#e15759" : "#c8c8c8";
  if (colourBy === "selected") return P.selected[i] ? "#59a14f" : "#c8c8c8";
  if (colourBy === "split") return P.split[i] < 0 ? "#c8c8c8" : PALETTE[P.split[i] % 20];
  return "#4e79a7";
}
let grid = new Map(), drawn = 0;
const CELL = 12;
function draw() {
  ctx.clearRect(0, 0, W, H);
  grid = new Map(); drawn = 0;
  for (let i = 0; i < N; i++) {
    const [sx, sy] = screen(i);
    if (sx < -4 || sy < -4 || sx > W + 4 || sy > H + 4) continue;
    ctx.fillStyle = colourOf(i);
    ctx.fillRect(sx - 2, sy - 2, 4, 4);
    drawn++;
    const key = Math.floor(sx / CELL) + "," + Math.floor(sy / CELL);
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(i);
  }
  for (const i of [hovered, pinned]) {
    if (i < 0) continue;
    const [sx, sy] = screen(i);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.strokeRect(sx - 5, sy - 5, 10, 10);
  }
  window.curataExplorer.drawn = drawn;
}
function nearest(mx, my) {
  let best = -1, bestD = 64;
  const cx = Math.floor(mx / CELL), cy = Math.floor(my / CELL);
  for (let gx = cx - 1; gx <= cx + 1; gx++) for (let gy = cy - 1; gy <= cy + 1; gy++) {
    for (const i of grid.get(gx + "," + gy) || []) {
      const [sx, sy] = screen(i), d = (sx - mx) ** 2 + (sy - my) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
  }
  return best;
}
function showInfo(i) {
  const box = document.getElementById("info");
  if (i < 0) { box.innerHTML = "Hover over a point to see its sample; click to pin it."; return; }
  const rows = [["row", P.row[i]], ["sample id", P.idx[i]]];
  if (P.file) rows.push(["file", D.filePrefix + P.file[i]]);
  if (P.label) rows.push(["label", labelName(P.label[i])]);
  P.levels.forEach((l, t) => rows.push([`cluster, level ${t + 1}`, l[i]]));
  if (P.curated) rows.push(["curated", P.curated[i] ? "yes" : "no"]);
  if (P.selected) rows.push(["selected", P.selected[i] ? "yes" : "no"]);
  if (P.split) rows.push(["split", P.split[i] < 0 ? "none" : D.splitNames[P.split[i]]]);
  if (P.group && P.group[i] >= 0) rows.push(["duplicate group", P.group[i]]);
  const view = D.samples[String(P.idx[i])];
  let picture = "";
  if (view !== undefined) picture = D.kind === "image" ? `<img id="info-image" alt="sample" src="${view}">`
    : `<p id="info-text">${esc(view)}</p>`;
  else picture = `<p class="note">${D.kind ? "no thumbnail for this point (over max_thumbnails)" : esc(D.why)}</p>`;
  box.innerHTML = picture + "<table>" + rows.map(r => `<tr><td>${esc(r[0])}</td><td>${esc(r[1])}</td></tr>`).join("")
    + "</table>";
}
let dragging = null;
canvas.addEventListener("mousemove", e => {
  const r = canvas.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  if (dragging) { offX += mx - dragging[0]; offY += my - dragging[1]; dragging = [mx, my]; draw(); return; }
  const i = nearest(mx, my);
  if (i !== hovered) { hovered = i; if (pinned < 0) showInfo(i); draw(); }
});
canvas.addEventListener("mousedown", e => {
  const r = canvas.getBoundingClientRect();
  dragging = [e.clientX - r.left, e.clientY - r.top]; canvas.dataset.moved = "0";
});
window.addEventListener("mouseup", () => { dragging = null; });
canvas.addEventListener("click", e => {
  const r = canvas.getBoundingClientRect(), i = nearest(e.clientX - r.left, e.clientY - r.top);
  pinned = i; showInfo(i); draw();
});
canvas.addEventListener("wheel", e => {
  e.preventDefault();
  const r = canvas.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  const f = e.deltaY < 0 ? 1.25 : 0.8;
  offX = mx - (mx - offX) * f; offY = my - (my - offY) * f; scale *= f; draw();
}, {passive: false});

const select = document.getElementById("colour");
P.levels.forEach((_, t) => select.add(new Option(`cluster, level ${t + 1}`, "cluster" + t)));
if (P.label) select.add(new Option("label", "label"));
if (P.curated) select.add(new Option("curated", "curated"));
if (P.selected) select.add(new Option("selected", "selected"));
if (P.split) select.add(new Option("split", "split"));
if (colourBy !== "none") select.value = colourBy;
// the legend: a key per colour where colours name something (labels, flags, splits), a note for clusters
const LEGEND_KEYS = 40;
function legend() {
  let keys = [], note = "";
  if (colourBy === "label") {
    const values = [...new Set(P.label)].sort((a, b) => a - b);
    keys = values.slice(0, LEGEND_KEYS).map(v => [PALETTE[v % 20], labelName(v)]);
    if (values.length > 20) note = "colours repeat every 20 labels";
    if (values.length > LEGEND_KEYS) note += `; ${values.length - LEGEND_KEYS} more labels not listed`;
  } else if (colourBy === "curated") keys = [["#e15759", "curated"], ["#c8c8c8", "not curated"]];
  else if (colourBy === "selected") keys = [["#59a14f", "selected"], ["#c8c8c8", "not selected"]];
  else if (colourBy === "split") keys = D.splitNames.map((n, k) => [PALETTE[k % 20], n]).concat([["#c8c8c8", "no split"]]);
  else if (colourBy.startsWith("cluster")) {
    const clusters = new Set(P.levels[+colourBy.slice(7)]).size;
    note = `${clusters} clusters on the map` + (clusters > 20 ? "; colours repeat every 20 clusters" : "");
  }
  document.getElementById("legend").innerHTML = keys.map(k =>
    `<span class="key"><i style="background:${k[0]}"></i>${esc(k[1])}</span>`).join("")
    + (note ? `<span class="note">${esc(note)}</span>` : "");
}
select.addEventListener("change", () => { colourBy = select.value; legend(); draw(); });
legend();
document.getElementById("reset").addEventListener("click", () => { scale = 1; offX = 0; offY = 0; draw(); });

// ---- gallery, balance, duplicates, splits, batches
function gallery(level) {
  const g = D.galleries.find(x => x.level === level);
  document.getElementById("gallery-note").textContent =
    `${g.clusters} clusters at level ${level}; the ${g.cards.length} largest shown, each with the samples nearest `
    + "its centre, then a few at random (outlined)";
  document.getElementById("gallery").innerHTML = g.cards.map(c => `<div class="card"><h3>cluster ${c.cluster}
    · ${c.size} rows${c.curated === null ? "" : " · " + c.curated + " curated"}</h3>
    <div>${c.labels.map(l => esc(l[0]) + " " + (100 * l[1]).toFixed(0) + "%").join(", ")}</div>
    <div class="thumbs">${c.nearest.map(i => sampleView(i)).join("")}${c.random.map(i => sampleView(i, "far")).join("")}
    </div></div>`).join("");
}
if (D.galleries.length) {
  const levelSelect = document.getElementById("gallery-level");
  D.galleries.forEach(g => levelSelect.add(new Option(`level ${g.level}`, g.level)));
  levelSelect.addEventListener("change", () => gallery(+levelSelect.value));
  gallery(1);
} else document.getElementById("gallery-section").innerHTML += "<p class='note'>No clusters: pass tree= or cluster the table.</p>";

function section(id, html) { const s = document.getElementById(id); s.hidden = false; s.innerHTML += html; }
if (D.balance) {
  const b = D.balance, most = Math.max(...b.clusters.map(c => Math.max(c[1] / b.pool, c[2] / b.curated)));
  section("balance", `<p>${b.curated} curated of ${b.pool} rows; share of each top-level cluster (largest first):
    pool <span class="bar" style="width:20px"></span> curated <span class="bar cur" style="width:20px"></span></p>
    <table class="counts">` + b.clusters.map(c => `<tr><td>cluster ${c[0]}</td><td>${c[1]}</td><td style="text-align:left">
    <span class="bar" style="width:${(300 * c[1] / b.pool / most).toFixed(1)}px"></span><br>
    <span class="bar cur" style="width:${(300 * c[2] / b.curated / most).toFixed(1)}px"></span></td><td>${c[2]}</td></tr>`)
    .join("") + "</table>");
}
if (D.duplicates.length) {
  section("duplicates", D.duplicates.map(g => `<div class="card"><h3>group ${g.group} · ${g.samples.length} rows</h3>
    <div class="thumbs">${g.samples.map((i, k) => sampleView(i) + `<span>${g.similarity[k].toFixed(3)}</span>`).join("")}
    </div></div>`).join(""));
}
if (D.splits) {
  const s = D.splits;
  section("splits", `<p>${s.names.map((n, k) => esc(n) + ": " + s.sizes[k]).join(", ")} rows. ${esc(s.note)}</p>
    <table class="counts"><tr><th>top cluster</th>${s.names.map(n => `<th>${esc(n)}</th>`).join("")}</tr>`
    + s.clusters.map(c => `<tr><td>${c[0]}</td>${c.slice(1).map(v => `<td>${v}</td>`).join("")}</tr>`).join("")
    + "</table>" + s.pairs.map(p => `<div class="card">${esc(p[0])} ${p[1]} · ${esc(p[2])} ${p[3]} · cosine ${p[4]}
    <div class="thumbs">${sampleView(p[1])}${sampleView(p[3])}</div></div>`).join(""));
}
if (D.batches.length) {
  section("batches", D.batches.map((b, k) => `<div class="card" style="width:420px"><h3>batch ${k} · ${b.size} samples</h3>
    <div class="thumbs">${b.samples.map(i => sampleView(i)).join("")}</div></div>`).join(""));
}
window.curataExplorer = {
  points: N, drawn: 0, screenPosition: i => { const r = canvas.getBoundingClientRect(), [x, y] = screen(i);
    return [r.left + x, r.top + y]; },
};
draw();
showInfo(-1);
"""


def render_page(data_json: str) -> str:
    """The page around ``data_json`` (what ``explore`` computed); ``</`` is escaped so the JSON cannot end the
    script element.

    Example:
        >>> "curata-data" in render_page('{"rows": 0}')
        True
    """
    safe = data_json.replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>curata explorer</title><style>{_STYLE}</style></head>
<body>
<header><h1>curata explorer</h1><p id="summary"></p></header>
<main>
<h2>Map</h2>
<div class="controls">colour by <select id="colour"></select> <button id="reset">reset zoom</button>
 · wheel to zoom, drag to pan, hover or click a point</div>
<div id="legend"></div>
<p class="note" id="why"></p>
<div id="mapbox"><canvas id="map" width="760" height="560"></canvas><div id="info"></div></div>
<section id="gallery-section"><h2>Clusters</h2>
<div class="controls">tree level <select id="gallery-level"></select> <span id="gallery-note"></span></div>
<div class="cards" id="gallery"></div></section>
<section id="balance" hidden><h2>Curated subset against the pool</h2></section>
<section id="duplicates" hidden><h2>Duplicate groups (cosine of centred vectors to the group's first row)</h2></section>
<section id="splits" hidden><h2>Splits</h2></section>
<section id="batches" hidden><h2>The sampler's first batches</h2></section>
</main>
<script id="curata-data" type="application/json">{safe}</script>
<script>
{_SCRIPT}
document.getElementById("summary").textContent = `${{D.rows}} vectors of dimension ${{D.dim}} from ${{D.table}}; `
  + `the map (${{D.method}}) draws ${{N}} of them` + (D.unreadable ? `; ${{D.unreadable}} samples could not be read` : "");
document.getElementById("why").textContent = D.kind ? "" : "No pictures: " + D.why;
</script>
</body></html>
"""
