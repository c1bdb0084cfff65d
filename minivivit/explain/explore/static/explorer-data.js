/* minivivit attention explorer, part 1 of 3: colour maps, the embedded arrays, the data providers.
 *
 * The same three scripts render the offline HTML file and the notebook widget. The page never
 * computes attention and never maps tokens to pixels by formula: minivivit (Python) ships the maps
 * and the lookup tables of explain.TokenMap; this code only decodes and draws them.
 *
 * A data provider answers two questions:
 *   cls(method, target, layer, head)        -> Float32Array [N]: the CLS row (always in the payload)
 *   row(method, target, layer, head, query) -> Promise of {values [N], source, bound} or {missing: text}
 * In the file, rows come from the embedded 8-bit full maps; in the widget, from the Python kernel.
 */
"use strict";

// matplotlib's colour maps, 256 entries of RRGGBB: matplotlib.colormaps[name](np.arange(256), bytes=True).
// Both are perceptually uniform and readable with the common colour-vision deficiencies.
const MV_COLORMAPS = {
  viridis: "44015444025544035745055845065a45085b46095c460b5e460c5f460e61470f6247116347126547146647156747166947186a48196b481a6c481c6e481d6f481e70482071482172482273482374472575472676472777472878472a79472b7a472c7b462d7c462f7c46307d46317e45327f45347f453580453681443781443982433a83433b83433c84423d84423e854240854141864142864043874044873f45873f47883e48883e49893d4a893d4b893d4c893c4d8a3c4e8a3b508a3b518a3a528b3a538b39548b39558b38568b38578c37588c37598c365a8c365b8c355c8c355d8c345e8d345f8d33608d33618d32628d32638d31648d31658d31668d30678d30688d2f698d2f6a8d2e6b8e2e6c8e2e6d8e2d6e8e2d6f8e2c708e2c718e2c728e2b738e2b748e2a758e2a768e2a778e29788e29798e287a8e287a8e287b8e277c8e277d8e277e8e267f8e26808e26818e25828e25838d24848d24858d24868d23878d23888d23898d22898d228a8d228b8d218c8d218d8c218e8c208f8c20908c20918c1f928c1f938b1f948b1f958b1f968b1e978a1e988a1e998a1e998a1e9a891e9b891e9c891e9d881e9e881e9f881ea0871fa1871fa2861fa38620a48520a58521a68521a78422a78423a88323a98224aa8225ab8126ac8127ad8028ae7f29af7f2ab07e2bb17d2cb17d2eb27c2fb37b30b47a32b57a33b67935b77836b87738b97639b9763bba753dbb743ebc7340bd7242be7144be7045bf6f47c06e49c16d4bc26c4dc26b4fc36951c46853c56755c66657c66559c7645bc8625ec96160c96062ca5f64cb5d67cc5c69cc5b6bcd596dce5870ce5672cf5574d05477d05279d1517cd24f7ed24e81d34c83d34b86d44988d5478bd5468dd64490d64392d74195d73f97d83e9ad83c9dd93a9fd938a2da37a5da35a7db33aadb32addc30afdc2eb2dd2cb5dd2bb7dd29bade27bdde26bfdf24c2df22c5df21c7e01fcae01ecde01dcfe11cd2e11bd4e11ad7e219dae218dce218dfe318e1e318e4e318e7e419e9e419ece41aeee51bf1e51cf3e51ef6e61ff8e621fae622fde724",
  cividis: "00224d00234f00235000245200255400265500265700275900285b00285c00295e002a60002a62002b64002c66002c67002d69002e6b002f6d002f6f0030700030700031700031700432700833700b33700e347011356f14366f16366f18376f1a386f1c386e1d396e1f3a6e213b6e223b6e243c6e253d6d273d6d283e6d2a3f6d2b3f6d2c406d2e416c2f426c30426c31436c32446c34446c35456c36466c37466c38476c39486c3a486b3b496b3d4a6b3e4b6b3f4b6b404c6b414d6b424d6b434e6b444f6b454f6b46506b47516b48516b49526b4a536b4b546c4c546c4d556c4e566c4e566c4f576c50586c51586c52596c535a6c545a6c555b6d565c6d575d6d585d6d595e6d595f6d5a5f6d5b606e5c616e5d616e5e626e5f636e60646e61646f61656f62666f63666f64676f656870666970676970686a70686b71696b716a6c716b6d716c6d726d6e726e6f726e70736f70737071737172737273747373747474757475757575757676767777767878767978777979777a7a777b7b777c7b787d7c787e7d787f7d78807e78817f788280788380788481788582788583788683788784788885788986788a86788b87788c88788d89788e89788f8a77908b77918c77928c77938d77948e77958f77968f779790769891769992769a93769b93769c94769d95759e96759f9675a09775a19874a29974a39a74a49a74a59b73a69c73a79d73a89e73a99e72aa9f72aba072aca171ada271aea271afa370b0a470b1a570b2a66fb3a66fb4a76fb5a86eb6a96eb7aa6db8ab6db9ab6dbaac6cbbad6cbcae6bbdaf6bbeb06abfb06ac1b169c2b269c3b368c4b468c5b567c6b567c7b666c8b765c9b865cab964cbba64ccbb63cdbc62cebc62cfbd61d0be60d2bf60d3c05fd4c15ed5c25ed6c35dd7c35cd8c45bd9c55adac65adbc759dcc858dec957dfca56e0cb55e1cc54e2cc53e3cd52e4ce51e5cf50e6d04fe8d14ee9d24dead34cebd44becd54aedd648eed747efd846f1d944f2da43f3da42f4db40f5dc3ff6dd3df8de3bf9df3afae038fbe136fde234fde333fde534fde636fde737",
};

