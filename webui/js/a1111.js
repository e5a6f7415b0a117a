// The A1111 "parameters" text sdcpp writes into every PNG (and A1111 itself does), parsed into
// form values: "prompt\nNegative prompt: ...\nSteps: 20, Sampler: euler_a, CFG scale: 7, ..."

const KEYS = {
  "steps": ["steps", Number],
  "sampler": ["sampling_method", String],
  "schedule type": ["scheduler", String],
  "scheduler": ["scheduler", String],
  "cfg scale": ["cfg_scale", Number],
  "guidance": ["guidance", Number],
  "seed": ["seed", Number],
  "clip skip": ["clip_skip", Number],
  "eta": ["eta", Number],
  "flow shift": ["flow_shift", Number],
  "denoising strength": ["strength", Number],
  "model": ["model_name", String],
};

export function parseParameters(text) {
  if (!text) return null;
  const lines = text.replace(/\r/g, "").split("\n");
  let last = lines.length - 1;
  while (last >= 0 && !/^\s*Steps: /.test(lines[last])) last--;
  const out = {};
  const head = last >= 0 ? lines.slice(0, last) : lines;
  const neg = head.findIndex((l) => l.startsWith("Negative prompt:"));
  out.prompt = (neg >= 0 ? head.slice(0, neg) : head).join("\n").trim();
  if (neg >= 0) out.negative_prompt = head.slice(neg).join("\n").replace(/^Negative prompt:\s*/, "").trim();
  if (last >= 0) {
    for (const part of lines[last].matchAll(/\s*([^:,]+):\s*("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
      const key = part[1].trim().toLowerCase();
      const value = part[2].trim().replace(/^"|"$/g, "");
      if (key === "size") {
        const [w, hgt] = value.split("x").map(Number);
        if (w && hgt) { out.width = w; out.height = hgt; }
      } else if (KEYS[key]) {
        const [name, cast] = KEYS[key];
        out[name] = cast(value);
      }
    }
    // A1111 writes display names ("DPM++ 2M", "Karras"): the form's selects hold the API's
    if (out.sampling_method) out.sampling_method = apiName("sampler", out.sampling_method);
    if (out.scheduler) out.scheduler = apiName("scheduler", out.scheduler);
  }
  return out;
}

// The "parameters" tEXt/iTXt chunk of a PNG file (ArrayBuffer), or null.
export function pngParameters(buffer) {
  const bytes = new Uint8Array(buffer);
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(buffer);
  const latin = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = latin.decode(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "tEXt" || type === "iTXt") {
      const zero = data.indexOf(0);
      const key = latin.decode(data.subarray(0, zero));
      if (key === "parameters") {
        if (type === "tEXt") return latin.decode(data.subarray(zero + 1));
        // iTXt: keyword\0 flag method lang\0 translated\0 text (uncompressed only)
        let p = zero + 3;
        p = data.indexOf(0, p) + 1;
        p = data.indexOf(0, p) + 1;
        return data[zero + 1] ? null : utf8.decode(data.subarray(p));
      }
    }
    if (type === "IEND") break;
    at += 12 + length;
  }
  return null;
}

// A1111's display names (what the PNG says) -> the API's names
const SAMPLERS = {
  "euler": "euler", "euler a": "euler_a", "heun": "heun", "dpm2": "dpm2",
  "dpm++ 2s a": "dpm++2s_a", "dpm++ 2m": "dpm++2m", "dpm++ 2m v2": "dpm++2mv2",
  "ipndm": "ipndm", "ipndm_v": "ipndm_v", "lcm": "lcm", "ddim": "ddim_trailing", "tcd": "tcd",
  "res multistep": "res_multistep", "res 2s": "res_2s", "er sde": "er_sde",
};
const SCHEDULERS = {
  "uniform": "discrete", "karras": "karras", "exponential": "exponential",
  "align your steps": "ays", "gits": "gits", "sgm uniform": "sgm_uniform", "simple": "simple",
  "smoothstep": "smoothstep", "kl optimal": "kl_optimal", "lcm": "lcm",
  "bong tangent": "bong_tangent",
};

export function apiName(kind, display) {
  if (!display) return display;
  const table = kind === "sampler" ? SAMPLERS : SCHEDULERS;
  return table[display.toLowerCase()] || display;
}
