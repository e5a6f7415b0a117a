#include "params.hpp"

#include <type_traits>

namespace sdcpp {

// Point a C (pointer, count) pair at `views`, NULL when empty.
template <typename T, typename Ptr, typename Count>
static void point_to(const std::vector<T>& views, Ptr& ptr, Count& count) {
    ptr   = views.empty() ? nullptr : const_cast<T*>(views.data());
    count = static_cast<Count>(views.size());
}


// ---- building the C structs -----------------------------------------------------------------

sd_ctx_params_t CtxParams::build() {
    sd_ctx_params_t out                 = c;
    out.model_path                      = c_str_or_null(model_path);
    out.clip_l_path                     = c_str_or_null(clip_l_path);
    out.clip_g_path                     = c_str_or_null(clip_g_path);
    out.clip_vision_path                = c_str_or_null(clip_vision_path);
    out.t5xxl_path                      = c_str_or_null(t5xxl_path);
    out.llm_path                        = c_str_or_null(llm_path);
    out.llm_vision_path                 = c_str_or_null(llm_vision_path);
    out.diffusion_model_path            = c_str_or_null(diffusion_model_path);
    out.high_noise_diffusion_model_path = c_str_or_null(high_noise_diffusion_model_path);
    out.vae_path                        = c_str_or_null(vae_path);
    out.taesd_path                      = c_str_or_null(taesd_path);
    out.control_net_path                = c_str_or_null(control_net_path);
    out.photo_maker_path                = c_str_or_null(photo_maker_path);
    out.tensor_type_rules               = c_str_or_null(tensor_type_rules);
    embedding_views_.clear();
    for (const auto& [name, path] : embeddings) {
        embedding_views_.push_back(sd_embedding_t{name.c_str(), path.c_str()});
    }
    point_to(embedding_views_, out.embeddings, out.embedding_count);
    return out;
}

sd_sample_params_t SampleParams::build() {
    sd_sample_params_t out       = c;
    out.guidance.slg.layers      = slg_layers.empty() ? nullptr : slg_layers.data();
    out.guidance.slg.layer_count = slg_layers.size();
    out.custom_sigmas            = custom_sigmas.empty() ? nullptr : custom_sigmas.data();
    out.custom_sigmas_count      = static_cast<int>(custom_sigmas.size());
    return out;
}

sd_cache_params_t CacheParams::build() const {
    sd_cache_params_t out = c;
    out.scm_mask          = c_str_or_null(scm_mask);
    return out;
}

sd_hires_params_t HiresParams::build() const {
    sd_hires_params_t out = c;
    out.model_path        = c_str_or_null(model_path);
    return out;
}

static std::vector<sd_lora_t> lora_views(const std::vector<Lora>& loras) {
    std::vector<sd_lora_t> out;
    for (const auto& lora : loras) {
        out.push_back(sd_lora_t{lora.is_high_noise, lora.multiplier, lora.path.c_str()});
    }
    return out;
}

// What image and video parameters share: prompts, LoRAs, first image, sampling, tiling, cache.
template <typename Owner, typename Out>
static void build_common(Owner& self, Out& out, std::vector<sd_lora_t>& lora_views_out) {
    out.prompt          = self.prompt.c_str();
    out.negative_prompt = self.negative_prompt.c_str();
    lora_views_out      = lora_views(self.loras);
    point_to(lora_views_out, out.loras, out.lora_count);
    if (self.init_image) {
        out.init_image = self.init_image->view;
    }
    out.sample_params     = self.sample_params.build();
    out.vae_tiling_params = self.vae_tiling_params.c;
    out.cache             = self.cache.build();
}

ImgGenParams::ImgGenParams() {
    sd_img_gen_params_init(&c);
    sample_params.c     = c.sample_params;
    vae_tiling_params.c = c.vae_tiling_params;
    cache.c             = c.cache;
    hires.c             = c.hires;
}

sd_img_gen_params_t ImgGenParams::build() {
    sd_img_gen_params_t out = c;
    build_common(*this, out, lora_views_);
    if (mask_image) {
        out.mask_image = mask_image->view;
    }
    if (control_image) {
        out.control_image = control_image->view;
    }
    ref_views_ = image_views(ref_images);
    point_to(ref_views_, out.ref_images, out.ref_images_count);
    pm_views_ = image_views(pm_id_images);
    point_to(pm_views_, out.pm_params.id_images, out.pm_params.id_images_count);
    out.pm_params.id_embed_path = c_str_or_null(pm_id_embed_path);
    out.hires                   = hires.build();
    return out;
}

VidGenParams::VidGenParams() {
    sd_vid_gen_params_init(&c);
    sample_params.c            = c.sample_params;
    high_noise_sample_params.c = c.high_noise_sample_params;
    vae_tiling_params.c        = c.vae_tiling_params;
    cache.c                    = c.cache;
}

sd_vid_gen_params_t VidGenParams::build() {
    sd_vid_gen_params_t out = c;
    build_common(*this, out, lora_views_);
    if (end_image) {
        out.end_image = end_image->view;
    }
    control_views_ = image_views(control_frames);
    point_to(control_views_, out.control_frames, out.control_frames_size);
    out.high_noise_sample_params = high_noise_sample_params.build();
    return out;
}

// ---- Python classes -------------------------------------------------------------------------

// A property over a scalar member of the wrapped C struct `c`.
#define SD_FIELD(cls, T, name, member)                                                     \
    cls.def_property(                                                                       \
        name, [](const T& self) { return self.c.member; },                                  \
        [](T& self, std::decay_t<decltype(std::declval<T&>().c.member)> v) { self.c.member = v; })

#define SD_IMAGE(cls, T, name)                                                              \
    cls.def_property(                                                                       \
        #name, [](const T& self) { return image_or_none(self.name); },                      \
        [](T& self, const py::object& v) { self.name = optional_image(v); },                \
        "numpy uint8 array (H, W[, C]) or None")

#define SD_IMAGES(cls, T, name)                                                             \
    cls.def_property(                                                                       \
        #name, [](const T& self) { return image_objects(self.name); },                      \
        [](T& self, const py::object& v) { self.name = image_list(v); })

template <typename T>
static std::string to_str(const T& value, char* (*fn)(const T*)) {
    char* raw = fn(&value);
    std::string out(raw != nullptr ? raw : "");
    std::free(raw);
    return out;
}

void bind_params(py::module_& m) {
    py::class_<CtxParams> ctx(m, "CtxParams", "Owning sd_ctx_params_t, initialised by sd_ctx_params_init().");
    ctx.def(py::init<>());
    for (auto [name, member] : std::initializer_list<std::pair<const char*, std::string CtxParams::*>>{
             {"model_path", &CtxParams::model_path},
             {"clip_l_path", &CtxParams::clip_l_path},
             {"clip_g_path", &CtxParams::clip_g_path},
             {"clip_vision_path", &CtxParams::clip_vision_path},
             {"t5xxl_path", &CtxParams::t5xxl_path},
             {"llm_path", &CtxParams::llm_path},
             {"llm_vision_path", &CtxParams::llm_vision_path},
             {"diffusion_model_path", &CtxParams::diffusion_model_path},
             {"high_noise_diffusion_model_path", &CtxParams::high_noise_diffusion_model_path},
             {"vae_path", &CtxParams::vae_path},
             {"taesd_path", &CtxParams::taesd_path},
             {"control_net_path", &CtxParams::control_net_path},
             {"photo_maker_path", &CtxParams::photo_maker_path},
             {"tensor_type_rules", &CtxParams::tensor_type_rules}}) {
        ctx.def_property(
            name, [member](const CtxParams& self) { return self.*member; },
            [member](CtxParams& self, std::string v) { self.*member = std::move(v); });
    }
    ctx.def_readwrite("embeddings", &CtxParams::embeddings, "list of (name, path)");
    SD_FIELD(ctx, CtxParams, "vae_decode_only", vae_decode_only);
    SD_FIELD(ctx, CtxParams, "free_params_immediately", free_params_immediately);
    SD_FIELD(ctx, CtxParams, "n_threads", n_threads);
    SD_FIELD(ctx, CtxParams, "wtype", wtype);
    SD_FIELD(ctx, CtxParams, "rng_type", rng_type);
    SD_FIELD(ctx, CtxParams, "sampler_rng_type", sampler_rng_type);
    SD_FIELD(ctx, CtxParams, "prediction", prediction);
    SD_FIELD(ctx, CtxParams, "lora_apply_mode", lora_apply_mode);
    SD_FIELD(ctx, CtxParams, "offload_params_to_cpu", offload_params_to_cpu);
    SD_FIELD(ctx, CtxParams, "enable_mmap", enable_mmap);
    SD_FIELD(ctx, CtxParams, "keep_clip_on_cpu", keep_clip_on_cpu);
    SD_FIELD(ctx, CtxParams, "keep_control_net_on_cpu", keep_control_net_on_cpu);
    SD_FIELD(ctx, CtxParams, "keep_vae_on_cpu", keep_vae_on_cpu);
    SD_FIELD(ctx, CtxParams, "flash_attn", flash_attn);
    SD_FIELD(ctx, CtxParams, "diffusion_flash_attn", diffusion_flash_attn);
    SD_FIELD(ctx, CtxParams, "tae_preview_only", tae_preview_only);
    SD_FIELD(ctx, CtxParams, "diffusion_conv_direct", diffusion_conv_direct);
    SD_FIELD(ctx, CtxParams, "vae_conv_direct", vae_conv_direct);
    SD_FIELD(ctx, CtxParams, "circular_x", circular_x);
    SD_FIELD(ctx, CtxParams, "circular_y", circular_y);
    SD_FIELD(ctx, CtxParams, "force_sdxl_vae_conv_scale", force_sdxl_vae_conv_scale);
    SD_FIELD(ctx, CtxParams, "chroma_use_dit_mask", chroma_use_dit_mask);
    SD_FIELD(ctx, CtxParams, "chroma_use_t5_mask", chroma_use_t5_mask);
    SD_FIELD(ctx, CtxParams, "chroma_t5_mask_pad", chroma_t5_mask_pad);
    SD_FIELD(ctx, CtxParams, "qwen_image_zero_cond_t", qwen_image_zero_cond_t);
    SD_FIELD(ctx, CtxParams, "max_vram", max_vram);
    ctx.def("to_str", [](CtxParams& self) { return to_str(self.build(), sd_ctx_params_to_str); });

    py::class_<SampleParams> sample(m, "SampleParams", "Owning sd_sample_params_t (guidance flattened).");
    sample.def(py::init<>());
    SD_FIELD(sample, SampleParams, "txt_cfg", guidance.txt_cfg);
    SD_FIELD(sample, SampleParams, "img_cfg", guidance.img_cfg);
    SD_FIELD(sample, SampleParams, "distilled_guidance", guidance.distilled_guidance);
    SD_FIELD(sample, SampleParams, "slg_layer_start", guidance.slg.layer_start);
    SD_FIELD(sample, SampleParams, "slg_layer_end", guidance.slg.layer_end);
    SD_FIELD(sample, SampleParams, "slg_scale", guidance.slg.scale);
    sample.def_readwrite("slg_layers", &SampleParams::slg_layers);
    SD_FIELD(sample, SampleParams, "scheduler", scheduler);
    SD_FIELD(sample, SampleParams, "sample_method", sample_method);
    SD_FIELD(sample, SampleParams, "sample_steps", sample_steps);
    SD_FIELD(sample, SampleParams, "eta", eta);
    SD_FIELD(sample, SampleParams, "shifted_timestep", shifted_timestep);
    sample.def_readwrite("custom_sigmas", &SampleParams::custom_sigmas);
    SD_FIELD(sample, SampleParams, "flow_shift", flow_shift);
    sample.def("to_str", [](SampleParams& self) { return to_str(self.build(), sd_sample_params_to_str); });

    py::class_<TilingParams> tiling(m, "TilingParams", "sd_tiling_params_t (VAE tiling).");
    tiling.def(py::init<>());
    SD_FIELD(tiling, TilingParams, "enabled", enabled);
    SD_FIELD(tiling, TilingParams, "tile_size_x", tile_size_x);
    SD_FIELD(tiling, TilingParams, "tile_size_y", tile_size_y);
    SD_FIELD(tiling, TilingParams, "target_overlap", target_overlap);
    SD_FIELD(tiling, TilingParams, "rel_size_x", rel_size_x);
    SD_FIELD(tiling, TilingParams, "rel_size_y", rel_size_y);

    py::class_<CacheParams> cache(m, "CacheParams", "Owning sd_cache_params_t.");
    cache.def(py::init<>());
    SD_FIELD(cache, CacheParams, "mode", mode);
    SD_FIELD(cache, CacheParams, "reuse_threshold", reuse_threshold);
    SD_FIELD(cache, CacheParams, "start_percent", start_percent);
    SD_FIELD(cache, CacheParams, "end_percent", end_percent);
    SD_FIELD(cache, CacheParams, "error_decay_rate", error_decay_rate);
    SD_FIELD(cache, CacheParams, "use_relative_threshold", use_relative_threshold);
    SD_FIELD(cache, CacheParams, "reset_error_on_compute", reset_error_on_compute);
    SD_FIELD(cache, CacheParams, "Fn_compute_blocks", Fn_compute_blocks);
    SD_FIELD(cache, CacheParams, "Bn_compute_blocks", Bn_compute_blocks);
    SD_FIELD(cache, CacheParams, "residual_diff_threshold", residual_diff_threshold);
    SD_FIELD(cache, CacheParams, "max_warmup_steps", max_warmup_steps);
    SD_FIELD(cache, CacheParams, "max_cached_steps", max_cached_steps);
    SD_FIELD(cache, CacheParams, "max_continuous_cached_steps", max_continuous_cached_steps);
    SD_FIELD(cache, CacheParams, "taylorseer_n_derivatives", taylorseer_n_derivatives);
    SD_FIELD(cache, CacheParams, "taylorseer_skip_interval", taylorseer_skip_interval);
    cache.def_readwrite("scm_mask", &CacheParams::scm_mask);
    SD_FIELD(cache, CacheParams, "scm_policy_dynamic", scm_policy_dynamic);
    SD_FIELD(cache, CacheParams, "spectrum_w", spectrum_w);
    SD_FIELD(cache, CacheParams, "spectrum_m", spectrum_m);
    SD_FIELD(cache, CacheParams, "spectrum_lam", spectrum_lam);
    SD_FIELD(cache, CacheParams, "spectrum_window_size", spectrum_window_size);
    SD_FIELD(cache, CacheParams, "spectrum_flex_window", spectrum_flex_window);
    SD_FIELD(cache, CacheParams, "spectrum_warmup_steps", spectrum_warmup_steps);
    SD_FIELD(cache, CacheParams, "spectrum_stop_percent", spectrum_stop_percent);

    py::class_<HiresParams> hires(m, "HiresParams", "Owning sd_hires_params_t (hires fix).");
    hires.def(py::init<>());
    SD_FIELD(hires, HiresParams, "enabled", enabled);
    SD_FIELD(hires, HiresParams, "upscaler", upscaler);
    hires.def_readwrite("model_path", &HiresParams::model_path);
    SD_FIELD(hires, HiresParams, "scale", scale);
    SD_FIELD(hires, HiresParams, "target_width", target_width);
    SD_FIELD(hires, HiresParams, "target_height", target_height);
    SD_FIELD(hires, HiresParams, "steps", steps);
    SD_FIELD(hires, HiresParams, "denoising_strength", denoising_strength);
    SD_FIELD(hires, HiresParams, "upscale_tile_size", upscale_tile_size);

    py::class_<Lora>(m, "Lora", "sd_lora_t")
        .def(py::init([](std::string path, float multiplier, bool is_high_noise) {
                 return Lora{std::move(path), multiplier, is_high_noise};
             }),
             py::arg("path"), py::arg("multiplier") = 1.0f, py::arg("is_high_noise") = false)
        .def_readwrite("path", &Lora::path)
        .def_readwrite("multiplier", &Lora::multiplier)
        .def_readwrite("is_high_noise", &Lora::is_high_noise);

    py::class_<ImgGenParams> img(m, "ImgGenParams", "Owning sd_img_gen_params_t, initialised by sd_img_gen_params_init().");
    img.def(py::init<>());
    img.def_readwrite("prompt", &ImgGenParams::prompt);
    img.def_readwrite("negative_prompt", &ImgGenParams::negative_prompt);
    img.def_readwrite("loras", &ImgGenParams::loras);
    SD_FIELD(img, ImgGenParams, "clip_skip", clip_skip);
    SD_IMAGE(img, ImgGenParams, init_image);
    SD_IMAGES(img, ImgGenParams, ref_images);
    SD_FIELD(img, ImgGenParams, "auto_resize_ref_image", auto_resize_ref_image);
    SD_FIELD(img, ImgGenParams, "increase_ref_index", increase_ref_index);
    SD_IMAGE(img, ImgGenParams, mask_image);
    SD_FIELD(img, ImgGenParams, "width", width);
    SD_FIELD(img, ImgGenParams, "height", height);
    img.def_readwrite("sample_params", &ImgGenParams::sample_params);
    SD_FIELD(img, ImgGenParams, "strength", strength);
    SD_FIELD(img, ImgGenParams, "seed", seed);
    SD_FIELD(img, ImgGenParams, "batch_count", batch_count);
    SD_IMAGE(img, ImgGenParams, control_image);
    SD_FIELD(img, ImgGenParams, "control_strength", control_strength);
    SD_IMAGES(img, ImgGenParams, pm_id_images);
    img.def_readwrite("pm_id_embed_path", &ImgGenParams::pm_id_embed_path);
    SD_FIELD(img, ImgGenParams, "pm_style_strength", pm_params.style_strength);
    img.def_readwrite("vae_tiling_params", &ImgGenParams::vae_tiling_params);
    img.def_readwrite("cache", &ImgGenParams::cache);
    img.def_readwrite("hires", &ImgGenParams::hires);
    img.def("to_str", [](ImgGenParams& self) { return to_str(self.build(), sd_img_gen_params_to_str); });

    py::class_<VidGenParams> vid(m, "VidGenParams", "Owning sd_vid_gen_params_t, initialised by sd_vid_gen_params_init().");
    vid.def(py::init<>());
    vid.def_readwrite("prompt", &VidGenParams::prompt);
    vid.def_readwrite("negative_prompt", &VidGenParams::negative_prompt);
    vid.def_readwrite("loras", &VidGenParams::loras);
    SD_FIELD(vid, VidGenParams, "clip_skip", clip_skip);
    SD_IMAGE(vid, VidGenParams, init_image);
    SD_IMAGE(vid, VidGenParams, end_image);
    SD_IMAGES(vid, VidGenParams, control_frames);
    SD_FIELD(vid, VidGenParams, "width", width);
    SD_FIELD(vid, VidGenParams, "height", height);
    vid.def_readwrite("sample_params", &VidGenParams::sample_params);
    vid.def_readwrite("high_noise_sample_params", &VidGenParams::high_noise_sample_params);
    SD_FIELD(vid, VidGenParams, "moe_boundary", moe_boundary);
    SD_FIELD(vid, VidGenParams, "strength", strength);
    SD_FIELD(vid, VidGenParams, "seed", seed);
    SD_FIELD(vid, VidGenParams, "video_frames", video_frames);
    SD_FIELD(vid, VidGenParams, "vace_strength", vace_strength);
    vid.def_readwrite("vae_tiling_params", &VidGenParams::vae_tiling_params);
    vid.def_readwrite("cache", &VidGenParams::cache);
}

}  // namespace sdcpp
