// The exact request that made an image, as curl, Python (sdcpp) and the OpenAI SDK.

const py = (v) => JSON.stringify(v, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False")
  .replace(/\bnull\b/g, "None");

function shellQuote(s) {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// Images in a body are long data URLs: shown as a placeholder the reader fills in.
function shortened(body) {
  const out = {};
  for (const [k, v] of Object.entries(body)) {
    out[k] = typeof v === "string" && v.startsWith("data:") ? `<${k}: base64 PNG>` : v;
  }
  return out;
}

export function snippets(endpoint, body) {
  const origin = location.origin;
  const clean = shortened(body);
  const json = JSON.stringify(clean, null, 2);
  const curl = [
    `curl -s ${origin}${endpoint} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -H "Authorization: Bearer $SDCPP_TOKEN" \\`,
    `  -d ${shellQuote(json)}`,
  ].join("\n");
  const lib = { ...clean };
  const prompt = lib.prompt;
  delete lib.prompt;
  delete lib.model_name;
  delete lib.output_format;
  if (lib.seed === "random") delete lib.seed;
  if (lib.sampling_method) { lib.sample_method = lib.sampling_method; delete lib.sampling_method; }
  const args = Object.entries(lib).map(([k, v]) => `    ${k}=${py(v)},`).join("\n");
  const python = [
    "from sdcpp import StableDiffusion",
    "",
    `sd = StableDiffusion.from_models_dir(${py(body.model_name || "MODEL")}, models_dir="models")`,
    "images = sd.generate(",
    `    ${py(prompt ?? "")},`,
    args,
    ")",
    'images[0].save("out.png")',
  ].filter((l) => l !== "").join("\n");
  const size = body.width && body.height ? `${body.width}x${body.height}` : "512x512";
  const extra = { ...clean };
  for (const k of ["prompt", "width", "height", "model_name", "batch_count", "output_format"]) delete extra[k];
  const openai = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${origin}/v1", api_key="YOUR_KEY")`,
    "result = client.images.generate(",
    `    prompt=${py(body.prompt ?? "")},`,
    body.model_name ? `    model=${py(body.model_name)},` : null,
    `    size="${size}",`,
    `    n=${body.batch_count || 1},`,
    Object.keys(extra).length ? `    extra_body=${py(extra).replace(/\n/g, "\n    ")},` : null,
    ")",
    "print(result.data[0].b64_json[:40])",
  ].filter((l) => l !== null).join("\n");
  return { curl, python, openai };
}
