/* minivivit attention explorer, part 3 of 3: the view and its controls.
 *
 *   api = mountExplorer(element, payload, {standalone: true})       the offline file
 *   api = mountExplorer(element, payload, {request: (msg) => ...})  the notebook widget (rows from Python)
 *
 * What is drawn is readable back (tests, and anyone curious): api.drawn() gives the values [N] on the
 * screen, the colour range and the state; element.dataset.state mirrors the state as JSON.
 */
"use strict";

const MV_KEYS = [
  ["\u2190 / \u2192", "previous / next frame"],
  ["\u2191 / \u2193", "next / previous layer"],
  ["h / H", "next / previous head (0-9: head by number)"],
  ["m", "next method"],
  ["space", "play / pause"],
  ["Esc", "query back to CLS"],
];

function mvEl(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

function mountExplorer(root, data, options) {
  options = options || {};
  const provider = data.provider === "kernel" ? mvKernelProvider(data, options.request) : mvEmbeddedProvider(data);
  const tk = data.tokens;
  const N = tk.num_tokens, L = data.layers, NH = data.heads;
  const T = data.frames.count, H = data.frames.height, W = data.frames.width;
  const pixTok = mvPixelTokens(tk, H, W);
  const scale = Math.max(1, Math.floor(448 / Math.max(W, H)));
  const sliceFirstFrame = [];
  tk.frame_slice.forEach((s, f) => { if (s >= 0 && sliceFirstFrame[s] === undefined) sliceFirstFrame[s] = f; });

  const box = (k) => { const b = tk.boxes.slice((k - 1) * 6, k * 6); return { f0: b[0], f1: b[1], r0: b[2], r1: b[3], c0: b[4], c1: b[5] }; };
  const coords = (k) => tk.coords.slice((k - 1) * 3, k * 3);
  const tokenAt = (f, r, c) => (tk.frame_slice[f] < 0 || r < 0 || c < 0 || r >= H || c >= W ? -1 : pixTok[tk.frame_slice[f]][r * W + c]);
  const method = () => data.methods.find((m) => m.id === state.method);
  const describeToken = (k) => {
    const [t, y, x] = coords(k), b = box(k);
    return "token " + k + " (t=" + t + ", y=" + y + ", x=" + x + "): frames " + b.f0 + "\u2013" + (b.f1 - 1) +
      ", rows " + b.r0 + "\u2013" + (b.r1 - 1) + ", cols " + b.c0 + "\u2013" + (b.c1 - 1);
  };

  const first = data.methods[0];
  const state = { method: first.id, layer: L - 1, head: Math.max(0, first.heads.indexOf("mean")), target: first.targets[0],
    frame: 0, query: null, opacity: 0.6, cmap: "viridis", log: false, playing: false };
  let lut = mvLut(state.cmap);
  let shown = { values: null, lo: 0, hi: 1, source: "", bound: 0, missing: null, status: "loading", top: [] };
  let overlays = [];
  let hover = null;  // {token, frame}
  let timer = null, serial = 0;
  const timings = { update: null, row: null, frame: null };

  // ---- the DOM -------------------------------------------------------------------------------------------
  root.classList.add("mv-explorer");
  root.tabIndex = 0;
  root.textContent = "";
  const $ = {};
  $.method = mvEl("select", { "aria-label": "method" });
  data.methods.forEach((m) => $.method.appendChild(mvEl("option", { value: m.id, text: m.label })));
  $.layer = mvEl("input", { type: "range", min: 0, max: L - 1, step: 1, "aria-label": "layer" });
  $.layerText = mvEl("span", { class: "mv-value" });
  $.heads = mvEl("span", { class: "mv-heads", role: "group", "aria-label": "head" });
  $.target = mvEl("select", { "aria-label": "target class" });
  $.frame = mvEl("input", { type: "range", min: 0, max: T - 1, step: 1, "aria-label": "frame" });
  $.frameText = mvEl("span", { class: "mv-value" });
  $.play = mvEl("button", { type: "button", text: "\u25B6 play", "aria-label": "play or pause" });
  $.opacity = mvEl("input", { type: "range", min: 0, max: 1, step: 0.05, value: state.opacity, "aria-label": "map opacity" });
  $.cmap = mvEl("select", { "aria-label": "colour map" });
  ["viridis", "cividis"].forEach((n) => $.cmap.appendChild(mvEl("option", { value: n, text: n })));
  $.log = mvEl("select", { "aria-label": "colour scale" });
  [["linear", "linear"], ["log", "log10"]].forEach(([v, t]) => $.log.appendChild(mvEl("option", { value: v, text: t })));
  $.cls = mvEl("button", { type: "button", text: "query: CLS", title: "show the CLS token's row (Esc)" });
  const control = (label, ...els) => mvEl("label", { class: "mv-control" }, [mvEl("span", { class: "mv-label", text: label }), ...els]);
  const controls = mvEl("div", { class: "mv-controls" }, [
    control("method", $.method), control("layer", $.layer, $.layerText), control("head", $.heads),
    control("target class", $.target), control("frame", $.frame, $.frameText, $.play),
    control("opacity", $.opacity), control("colours", $.cmap, $.log), $.cls]);

  $.main = mvEl("canvas", { class: "mv-main", width: W * scale, height: H * scale, "aria-label": "frame with the map; click a tubelet to query it" });
  $.readout = mvEl("div", { class: "mv-readout", "aria-live": "polite" });
  $.status = mvEl("div", { class: "mv-status", role: "status" });
  $.bar = mvEl("canvas", { class: "mv-bar", width: 256, height: 14 });
  $.barLo = mvEl("span");
  $.barHi = mvEl("span");
  $.barLabel = mvEl("div", { class: "mv-bar-label" });
  $.query = mvEl("div", { class: "mv-query" });
  $.pred = mvEl("div", { class: "mv-pred" });
  $.space = mvEl("canvas", { class: "mv-grid" });
  $.time = mvEl("canvas", { class: "mv-grid" });
  $.gridText = mvEl("div", { class: "mv-readout" });
  const side = mvEl("div", { class: "mv-side" }, [
    $.pred, $.query,
    mvEl("div", { class: "mv-scale" }, [$.barLabel, $.bar, mvEl("div", { class: "mv-bar-ticks" }, [$.barLo, $.barHi])]),
    mvEl("div", { class: "mv-grids" }, [
      mvEl("div", {}, [mvEl("div", { class: "mv-label", text: "mean attention distance, space (px)" }), $.space]),
      mvEl("div", {}, [mvEl("div", { class: "mv-label", text: "mean attention distance, time (frames)" }), $.time])]),
    $.gridText]);
  $.strip = mvEl("div", { class: "mv-strip", role: "group", "aria-label": "time slices" });
  const stripCanvases = [];
  for (let s = 0; s < tk.grid[0]; s++) {
    const c = mvEl("canvas", { width: W, height: H, "data-slice": s });
    const f0 = sliceFirstFrame[s], f1 = tk.frame_slice.lastIndexOf(s);
    stripCanvases.push(c);
    $.strip.appendChild(mvEl("figure", {}, [c, mvEl("figcaption", { text: "t=" + s + " \u00b7 frames " + f0 + "\u2013" + f1 })]));
  }
  $.about = mvEl("details", { class: "mv-about" });
  const b = data.budget;
  const note = mvEl("div", { class: "mv-note", text: !b ? "Clicked rows are computed on demand by the Python kernel." :
    "Full maps in this file (what a click on a tubelet can show): " + (b.included.length ? b.included.join("; ") : "none") + "." +
    (b.left_out.length ? " Some were left out to keep the file under " + (b.limit / 1e6).toFixed(1) + " MB: see \u201cwhat is in this file\u201d below for what and how to include them." : "") });
  root.append(mvEl("div", { class: "mv-title", text: data.title }), controls, note,
    mvEl("div", { class: "mv-body" }, [mvEl("div", { class: "mv-view" }, [$.main, $.readout, $.status]), side]),
    $.strip, $.about);

  // ---- frames (decoded before the first draw) ----------------------------------------------------------------
  const images = data.frames.images.map((b64) => { const im = new Image(); im.src = "data:" + data.frames.mime + ";base64," + b64; return im; });
  const framesReady = Promise.all(images.map((im) => im.decode()));

  // ---- what to show ------------------------------------------------------------------------------------------
  function fillMenus() {
    const m = method();
    $.heads.textContent = "";
    m.heads.forEach((name, i) => {
      const b = mvEl("button", { type: "button", text: name, "aria-pressed": String(i === state.head) });
      b.addEventListener("click", () => set({ head: i }));
      $.heads.appendChild(b);
    });
    $.target.textContent = "";
    const pred = data.prediction;
    if (m.class_specific) {
      m.targets.forEach((t) => $.target.appendChild(mvEl("option", { value: t, text: pred ? pred.labels[+t] : t })));
      $.target.value = state.target;
      $.target.disabled = false;
    } else {
      $.target.appendChild(mvEl("option", { value: "*", text: pred ? "any (predicted: " + pred.labels[pred.predicted] + ")" : "any" }));
      $.target.disabled = true;
      $.target.title = m.label + " does not depend on the class";
    }
  }

  async function update() {
    const my = ++serial, t0 = performance.now();
    let result;
    if (state.query === null) {
      result = { values: provider.cls(state.method, state.target, state.layer, state.head), source: "exact float32", bound: 0 };
    } else {
      shown.status = "pending";
      publish();
      $.status.textContent = "computing the row of " + describeToken(state.query) + "\u2026";
      result = await provider.row(state.method, state.target, state.layer, state.head, state.query);
      if (my !== serial) return;  // a newer request took over
      timings.row = performance.now() - t0;
    }
    if (result.missing) {
      shown = { values: null, lo: 0, hi: 1, source: "", bound: 0, missing: result.missing, status: "missing", top: [] };
    } else {
      shown = { values: result.values, source: result.source, bound: result.bound, missing: null, status: "ready",
        top: mvTopTokens(result.values, 3) };
      colourRange();
    }
    overlays = [];
    drawAll();
    timings.update = performance.now() - t0;
  }

  /* Colours span the min-max over the patch tokens (log: from the smallest positive value). */
  function colourRange() {
    let lo = Infinity, hi = -Infinity, pos = Infinity;
    const v = shown.values;
    for (let k = 1; k < N; k++) { lo = Math.min(lo, v[k]); hi = Math.max(hi, v[k]); if (v[k] > 0) pos = Math.min(pos, v[k]); }
    shown.lo = state.log ? (pos < Infinity ? pos : 1) : lo;
    shown.hi = hi;
  }

  function overlay(s) {
    if (!shown.values) return null;
    if (!overlays[s]) overlays[s] = mvOverlay(shown.values, pixTok[s], W, H, shown.lo, shown.hi, lut, state.log);
    return overlays[s];
  }

  function outlinesFor(f, sc) {
    const out = [];
    if (hover && hover.token > 0 && box(hover.token).f0 <= f && f < box(hover.token).f1)
      out.push({ box: box(hover.token), colour: "#fff", dash: [3, 3], width: Math.max(1, sc / 2) });
    if (state.query !== null && box(state.query).f0 <= f && f < box(state.query).f1)
      out.push({ box: box(state.query), colour: "#e8175d", width: Math.max(1.5, sc) });
    return out;
  }

  function drawMain() {
    const t0 = performance.now();
    const s = tk.frame_slice[state.frame];
    mvDrawFrame($.main, images[state.frame], s >= 0 ? overlay(s) : null, scale, state.opacity, outlinesFor(state.frame, scale));
    stripCanvases.forEach((c, i) => c.parentNode.classList.toggle("mv-current", i === s));
    $.frameText.textContent = state.frame + " / " + (T - 1) + (s >= 0 ? " (t=" + s + ")" : " (no tubelet)");
    timings.frame = performance.now() - t0;
  }

  function drawStrip() {
    stripCanvases.forEach((c, s) => mvDrawFrame(c, images[sliceFirstFrame[s]], overlay(s), 1, state.opacity, outlinesFor(sliceFirstFrame[s], 1)));
  }

  function drawSide() {
    const m = method();
    const pred = data.prediction;
    $.pred.textContent = "";
    if (pred) {
      $.pred.appendChild(mvEl("div", { class: "mv-label", text: "prediction (top " + pred.top.length + ")" }));
      const ol = mvEl("ol");
      pred.top.forEach((i) => ol.appendChild(mvEl("li", { class: i === pred.predicted ? "mv-predicted" : "",
        text: pred.labels[i] + " \u2014 " + (100 * pred.probs[i]).toFixed(1) + "%" })));
      $.pred.appendChild(ol);
    }
    const head = m.heads[state.head];
    const where = m.label + ", " + m.layer_label + " " + state.layer + ", head " + head;
    const v = shown.values;
    $.query.textContent = "";
    $.query.appendChild(mvEl("div", { text: state.query === null
      ? "query: CLS (token 0) \u2014 where the classification token looks. " + where + ". Click a tubelet to query it."
      : "query: " + describeToken(state.query) + ". " + where + "." +
        (v ? " To CLS: " + mvFormat(v[0]) + "; to itself: " + mvFormat(v[state.query]) + "." : "") }));
    if (v) {
      const ol = mvEl("ol", { class: "mv-top" });
      shown.top.forEach((k) => ol.appendChild(mvEl("li", { text: describeToken(k) + ": " + mvFormat(v[k]) })));
      $.query.append(mvEl("div", { class: "mv-label", text: "strongest keys" }), ol);
    }
    $.barLabel.textContent = m.value_label + (v ? " \u2014 colours span the " + (state.log ? "log10 of the smallest positive value" : "min") +
      "\u2013max over the " + (N - 1) + " patch tokens; CLS key: " + mvFormat(v[0]) : "");
    $.barLo.textContent = v ? mvFormat(shown.lo) : "";
    $.barHi.textContent = v ? mvFormat(shown.hi) : "";
    mvDrawColourBar($.bar, lut, shown.lo, shown.hi, hover && hover.token > 0 && v ? v[hover.token] : null, state.log);
    const rawHead = state.method === "raw" && /^\d+$/.test(head) ? +head : -1;
    const sel = state.method === "raw" ? state.layer : null;
    $.spaceGeom = mvDrawGrid($.space, data.distance.space, lut, sel, rawHead, 0);
    $.timeGeom = mvDrawGrid($.time, data.distance.time, lut, sel, rawHead, 1);
    $.status.textContent = shown.missing ? shown.missing : (shown.source ? "values: " + shown.source +
      (shown.bound ? " (\u00b1 " + mvFormat(shown.bound) + " at most)" : "") : "");
    $.status.classList.toggle("mv-missing", !!shown.missing);
  }

  function drawControls() {
    const m = method();
    $.method.value = state.method;
    $.layer.value = state.layer;
    $.layerText.textContent = m.layer_label + " " + state.layer + " / " + (L - 1);
    [...$.heads.children].forEach((b, i) => b.setAttribute("aria-pressed", String(i === state.head)));
    $.frame.value = state.frame;
    $.cls.disabled = state.query === null;
    $.play.textContent = state.playing ? "\u23F8 pause" : "\u25B6 play";
  }

  function drawAll() {
    drawControls();
    drawMain();
    drawStrip();
    drawSide();
    publish();
  }

  function publish() {
    const m = method();
    root.dataset.state = JSON.stringify({ method: state.method, layer: state.layer, head: m.heads[state.head],
      target: state.target, frame: state.frame, query: state.query, status: shown.status });
    root.dataset.status = shown.status;
  }

  function aboutText() {
    const d = $.about;
    d.textContent = "";
    d.appendChild(mvEl("summary", { text: "what is shown, what is in this file, keys" }));
    const list = mvEl("ul");
    const li = (t) => list.appendChild(mvEl("li", { text: t }));
    data.methods.forEach((m) => li(m.label + ": " + m.description));
    li("Tubelets are drawn as the boxes of pixels they cover (" + tk.tubelet.join(" x ") + " frames x rows x cols; grid " +
      tk.grid.join(" x ") + " = " + (N - 1) + " patch tokens + CLS). Frames: " + data.frames.note + ".");
    li("Mean attention distance (ViT paper, fig. 7, split into space and time): for every patch query, the expected " +
      "distance to the patch keys it attends to (CLS left out), averaged over queries; one cell per layer and head. " +
      "Click a cell to show that layer and head.");
    li("CLS rows are exact (float32). Full maps: 8 bits per entry, " + data.quantisation.rule + "; " + data.quantisation.bound + ".");
    if (data.budget) {
      li("Size budget " + (data.budget.limit / 1e6).toFixed(1) + " MB. Full maps in this file (click a tubelet to see its " +
        "row): " + (data.budget.included.length ? data.budget.included.join("; ") : "none, only CLS rows") + ".");
      if (data.budget.left_out.length) li("Left out: " + data.budget.left_out.join("; ") + ". " + data.budget.how);
    } else {
      li("Rows of a clicked tubelet are computed on demand by the Python kernel (capture.recompute_attention).");
    }
    li("Model: " + data.model);
    d.appendChild(list);
    const keys = mvEl("table", { class: "mv-keys" });
    MV_KEYS.forEach(([k, what]) => keys.appendChild(mvEl("tr", {}, [mvEl("td", {}, [mvEl("kbd", { text: k })]), mvEl("td", { text: what })])));
    d.appendChild(keys);
  }

  // ---- changes ---------------------------------------------------------------------------------------------
  function set(changes) {
    const before = { ...state };
    Object.assign(state, changes);
    if (changes.method !== undefined && changes.method !== before.method) {
      const m = method(), name = data.methods.find((x) => x.id === before.method).heads[before.head];
      if (changes.head === undefined) state.head = m.heads.includes(name) ? m.heads.indexOf(name) : Math.max(0, m.heads.indexOf("mean"));
      state.target = m.targets.includes(before.target) ? before.target : m.targets[0];
      fillMenus();
    }
    state.layer = Math.max(0, Math.min(L - 1, state.layer));
    state.head = Math.max(0, Math.min(method().heads.length - 1, state.head));
    state.frame = ((state.frame % T) + T) % T;
    if (changes.cmap !== undefined) { lut = mvLut(state.cmap); overlays = []; }
    if (changes.log !== undefined && shown.values) { colourRange(); overlays = []; }
    const recompute = ["method", "layer", "head", "target", "query"].some((k) => state[k] !== before[k]);
    if (recompute) return update();
    if (changes.cmap !== undefined || changes.opacity !== undefined || changes.log !== undefined) drawAll();
    else { drawControls(); drawMain(); publish(); }
    return Promise.resolve();
  }

  function play(on) {
    state.playing = on;
    clearInterval(timer);
    if (on) timer = setInterval(() => set({ frame: state.frame + 1 }), 250);
    drawControls();
  }

  function pointerToken(ev, canvas, frame) {
    const rect = canvas.getBoundingClientRect();
    const r = Math.floor(((ev.clientY - rect.top) / rect.height) * H), c = Math.floor(((ev.clientX - rect.left) / rect.width) * W);
    return tokenAt(frame, r, c);
  }

  function showHover(token, frame) {
    hover = token > 0 ? { token, frame } : null;
    if (hover && shown.values) {
      $.readout.textContent = describeToken(token) + " \u2014 value " + mvFormat(shown.values[token]) +
        (shown.bound ? " \u00b1 " + mvFormat(shown.bound) : "");
    } else $.readout.textContent = hover ? describeToken(token) : "";
    drawMain();
    drawStrip();
    mvDrawColourBar($.bar, lut, shown.lo, shown.hi, hover && shown.values ? shown.values[token] : null, state.log);
  }

  $.method.addEventListener("change", () => set({ method: $.method.value }));
  $.layer.addEventListener("input", () => set({ layer: +$.layer.value }));
  $.target.addEventListener("change", () => set({ target: $.target.value }));
  $.frame.addEventListener("input", () => set({ frame: +$.frame.value }));
  $.play.addEventListener("click", () => play(!state.playing));
  $.opacity.addEventListener("input", () => set({ opacity: +$.opacity.value }));
  $.cmap.addEventListener("change", () => set({ cmap: $.cmap.value }));
  $.log.addEventListener("change", () => set({ log: $.log.value === "log" }));
  $.cls.addEventListener("click", () => set({ query: null }));
  $.main.addEventListener("mousemove", (ev) => showHover(pointerToken(ev, $.main, state.frame), state.frame));
  $.main.addEventListener("mouseleave", () => showHover(-1, state.frame));
  $.main.addEventListener("click", (ev) => { const k = pointerToken(ev, $.main, state.frame); if (k > 0) set({ query: k }); });
  stripCanvases.forEach((c, s) => {
    c.addEventListener("mousemove", (ev) => showHover(pointerToken(ev, c, sliceFirstFrame[s]), sliceFirstFrame[s]));
    c.addEventListener("mouseleave", () => showHover(-1, state.frame));
    c.addEventListener("click", (ev) => {
      const k = pointerToken(ev, c, sliceFirstFrame[s]);
      if (k > 0) set({ query: k, frame: sliceFirstFrame[s] });
    });
  });
  [[$.space, () => $.spaceGeom, "space", " px"], [$.time, () => $.timeGeom, "time", " frames"]].forEach(([canvas, geom, key, unit]) => {
    const cellAt = (ev) => {
      const g = geom(), rect = canvas.getBoundingClientRect();
      const x = (ev.clientX - rect.left) * (canvas.width / rect.width), y = (ev.clientY - rect.top) * (canvas.height / rect.height);
      const h = Math.floor((x - g.left) / g.cell), l = Math.floor((y - g.top) / g.cell);
      return l >= 0 && l < L && h >= 0 && h < NH ? [l, h] : null;
    };
    canvas.addEventListener("mousemove", (ev) => {
      const at = cellAt(ev);
      $.gridText.textContent = at ? "layer " + at[0] + ", head " + at[1] + ": " + key + " distance " +
        data.distance[key][at[0]][at[1]].toFixed(2) + unit + " (space " + data.distance.space[at[0]][at[1]].toFixed(1) +
        " px, time " + data.distance.time[at[0]][at[1]].toFixed(2) + " frames, share on CLS " +
        data.distance.cls_share[at[0]][at[1]].toFixed(3) + ")" : "";
    });
    canvas.addEventListener("click", (ev) => { const at = cellAt(ev); if (at) set({ method: "raw", layer: at[0], head: at[1] }); });
  });

  function onKey(ev) {
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const m = method(), nheads = m.heads.length;
    const actions = {
      ArrowLeft: () => set({ frame: state.frame - 1 }), ArrowRight: () => set({ frame: state.frame + 1 }),
      ArrowUp: () => set({ layer: Math.min(L - 1, state.layer + 1) }), ArrowDown: () => set({ layer: Math.max(0, state.layer - 1) }),
      h: () => set({ head: (state.head + 1) % nheads }), H: () => set({ head: (state.head + nheads - 1) % nheads }),
      m: () => set({ method: data.methods[(data.methods.indexOf(m) + 1) % data.methods.length].id }),
      " ": () => play(!state.playing), Escape: () => set({ query: null }),
    };
    if (/^[0-9]$/.test(ev.key) && m.heads.indexOf(ev.key) >= 0) actions[ev.key] = () => set({ head: m.heads.indexOf(ev.key) });
    if (actions[ev.key]) { ev.preventDefault(); actions[ev.key](); }
  }
  (options.standalone ? document : root).addEventListener("keydown", onKey);

  fillMenus();
  aboutText();
  const ready = framesReady.then(() => update()).then(() => { if (options.standalone) root.focus(); });

  return {
    ready,
    timings,
    set,
    state: () => ({ ...state, headName: method().heads[state.head] }),
    drawn: () => ({ values: shown.values ? Array.from(shown.values) : null, lo: shown.lo, hi: shown.hi, log: state.log, source: shown.source,
      bound: shown.bound, missing: shown.missing, status: shown.status, method: state.method, layer: state.layer,
      head: method().heads[state.head], target: state.target, query: state.query, frame: state.frame }),
    /* RGBA on the main canvas at the centre of frame pixel (row, col). */
    pixel: (row, col) => Array.from($.main.getContext("2d").getImageData(col * scale + (scale >> 1), row * scale + (scale >> 1), 1, 1).data),
    /* Where frame pixel (row, col) is on the screen (client coordinates), e.g. to click it. */
    screenPoint: (row, col) => { const r = $.main.getBoundingClientRect(); return { x: r.left + (col + 0.5) * (r.width / W), y: r.top + (row + 0.5) * (r.height / H) }; },
    tokenAt,
    destroy: () => { clearInterval(timer); (options.standalone ? document : root).removeEventListener("keydown", onKey); root.textContent = ""; },
  };
}
