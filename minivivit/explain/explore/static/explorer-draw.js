/* minivivit attention explorer, part 2 of 3: drawing on canvases (the map over a frame, the colour bar,
 * the per-head distance grids). Pure functions of their arguments; explorer.js decides what to draw.
 */
"use strict";

/* Pixel -> token lookup of every time slice: Int32Array [H * W] per slice, -1 where no tubelet covers the pixel.
 * Built only from TokenMap's tables: row_cell / col_cell (pixel -> tubelet row / column) and token_grid. */
function mvPixelTokens(tk, H, W) {
  const [gt, gh, gw] = tk.grid;
  const slices = [];
  for (let s = 0; s < gt; s++) {
    const out = new Int32Array(H * W).fill(-1);
    for (let r = 0; r < H; r++) {
      const cr = tk.row_cell[r];
      if (cr < 0) continue;
      for (let c = 0; c < W; c++) {
        const cc = tk.col_cell[c];
        if (cc >= 0) out[r * W + c] = tk.token_grid[(s * gh + cr) * gw + cc];
      }
    }
    slices.push(out);
  }
  return slices;
}

/* A W x H canvas with the map coloured: values [N] (token order), pixTok [H * W], colour range [lo, hi]. */
function mvOverlay(values, pixTok, W, H, lo, hi, lut, log) {
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(W, H);
  const px = img.data;
  for (let p = 0; p < W * H; p++) {
    const tok = pixTok[p];
    if (tok < 0) continue;  // not covered by any tubelet: transparent
    const i = 3 * mvColourIndex(values[tok], lo, hi, log);
    px[4 * p] = lut[i];
    px[4 * p + 1] = lut[i + 1];
    px[4 * p + 2] = lut[i + 2];
    px[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/* Frame image + overlay at `opacity`, scaled by `scale` (nearest: tubelets stay sharp boxes), plus outlines. */
function mvDrawFrame(canvas, image, overlay, scale, opacity, outlines) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (overlay) {
    ctx.globalAlpha = opacity;
    ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
  for (const o of outlines) {  // {box: {r0, r1, c0, c1}, colour, dash, width}
    ctx.save();
    ctx.strokeStyle = o.colour;
    ctx.lineWidth = o.width;
    ctx.setLineDash(o.dash || []);
    const inset = o.width / 2;
    ctx.strokeRect(o.box.c0 * scale + inset, o.box.r0 * scale + inset,
      (o.box.c1 - o.box.c0) * scale - o.width, (o.box.r1 - o.box.r0) * scale - o.width);
    ctx.restore();
  }
}

/* The colour bar: 256 steps of the colour map, with a marker at `mark` (a value) when given. */
function mvDrawColourBar(canvas, lut, lo, hi, mark, log) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  for (let x = 0; x < w; x++) {
    const i = 3 * Math.min(255, Math.floor((x / w) * 256));
    ctx.fillStyle = "rgb(" + lut[i] + "," + lut[i + 1] + "," + lut[i + 2] + ")";
    ctx.fillRect(x, 0, 1, h);
  }
  if (mark !== null && mark !== undefined && hi > lo) {
    const x = Math.max(0, Math.min(w - 1, (mvColourIndex(mark, lo, hi, log) + 0.5) / 256 * w));
    ctx.fillStyle = "#fff";
    ctx.fillRect(x - 2, 0, 4, h);
    ctx.fillStyle = "#000";
    ctx.fillRect(x - 1, 0, 2, h);
  }
}

/* An L x nh grid of per-head numbers (rows: layers, columns: heads), coloured on its own range; the chosen
 * layer/head outlined (head < 0: the whole row, for mean/max). Returns the cell size for hit testing. */
function mvDrawGrid(canvas, grid, lut, layer, head, digits) {
  const L = grid.length, nh = grid[0].length;
  const cell = Math.max(14, Math.min(40, Math.floor(260 / nh)));
  const left = 22, top = 14;
  canvas.width = left + nh * cell + 2;
  canvas.height = top + L * cell + 2;
  const ctx = canvas.getContext("2d");
  let lo = Infinity, hi = -Infinity;
  for (const row of grid) for (const v of row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#444";
  for (let h = 0; h < nh; h++) ctx.fillText(String(h), left + h * cell + cell / 2, top / 2);
  for (let l = 0; l < L; l++) {
    ctx.fillStyle = "#444";
    ctx.fillText(String(l), left / 2, top + l * cell + cell / 2);
    for (let h = 0; h < nh; h++) {
      const i = 3 * mvColourIndex(grid[l][h], lo, hi);
      ctx.fillStyle = "rgb(" + lut[i] + "," + lut[i + 1] + "," + lut[i + 2] + ")";
      ctx.fillRect(left + h * cell, top + l * cell, cell, cell);
      if (cell >= 22) {
        ctx.fillStyle = lut[i] + lut[i + 1] + lut[i + 2] > 380 ? "#000" : "#fff";
        ctx.fillText(grid[l][h].toFixed(digits), left + h * cell + cell / 2, top + l * cell + cell / 2);
      }
    }
  }
  ctx.strokeStyle = "#e8175d";
  ctx.lineWidth = 2;
  if (layer !== null) {
    if (head >= 0) ctx.strokeRect(left + head * cell + 1, top + layer * cell + 1, cell - 2, cell - 2);
    else ctx.strokeRect(left + 1, top + layer * cell + 1, nh * cell - 2, cell - 2);
  }
  return { cell, left, top, lo, hi };
}

/* The k patch tokens (1..N-1) with the largest values, largest first. */
function mvTopTokens(values, k) {
  const top = [];
  for (let t = 1; t < values.length; t++) {
    if (top.length < k || values[t] > values[top[top.length - 1]]) {
      top.push(t);
      top.sort((a, b) => values[b] - values[a] || a - b);
      if (top.length > k) top.pop();
    }
  }
  return top;
}

/* 0.00123 -> "1.230e-3"; 0.25 -> "0.2500". */
function mvFormat(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  if (v === 0) return "0";
  return Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(4) : v.toExponential(3);
}