function mvLut(name) {
  const hex = MV_COLORMAPS[name] || MV_COLORMAPS.viridis;
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256 * 3; i++) lut[i] = parseInt(hex.substr(2 * i, 2), 16);
  return lut;
}

/* The colour index of value v on the scale [lo, hi], as matplotlib's Colormap does: floor(x * 256), clipped.
 * log: x = (log10 v - log10 lo) / (log10 hi - log10 lo), with lo > 0 (values <= 0 get the lowest colour). */
function mvColourIndex(v, lo, hi, log) {
  let x;
  if (log) x = v > 0 && hi > lo ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v > 0 ? 0.5 : 0);
  else x = hi > lo ? (v - lo) / (hi - lo) : 0.5;
  return Math.max(0, Math.min(255, Math.floor(x * 256)));
}

// ---- arrays travel as base64 blobs: {dtype, shape, b64} inline or {dtype, shape, blob: element id} -------------

const MV_ARRAY_TYPES = { f32: Float32Array, u8: Uint8Array, i32: Int32Array };
const mvTextCache = new Map();

function mvBlobText(ref) {
  if (ref.b64 !== undefined) return ref.b64;
  if (!mvTextCache.has(ref.blob)) {
    const node = document.getElementById(ref.blob);
    if (!node) throw new Error("the page lost its data element " + ref.blob);
    mvTextCache.set(ref.blob, node.textContent.trim());
  }
  return mvTextCache.get(ref.blob);
}

function mvDecodeBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/* The whole array (decoded once, then cached on the reference). */
function mvArray(ref) {
  if (!ref._array) {
    const bytes = mvDecodeBase64(mvBlobText(ref));
    ref._array = new MV_ARRAY_TYPES[ref.dtype](bytes.buffer, 0, bytes.length / MV_ARRAY_TYPES[ref.dtype].BYTES_PER_ELEMENT);
  }
  return ref._array;
}

/* Bytes [start, start + length) of a blob, decoding only that slice of the base64 text (a row of a big map). */
function mvBlobBytes(ref, start, length) {
  const text = mvBlobText(ref);
  const first = Math.floor(start / 3), last = Math.ceil((start + length) / 3);  // 3-byte groups = 4 characters
  const bytes = mvDecodeBase64(text.substring(4 * first, 4 * last));
  return bytes.subarray(start - 3 * first, start - 3 * first + length);
}

// ---- providers ------------------------------------------------------------------------------------------------

function mvMethod(data, id) {
  const m = data.methods.find((x) => x.id === id);
  if (!m) throw new Error("no method " + id);
  return m;
}

/* CLS rows: the float32 blob [L, heads, N] of a method and target, sliced (exact: what minivivit computed). */
function mvClsRow(data, method, target, layer, head) {
  const m = mvMethod(data, method);
  const ref = m.cls[target] || m.cls["*"];
  const arr = mvArray(ref);
  const [, H, N] = ref.shape;
  return arr.subarray((layer * H + head) * N, (layer * H + head + 1) * N);
}

function mvEmbeddedProvider(data) {
  const N = data.tokens.num_tokens;
  return {
    kind: "embedded",
    cls: (method, target, layer, head) => mvClsRow(data, method, target, layer, head),
    row(method, target, layer, head, query) {
      const m = mvMethod(data, method);
      const unit = m.full[layer + ":" + head];
      if (!unit) {
        const have = Object.keys(m.full).map((k) => k.split(":")).map(([l, h]) => "layer " + l + " " + m.heads[+h]);
        return Promise.resolve({ missing: "this file has no full map of " + m.label + ", " + m.layer_label + " " + layer +
          ", head " + m.heads[head] + (have.length ? " (it has: " + have.join("; ") + ")" : " (it has no full maps)") + ". " +
          (data.budget ? data.budget.how : "") });
      }
      const codes = mvBlobBytes(unit.q, query * N, N);
      const scale = mvArray(unit.scale)[query];
      const step = scale / 255;  // value = code * (row max / 255), as minivivit.explore.maps.dequantise
      const values = new Float64Array(N);
      for (let i = 0; i < N; i++) values[i] = codes[i] * step;
      return Promise.resolve({ values, source: "embedded 8-bit map", bound: scale / 510 });
    },
  };
}

/* Rows computed by the Python kernel (the notebook widget): request(msg) -> Promise of {values} or {error}. */
function mvKernelProvider(data, request) {
  return {
    kind: "kernel",
    cls: (method, target, layer, head) => mvClsRow(data, method, target, layer, head),
    async row(method, target, layer, head, query) {
      const reply = await request({ method, target, layer, head, query });
      if (reply.error) return { missing: reply.error };
      return { values: Float64Array.from(reply.values), source: "computed by the kernel (float32)", bound: 0 };
    },
  };
}
