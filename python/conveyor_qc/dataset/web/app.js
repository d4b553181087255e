// conveyor-qc label: the page. Plain script, no build step, no dependencies.
// The server (label_server.py) holds the truth: every change is POSTed at once,
// one request after another, and the page shows what the server saved.
"use strict";

const STRIP = 8; // crops shown per object, spread across its frames
const LABELS = ["normal", "anomaly"];

const POLL_MS = 700; // how often the page asks for the new order while the server is working on one

const state = {
  objects: [],        // in the order shown; each {track_id, ..., label (shown), saved (server), pending}
  byId: new Map(),
  current: null,      // track id of the selected object
  filter: false,      // show only unlabelled objects (and the selected one)
  queue: Promise.resolve(),
  canHeat: false,     // the server has a model (--model): /heat/ answers
  heat: false,        // crops shown with the model's heat map over them, and its scores
  scores: new Map(),  // heat url -> {score, label, where} or null (failed), as the server said
  asks: false,        // the server orders the questions and guesses (/api/order)
  order: "passage",   // "active": the most useful question first; "passage": as the objects passed
  questions: null,    // the last /api/order answer shown
  acted: false,       // a label was made on this page (the first order then only reorders what is below)
  poll: null,         // timer of the next /api/order request
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function fmtTime(s) {
  if (s === null || s === undefined) return null;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

function fmtNum(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function spread(list, n) {
  if (list.length <= n) return list;
  const out = [];
  for (let i = 0; i < n; i++) out.push(list[Math.round((i * (list.length - 1)) / (n - 1))]);
  return out;
}

// --- rendering ---------------------------------------------------------------

function card(o) {
  const when = `frames ${o.first_frame}–${o.last_frame}`;
  const t0 = fmtTime(o.start_seconds), t1 = fmtTime(o.end_seconds);
  const [x, y, w, h] = o.box;
  const buttons = LABELS.map((label) =>
    el("button", {
      type: "button", class: `mark ${label}`, "data-label": label, "aria-pressed": "false",
      title: `Mark object ${o.track_id} ${label} (${label[0].toUpperCase()}); again to clear`,
    }, label === "normal" ? "Normal " : "Anomaly ", el("kbd", { text: label[0].toUpperCase() })));
  const strip = el("div", { class: "strip" });
  const crops = spread(o.crops, STRIP);
  if (!crops.length) strip.append(el("p", { class: "nocrops", text: "no crops (never wholly in view)" }));
  for (const url of crops) {
    const frame = parseInt(url.split("/").pop(), 10);
    const heat = heatUrl(url);
    const img = el("img", { src: state.heat ? heat : url, loading: "lazy", decoding: "async", width: 120, height: 120,
                            alt: `object ${o.track_id}, frame ${frame}`, "data-crop": url, "data-heat": heat });
    img.addEventListener("load", () => { if (state.heat && img.dataset.heat === img.getAttribute("src")) loadScore(img); });
    img.addEventListener("error", () => {
      if (state.heat && img.dataset.heat === img.getAttribute("src")) { state.scores.set(heat, null); paintScore(img); }
    });
    strip.append(el("figure", {}, img,
      el("figcaption", {}, el("span", { class: "frame", text: String(frame) }), el("span", { class: "score" }))));
  }
  const predicted = o.predicted && o.predicted !== "unknown"
    ? el("span", { class: "predicted", text: `model: ${o.predicted}${o.score !== null ? ` (${o.score.toFixed(2)})` : ""}` })
    : "";
  const art = el("article", { class: "obj", id: `obj-${o.track_id}`, tabIndex: -1, "data-id": o.track_id,
                              "aria-label": `object ${o.track_id}` },
    el("div", { class: "info" },
      el("h2", {}, el("span", { class: "num", text: `#${o.track_id}` }), el("span", { class: "badge" })),
      el("p", { class: "when", text: t0 !== null ? `${when} (${t0} – ${t1})` : when }),
      el("p", { class: "where", text: `box at ${fmtNum(x)}, ${fmtNum(y)} · ${fmtNum(w)}×${fmtNum(h)} px` }),
      predicted,
      el("p", { class: "guess" }),
      el("p", { class: "flags" }),
      el("div", { class: "buttons", role: "group", "aria-label": "label" }, ...buttons)),
    strip);
  art.addEventListener("click", (e) => {
    const b = e.target.closest("button.mark");
    select(o.track_id, { focus: !b });
    if (b) toggle(o.track_id, b.dataset.label, { advance: false });
  });
  o.node = art;
  return art;
}

function paint(o) {
  const n = o.node;
  n.dataset.label = o.label || "";
  n.classList.toggle("saving", o.pending > 0);
  n.querySelector(".badge").textContent = o.label || "unlabelled";
  for (const b of n.querySelectorAll("button.mark")) b.setAttribute("aria-pressed", String(b.dataset.label === o.label));
  paintGuess(o);
}

function guessOf(o) {
  const q = state.questions;
  return q && q.guesses ? q.guesses[String(o.track_id)] || null : null;
}

// The data-quality checks' flags (dataset/quality.py): crops that would mislead a model.
const FLAG_WORDS = { blurred: "blurred", cut: "cut by the edge", merged: "two objects?", duplicate: "duplicate", exposure: "exposure" };

function paintFlags(o) {
  const box = o.node.querySelector(".flags");
  const q = state.questions;
  const flags = q && q.flags ? q.flags[String(o.track_id)] || {} : {};
  box.replaceChildren(...Object.entries(flags).map(([flag, why]) =>
    el("span", { class: "flag", "data-flag": flag, title: why, text: FLAG_WORDS[flag] || flag })));
  o.node.dataset.flags = Object.keys(flags).join(" ");
}

function paintGuess(o) {
  const box = o.node.querySelector(".guess");
  const g = guessOf(o);
  box.textContent = g ? `model guesses ${g.label} (${g.score.toFixed(2)})` : "";
  box.dataset.guess = g ? g.label : "";
  box.dataset.agrees = g && o.label ? String(g.label === o.label) : "";
}

function paintCounter() {
  const total = state.objects.length;
  const normal = state.objects.filter((o) => o.label === "normal").length;
  const anomaly = state.objects.filter((o) => o.label === "anomaly").length;
  const left = total - normal - anomaly;
  $("counter").textContent = total === 0 ? "no objects"
    : `${left ? `${left} of ${total} left` : `all ${total} labelled`} · ${normal} normal · ${anomaly} anomaly`;
  $("counter").dataset.left = String(left);
}

function visible(o) {
  return !state.filter || o.label === null || o.track_id === state.current;
}

function applyFilter() {
  for (const o of state.objects) o.node.hidden = !visible(o);
  const f = $("filter");
  f.setAttribute("aria-pressed", String(state.filter));
  const shown = state.objects.filter(visible).length;
  $("empty").hidden = shown > 0;
  $("empty").textContent = state.objects.length === 0 ? "This run has no objects."
    : "Every object is labelled. Press F to show them all.";
}

// --- where the model looks ----------------------------------------------------
// With a model (conveyor-qc label --model), each crop can be swapped for the crop with the model's
// heat map over it (/heat/...). Its score comes in the answer's headers: asked for (HEAD, from the
// server's cache) once the picture has loaded, so that only crops in view are ever explained.

function heatUrl(cropUrl) {
  return cropUrl.replace(/^\/crops\//, "/heat/");
}

async function loadScore(img) {
  const url = img.dataset.heat;
  if (!state.scores.has(url)) {
    try {
      const r = await fetch(url, { method: "HEAD", cache: "no-store" });
      if (!r.ok) throw new Error(`the server answered ${r.status}`);
      state.scores.set(url, {
        score: parseFloat(r.headers.get("X-Anomaly-Score")),
        label: r.headers.get("X-Anomaly-Label"),
        where: r.headers.get("X-Anomaly-Map") !== "no",
      });
    } catch {
      state.scores.set(url, null);
    }
  }
  paintScore(img);
}

function paintScore(img) {
  const box = img.parentNode.querySelector(".score");
  const s = state.scores.get(img.dataset.heat);
  box.dataset.label = s ? s.label : "";
  box.textContent = s === undefined ? "" : s === null ? "no map" : `${s.score.toFixed(2)}${s.where ? "" : " (no map)"}`;
  box.title = s === undefined ? "" : s === null ? "the model could not explain this crop"
    : `model: ${s.label}, score ${s.score.toFixed(3)}${s.where ? "" : "; this model says only whether, not where"}`;
}

function toggleHeat() {
  state.heat = !state.heat;
  document.body.classList.toggle("heat", state.heat);
  $("heat").setAttribute("aria-pressed", String(state.heat));
  $("heat-legend").hidden = !state.heat;
  for (const img of document.querySelectorAll(".strip img")) {
    img.src = state.heat ? img.dataset.heat : img.dataset.crop;
    if (state.heat && state.scores.has(img.dataset.heat)) paintScore(img);
  }
}

// --- moving ------------------------------------------------------------------

function select(id, { focus = true } = {}) {
  const prev = state.byId.get(state.current);
  if (prev) { prev.node.classList.remove("current"); prev.node.tabIndex = -1; }
  state.current = id;
  const o = state.byId.get(id);
  if (!o) return;
  applyFilter();
  o.node.classList.add("current");
  o.node.tabIndex = 0;
  if (focus) o.node.focus({ preventScroll: true });
  o.node.scrollIntoView({ block: "nearest" });
}

function neighbour(step) {
  const list = state.objects;
  const i = list.findIndex((o) => o.track_id === state.current);
  for (let j = i + step; j >= 0 && j < list.length; j += step) {
    const o = list[j];
    if (!state.filter || o.label === null) return o.track_id;
  }
  return null;
}

function move(step) {
  const id = neighbour(step);
  if (id !== null) select(id);
  else if (state.filter) applyFilter(); // the selected one may now be hidden... keep it
}

// --- the questions: the order to ask in, and the model's guesses ---------------
// The server retrains the model on a thread of its own after every label (dataset/asking.py) and
// publishes the new order; the page asks for it (/api/order) until it has caught up with the
// labels. A new order never moves what is above the selected object: only the unlabelled objects
// below it are put in the new order, so the next question is always the most useful one.

function rankOf(ask) {
  return new Map(ask.map((id, i) => [id, i]));
}

function reorder(ids) {
  const main = $("objects");
  state.objects = ids.map((id) => state.byId.get(id));
  main.append(...state.objects.map((o) => o.node));
}

function applyOrder({ whole = false } = {}) {
  if (state.order === "passage") {
    reorder([...state.byId.keys()].sort((a, b) => a - b));
  } else {
    const q = state.questions;
    if (!q || q.state === "reading" || !q.ask.length) return;
    const rank = rankOf(q.ask);
    const list = state.objects;
    const cut = whole ? 0 : list.findIndex((o) => o.track_id === state.current) + 1;
    const head = list.slice(0, cut), tail = list.slice(cut);
    const asked = (o) => o.label === null && rank.has(o.track_id);
    const done = whole ? tail.filter((o) => !asked(o)).sort((a, b) => a.track_id - b.track_id) : [];
    const askedNow = tail.filter(asked).sort((a, b) => rank.get(a.track_id) - rank.get(b.track_id));
    const rest = whole ? [] : tail.filter((o) => !asked(o));
    reorder([...head, ...done, ...askedNow, ...rest].map((o) => o.track_id));
    if (whole && askedNow.length) { select(askedNow[0].track_id); return; }
  }
  const cur = state.byId.get(state.current);
  if (cur) cur.node.scrollIntoView({ block: "nearest" });
}

function paintModel() {
  const q = state.questions, box = $("model");
  if (!q) return;
  box.hidden = false;
  box.replaceChildren();
  const n = (k) => q.need[k] || 0;
  if (q.state === "reading") {
    box.textContent = `Reading the objects' crops to order them: ${q.read} of ${q.objects}…`;
  } else if (q.state === "failed" && !q.ask.length) {
    box.textContent = q.error;
  } else if (q.basis === "unusual") {
    const missing = ["normal", "anomaly"].filter((k) => n(k) > 0).map((k) => `${n(k)} more ${k}`).join(" and ");
    box.textContent = `${q.labelled} labels. The model learns once it has ${missing}; until then the most unusual objects come first.`;
  } else {
    const quality = q.quality === null ? "not yet measurable"
      : `anomaly F1 about ${q.quality.toFixed(2)}`;
    box.append(`${q.labelled} labels. The model, retrained on them, guesses every object; its estimated quality: `,
      el("span", { class: "quality", text: quality }),
      " (cross-validated on your labels).");
  }
  if (q.state === "failed" && q.ask.length) box.append(` ${q.error}`);
  const flagged = q.flags ? Object.keys(q.flags).length : 0;
  if (flagged) {
    box.append(" ", el("span", { class: "flagged",
      text: `${flagged} object${flagged > 1 ? "s" : ""} flagged (blurred, cut, two in one box, duplicate, exposure): `
        + "label them as they are; `dataset --flagged exclude` leaves their crops out." }));
  }
  box.dataset.basis = q.state === "ready" ? q.basis : q.state;
  box.dataset.labelled = String(q.labelled);
}

function schedulePoll(ms = POLL_MS) {
  if (!state.asks) return;
  clearTimeout(state.poll);
  state.poll = setTimeout(pollOrder, ms);
}

async function pollOrder() {
  let q;
  try {
    const r = await fetch("/api/order", { cache: "no-store" });
    if (!r.ok) throw new Error(`the server answered ${r.status}`);
    q = await r.json();
  } catch {
    schedulePoll(3 * POLL_MS); // the server may be restarting; the labels are safe either way
    return;
  }
  const old = state.questions;
  if (!old || q.version !== old.version || q.state !== old.state || q.read !== old.read) {
    const first = q.state !== "reading" && (!old || old.state === "reading");
    state.questions = q;
    paintModel();
    for (const o of state.objects) { paintGuess(o); paintFlags(o); }
    $("accept-key").hidden = !Object.keys(q.guesses).length;
    if (q.state !== "reading") applyOrder({ whole: first && !state.acted });
    document.body.dataset.orderVersion = String(q.version);
  }
  // more to come: the crops still being read, labels not yet in the order, the quality checks running
  if (q.state === "reading" || q.pending || (q.state === "ready" && q.flags === null)) schedulePoll();
}

function toggleOrder() {
  if (!state.asks) return;
  state.order = state.order === "active" ? "passage" : "active";
  $("order").setAttribute("aria-pressed", String(state.order === "active"));
  document.body.dataset.order = state.order;
  applyOrder();
}

function acceptGuess(id) {
  const o = state.byId.get(id);
  const g = o && guessOf(o);
  if (g && o.label !== g.label) toggle(id, g.label, { advance: true });
  else if (g) select(neighbour(1) ?? id);
}

// --- saving ------------------------------------------------------------------

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function status(text) {
  $("status").textContent = text;
}

function save(id, label) {
  const o = state.byId.get(id);
  o.label = label;
  o.pending += 1;
  paint(o);
  paintCounter();
  status(`saving #${id}…`);
  state.queue = state.queue.then(async () => {
    try {
      const r = await fetch(`/api/labels/${id}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.error || `the server answered ${r.status}`);
      o.saved = body.label;
      schedulePoll(50); // the server retrains now; its new order follows shortly
      showError("");
      status(`saved #${id}: ${body.label || "unlabelled"}`);
    } catch (err) {
      const why = err instanceof TypeError ? "the server does not answer (is `conveyor-qc label` still running?)" : err.message;
      showError(`Object #${id} not saved: ${why}. It shows its last saved label.`);
      status("");
      o.label = o.saved;
    } finally {
      o.pending -= 1;
      if (o.pending === 0) o.label = o.saved;
      paint(o);
      paintCounter();
    }
  });
}

function toggle(id, label, { advance }) {
  const o = state.byId.get(id);
  if (!o) return;
  if (o.label === label) { save(id, null); return; }
  const next = advance ? neighbour(1) : null;
  state.acted = true;
  save(id, label);
  if (next !== null) select(next);
  else applyFilter();
}

// --- keys --------------------------------------------------------------------

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest && e.target.closest("input, textarea, select")) return;
  const id = state.current;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  switch (key) {
    case "n": if (id !== null) toggle(id, "normal", { advance: true }); break;
    case "a": if (id !== null) toggle(id, "anomaly", { advance: true }); break;
    case "u": case "Backspace": case "Delete":
      if (id !== null && state.byId.get(id).label !== null) save(id, null); break;
    case "ArrowDown": case "ArrowRight": case "j": move(1); break;
    case "ArrowUp": case "ArrowLeft": case "k": move(-1); break;
    case "Home": if (state.objects.length) select(state.objects[0].track_id); break;
    case "End": if (state.objects.length) select(state.objects[state.objects.length - 1].track_id); break;
    case "f": toggleFilter(); break;
    case "o": if (!state.asks) return; toggleOrder(); break;
    case "Enter": // on a focused button, Enter presses that button instead
      if (id === null || !state.asks || (e.target.closest && e.target.closest("button"))) return;
      acceptGuess(id); break;
    case "h": if (!state.canHeat) return; toggleHeat(); break;
    default: return;
  }
  e.preventDefault();
}

function toggleFilter() {
  state.filter = !state.filter;
  const cur = state.byId.get(state.current);
  if (state.filter && cur && cur.label !== null) {
    const next = neighbour(1) ?? neighbour(-1);
    if (next !== null) { select(next); return; }
  }
  applyFilter();
  if (cur) cur.node.scrollIntoView({ block: "nearest" });
}

// --- start -------------------------------------------------------------------

async function start() {
  let data;
  try {
    const r = await fetch("/api/objects", { cache: "no-store" });
    if (!r.ok) throw new Error(`the server answered ${r.status}`);
    data = await r.json();
  } catch (err) {
    $("counter").textContent = "";
    showError(`Cannot load the objects: ${err.message}. Is \`conveyor-qc label\` running?`);
    return;
  }
  $("run").textContent = data.run;
  $("labels-file").textContent = data.labels_file;
  document.title = `${data.run} · conveyor-qc label`;
  if (data.warnings.length) {
    const box = $("warnings");
    box.querySelector("summary").textContent = `${data.warnings.length} warning${data.warnings.length > 1 ? "s" : ""} about this run`;
    box.querySelector("ul").append(...data.warnings.map((w) => el("li", { text: w })));
    box.hidden = false;
  }
  const main = $("objects");
  for (const o of data.objects) {
    o.saved = o.label;
    o.pending = 0;
    state.objects.push(o);
    state.byId.set(o.track_id, o);
    main.append(card(o));
    paint(o);
  }
  paintCounter();
  $("filter").addEventListener("click", () => { toggleFilter(); $("filter").blur(); });
  state.canHeat = data.heat === true;
  $("heat").hidden = $("heat-key").hidden = !state.canHeat;
  $("heat").addEventListener("click", () => { toggleHeat(); $("heat").blur(); });
  state.asks = data.asks === true;
  state.order = state.asks ? data.order : "passage";
  $("order").hidden = $("order-key").hidden = !state.asks;
  $("order").setAttribute("aria-pressed", String(state.order === "active"));
  $("order").addEventListener("click", () => { toggleOrder(); $("order").blur(); });
  document.body.dataset.order = state.order;
  document.addEventListener("keydown", onKey);
  const first = state.objects.find((o) => o.label === null) || state.objects[0];
  if (first) select(first.track_id);
  else applyFilter();
  document.body.dataset.ready = "1";
  if (state.asks) pollOrder();
}

start();
