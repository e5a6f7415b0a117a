// sdcpp._native: the raw layer over include/stable-diffusion.h (see sdcpp/_native.pyi).
#include "params.hpp"

namespace sdcpp {
void bind_contexts(py::module_& m);
}

namespace {

using namespace sdcpp;

// Bind a C enum with the library's own string names: values are exported as Enum.NAME, and
// `names()` / `from_name()` go through the library's *_name / str_to_* functions.
template <typename E>
void bind_enum(py::module_& m, const char* py_name, std::initializer_list<std::pair<const char*, E>> values,
               const char* (*name_of)(E), E (*from_name)(const char*), E count) {
    py::enum_<E> e(m, py_name);
    for (const auto& [name, value] : values) {
        e.value(name, value);
    }
    e.def_property_readonly("library_name", [name_of](E v) {
        const char* n = name_of(v);
        return std::string(n != nullptr ? n : "");
    });
    e.def_static("from_library_name", [from_name, count, py_name](const std::string& s) {
        E v = from_name(s.c_str());
        if (v == count) {
            throw py::value_error(std::string("unknown ") + py_name + " name: " + s);
        }
        return v;
    });
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Raw binding of stable-diffusion.cpp; use the sdcpp package instead.";

    bind_enum<rng_type_t>(m, "RngType",
                          {{"STD_DEFAULT", STD_DEFAULT_RNG}, {"CUDA", CUDA_RNG}, {"CPU", CPU_RNG},
                           {"COUNT", RNG_TYPE_COUNT}},
                          sd_rng_type_name, str_to_rng_type, RNG_TYPE_COUNT);
    bind_enum<sample_method_t>(
        m, "SampleMethod",
        {{"EULER", EULER_SAMPLE_METHOD}, {"EULER_A", EULER_A_SAMPLE_METHOD},
         {"HEUN", HEUN_SAMPLE_METHOD}, {"DPM2", DPM2_SAMPLE_METHOD},
         {"DPMPP2S_A", DPMPP2S_A_SAMPLE_METHOD}, {"DPMPP2M", DPMPP2M_SAMPLE_METHOD},
         {"DPMPP2Mv2", DPMPP2Mv2_SAMPLE_METHOD}, {"IPNDM", IPNDM_SAMPLE_METHOD},
         {"IPNDM_V", IPNDM_V_SAMPLE_METHOD}, {"LCM", LCM_SAMPLE_METHOD},
         {"DDIM_TRAILING", DDIM_TRAILING_SAMPLE_METHOD}, {"TCD", TCD_SAMPLE_METHOD},
         {"RES_MULTISTEP", RES_MULTISTEP_SAMPLE_METHOD}, {"RES_2S", RES_2S_SAMPLE_METHOD},
         {"ER_SDE", ER_SDE_SAMPLE_METHOD}, {"COUNT", SAMPLE_METHOD_COUNT}},
        sd_sample_method_name, str_to_sample_method, SAMPLE_METHOD_COUNT);
    bind_enum<scheduler_t>(
        m, "Scheduler",
        {{"DISCRETE", DISCRETE_SCHEDULER}, {"KARRAS", KARRAS_SCHEDULER},
         {"EXPONENTIAL", EXPONENTIAL_SCHEDULER}, {"AYS", AYS_SCHEDULER}, {"GITS", GITS_SCHEDULER},
         {"SGM_UNIFORM", SGM_UNIFORM_SCHEDULER}, {"SIMPLE", SIMPLE_SCHEDULER},
         {"SMOOTHSTEP", SMOOTHSTEP_SCHEDULER}, {"KL_OPTIMAL", KL_OPTIMAL_SCHEDULER},
         {"LCM", LCM_SCHEDULER}, {"BONG_TANGENT", BONG_TANGENT_SCHEDULER},
         {"COUNT", SCHEDULER_COUNT}},
        sd_scheduler_name, str_to_scheduler, SCHEDULER_COUNT);
    bind_enum<prediction_t>(m, "Prediction",
                            {{"EPS", EPS_PRED}, {"V", V_PRED}, {"EDM_V", EDM_V_PRED},
                             {"FLOW", FLOW_PRED}, {"FLUX_FLOW", FLUX_FLOW_PRED},
                             {"FLUX2_FLOW", FLUX2_FLOW_PRED}, {"COUNT", PREDICTION_COUNT}},
                            sd_prediction_name, str_to_prediction, PREDICTION_COUNT);
    bind_enum<sd_type_t>(
        m, "SdType",
        {{"F32", SD_TYPE_F32}, {"F16", SD_TYPE_F16}, {"Q4_0", SD_TYPE_Q4_0}, {"Q4_1", SD_TYPE_Q4_1},
         {"Q5_0", SD_TYPE_Q5_0}, {"Q5_1", SD_TYPE_Q5_1}, {"Q8_0", SD_TYPE_Q8_0},
         {"Q8_1", SD_TYPE_Q8_1}, {"Q2_K", SD_TYPE_Q2_K}, {"Q3_K", SD_TYPE_Q3_K},
         {"Q4_K", SD_TYPE_Q4_K}, {"Q5_K", SD_TYPE_Q5_K}, {"Q6_K", SD_TYPE_Q6_K},
         {"Q8_K", SD_TYPE_Q8_K}, {"IQ2_XXS", SD_TYPE_IQ2_XXS}, {"IQ2_XS", SD_TYPE_IQ2_XS},
         {"IQ3_XXS", SD_TYPE_IQ3_XXS}, {"IQ1_S", SD_TYPE_IQ1_S}, {"IQ4_NL", SD_TYPE_IQ4_NL},
         {"IQ3_S", SD_TYPE_IQ3_S}, {"IQ2_S", SD_TYPE_IQ2_S}, {"IQ4_XS", SD_TYPE_IQ4_XS},
         {"I8", SD_TYPE_I8}, {"I16", SD_TYPE_I16}, {"I32", SD_TYPE_I32}, {"I64", SD_TYPE_I64},
         {"F64", SD_TYPE_F64}, {"IQ1_M", SD_TYPE_IQ1_M}, {"BF16", SD_TYPE_BF16},
         {"TQ1_0", SD_TYPE_TQ1_0}, {"TQ2_0", SD_TYPE_TQ2_0}, {"MXFP4", SD_TYPE_MXFP4},
         {"NVFP4", SD_TYPE_NVFP4}, {"COUNT", SD_TYPE_COUNT}},
        sd_type_name, str_to_sd_type, SD_TYPE_COUNT);
    bind_enum<preview_t>(m, "Preview",
                         {{"NONE", PREVIEW_NONE}, {"PROJ", PREVIEW_PROJ}, {"TAE", PREVIEW_TAE},
                          {"VAE", PREVIEW_VAE}, {"COUNT", PREVIEW_COUNT}},
                         sd_preview_name, str_to_preview, PREVIEW_COUNT);
    bind_enum<lora_apply_mode_t>(m, "LoraApplyMode",
                                 {{"AUTO", LORA_APPLY_AUTO}, {"IMMEDIATELY", LORA_APPLY_IMMEDIATELY},
                                  {"AT_RUNTIME", LORA_APPLY_AT_RUNTIME},
                                  {"COUNT", LORA_APPLY_MODE_COUNT}},
                                 sd_lora_apply_mode_name, str_to_lora_apply_mode, LORA_APPLY_MODE_COUNT);
    bind_enum<sd_hires_upscaler_t>(
        m, "HiresUpscaler",
        {{"NONE", SD_HIRES_UPSCALER_NONE}, {"LATENT", SD_HIRES_UPSCALER_LATENT},
         {"LATENT_NEAREST", SD_HIRES_UPSCALER_LATENT_NEAREST},
         {"LATENT_NEAREST_EXACT", SD_HIRES_UPSCALER_LATENT_NEAREST_EXACT},
         {"LATENT_ANTIALIASED", SD_HIRES_UPSCALER_LATENT_ANTIALIASED},
         {"LATENT_BICUBIC", SD_HIRES_UPSCALER_LATENT_BICUBIC},
         {"LATENT_BICUBIC_ANTIALIASED", SD_HIRES_UPSCALER_LATENT_BICUBIC_ANTIALIASED},
         {"LANCZOS", SD_HIRES_UPSCALER_LANCZOS}, {"NEAREST", SD_HIRES_UPSCALER_NEAREST},
         {"MODEL", SD_HIRES_UPSCALER_MODEL}, {"COUNT", SD_HIRES_UPSCALER_COUNT}},
        sd_hires_upscaler_name, str_to_sd_hires_upscaler, SD_HIRES_UPSCALER_COUNT);

    py::enum_<sd_log_level_t>(m, "LogLevel")
        .value("DEBUG", SD_LOG_DEBUG)
        .value("INFO", SD_LOG_INFO)
        .value("WARN", SD_LOG_WARN)
        .value("ERROR", SD_LOG_ERROR);
    py::enum_<sd_cache_mode_t>(m, "CacheMode")
        .value("DISABLED", SD_CACHE_DISABLED)
        .value("EASYCACHE", SD_CACHE_EASYCACHE)
        .value("UCACHE", SD_CACHE_UCACHE)
        .value("DBCACHE", SD_CACHE_DBCACHE)
        .value("TAYLORSEER", SD_CACHE_TAYLORSEER)
        .value("CACHE_DIT", SD_CACHE_CACHE_DIT)
        .value("SPECTRUM", SD_CACHE_SPECTRUM);

    bind_params(m);
    bind_contexts(m);

    m.def("system_info", [] { return std::string(sd_get_system_info()); });
    m.def("num_physical_cores", [] { return sd_get_num_physical_cores(); });
    m.def("engine_version", [] { return std::string(sd_version()); });
    m.def("engine_commit", [] { return std::string(sd_commit()); });
    m.def("set_log_callback", &set_log_callback, py::arg("callback"),
          "callback(level: int, text: str) or None; called from any thread, with the GIL.");
    m.def("last_error", &last_error, "The last ERROR line the library logged.");
#ifdef SDCPP_NO_CANCEL
    m.attr("HAS_CANCEL") = false;
#else
    m.attr("HAS_CANCEL") = true;
#endif
    m.attr("__version__") = SDCPP_VERSION;

    install_log_trampoline();
    py::module_::import("atexit").attr("register")(py::cpp_function(&shutdown_callbacks));
}
