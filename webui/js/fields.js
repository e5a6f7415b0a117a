// The form's fields. Limits and defaults come from /api/parameters; this table only says how
// each is shown and which job kinds take it. A parameter the API lists that this table does
// not know still gets a number field (under "More parameters").

export const KINDS = {
  txt2img: { label: "Text to image", endpoint: "/api/generate/text2img" },
  img2img: { label: "Image to image", endpoint: "/api/generate/img2img", image: "init_image" },
  inpainting: { label: "Inpainting", endpoint: "/api/generate/inpainting", image: "init_image", mask: true },
  controlnet: { label: "ControlNet", endpoint: "/api/generate/controlnet", image: "control_image" },
  video: { label: "Video", endpoint: "/api/generate/video", image: "init_image", optionalImage: true },
  upscale: { label: "Upscale", endpoint: "/api/generate/upscale", image: "image" },
};

const IMAGE = ["txt2img", "img2img", "inpainting", "controlnet"];
const DIFFUSION = [...IMAGE, "video"];

// name -> {label, kinds, group, prefill, min/max/step when /api/parameters has no row}
export const FIELDS = {
  steps: { label: "Steps", kinds: DIFFUSION, group: "basic", prefill: true },
  cfg_scale: { label: "CFG scale", kinds: DIFFUSION, group: "basic" },
  batch_count: { label: "Batch", kinds: IMAGE, group: "basic", prefill: true },
  strength: { label: "Strength", kinds: ["img2img", "inpainting"], group: "basic" },
  control_strength: { label: "Control strength", kinds: ["controlnet"], group: "basic" },
  video_frames: { label: "Frames (4n+1)", kinds: ["video"], group: "basic", min: 1, max: 1024, step: 4, default: 33 },
  fps: { label: "FPS", kinds: ["video"], group: "basic", min: 1, max: 120, step: 1, default: 16 },
  guidance: { label: "Guidance (Flux)", kinds: IMAGE, group: "more" },
  clip_skip: { label: "CLIP skip", kinds: IMAGE, group: "more" },
  eta: { label: "Eta", kinds: IMAGE, group: "more" },
  flow_shift: { label: "Flow shift", kinds: DIFFUSION, group: "more" },
  n_threads: { label: "Threads", kinds: DIFFUSION, group: "more" },
  output_quality: { label: "Quality (JPEG/WebP)", kinds: [...IMAGE, "upscale"], group: "more" },
  factor: { label: "Upscale factor", kinds: ["upscale"], group: "basic", min: 1, max: 8, step: 1 },
};

// handled by their own controls (the LoRA picker has the weight), or not a field of the native
// requests (image_cfg_scale: the A1111 dialect's)
export const OWN_CONTROLS = new Set(["width", "height", "seed", "lora_weight", "image_cfg_scale"]);

export const SIZE_PRESETS = [
  [512, 512], [768, 768], [1024, 1024], [512, 768], [768, 512], [832, 1216], [1216, 832],
  [1024, 576], [576, 1024], [256, 256], [64, 64],
];

export const OUTPUT_FORMATS = ["png", "jpeg", "webp"];
