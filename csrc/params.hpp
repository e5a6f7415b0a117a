// Owning versions of the library's parameter structs.
//
// Each wrapper starts from the library's own *_init() (Python never copies C defaults), stores
// every `const char*` as std::string and every array as a vector or numpy reference, and builds
// the C struct on demand with pointers into itself. A wrapper must outlive the native call that
// uses the struct it built; the binding keeps it referenced for exactly that long.
#pragma once

#include "common.hpp"

namespace sdcpp {

inline const char* c_str_or_null(const std::string& s) {
    return s.empty() ? nullptr : s.c_str();
}

struct CtxParams {
    sd_ctx_params_t c{};
    std::string model_path, clip_l_path, clip_g_path, clip_vision_path, t5xxl_path, llm_path,
        llm_vision_path, diffusion_model_path, high_noise_diffusion_model_path, vae_path,
        taesd_path, control_net_path, photo_maker_path, tensor_type_rules;
    std::vector<std::pair<std::string, std::string>> embeddings;  // (name, path)

    CtxParams() { sd_ctx_params_init(&c); }
    sd_ctx_params_t build();

private:
    std::vector<sd_embedding_t> embedding_views_;
};

struct SampleParams {
    sd_sample_params_t c{};
    std::vector<int> slg_layers;
    std::vector<float> custom_sigmas;

    SampleParams() { sd_sample_params_init(&c); }
    sd_sample_params_t build();
};

struct CacheParams {
    sd_cache_params_t c{};
    std::string scm_mask;

    CacheParams() { sd_cache_params_init(&c); }
    sd_cache_params_t build() const;
};

struct HiresParams {
    sd_hires_params_t c{};
    std::string model_path;

    HiresParams() { sd_hires_params_init(&c); }
    sd_hires_params_t build() const;
};

struct TilingParams {
    sd_tiling_params_t c{};
};

struct Lora {
    std::string path;
    float multiplier   = 1.0f;
    bool is_high_noise = false;
};

struct ImgGenParams {
    sd_img_gen_params_t c{};
    std::string prompt, negative_prompt, pm_id_embed_path;
    std::vector<Lora> loras;
    std::optional<Image> init_image, mask_image, control_image;
    std::vector<Image> ref_images, pm_id_images;
    SampleParams sample_params;
    TilingParams vae_tiling_params;
    CacheParams cache;
    HiresParams hires;

    ImgGenParams();
    sd_img_gen_params_t build();

private:
    std::vector<sd_lora_t> lora_views_;
    std::vector<sd_image_t> ref_views_, pm_views_;
};

struct VidGenParams {
    sd_vid_gen_params_t c{};
    std::string prompt, negative_prompt;
    std::vector<Lora> loras;
    std::optional<Image> init_image, end_image;
    std::vector<Image> control_frames;
    SampleParams sample_params, high_noise_sample_params;
    TilingParams vae_tiling_params;
    CacheParams cache;

    VidGenParams();
    sd_vid_gen_params_t build();

private:
    std::vector<sd_lora_t> lora_views_;
    std::vector<sd_image_t> control_views_;
};

void bind_params(py::module_& m);

}  // namespace sdcpp
