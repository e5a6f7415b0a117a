// Handles that own native resources: the generation context and the upscaler context, plus the
// stateless entry points (convert, preprocess_canny). Every native call runs without the GIL.
#include <cstdlib>
#include <cstring>
#include <memory>

#include "params.hpp"

namespace sdcpp {
namespace {

std::string failure(const char* what) {
    std::string detail = last_error();
    return detail.empty() ? std::string(what) : std::string(what) + ": " + detail;
}

class Context {
public:
    Context(CtxParams& params, py::object progress) {
        sd_ctx_params_t c = params.build();
        GenerationScope scope(std::move(progress), py::none(), PREVIEW_NONE, 1, false, false);
        clear_last_error();
        {
            py::gil_scoped_release release;
            ctx_ = new_sd_ctx(&c);
        }
        scope.finish();
        if (ctx_ == nullptr) {
            raise_error("ModelLoadError", failure("failed to load model"));
        }
    }
    ~Context() { free_now(); }
    Context(const Context&)            = delete;
    Context& operator=(const Context&) = delete;

    py::list generate_image(ImgGenParams& params, py::object progress, py::object preview,
                            preview_t preview_mode, int preview_interval, bool preview_denoised,
                            bool preview_noisy) {
        sd_img_gen_params_t c = params.build();
        GenerationScope scope(std::move(progress), std::move(preview), preview_mode,
                              preview_interval, preview_denoised, preview_noisy);
        // Only now, holding the generation lock that close() also takes, is the handle stable.
        sd_ctx_t* ctx = handle();
        scope.set_cancel_target(ctx);
        clear_last_error();
        sd_image_t* images = nullptr;
        {
            py::gil_scoped_release release;
            images = ::generate_image(ctx, &c);
        }
        int count = c.batch_count > 0 ? c.batch_count : 1;
        py::list out = adopt_all(images, count);
        scope.finish();
        if (images == nullptr) {
            raise_if_cancelled();
            raise_error("GenerationError", failure("image generation failed"));
        }
        return out;
    }

    py::list generate_video(VidGenParams& params, py::object progress, py::object preview,
                            preview_t preview_mode, int preview_interval, bool preview_denoised,
                            bool preview_noisy) {
        sd_vid_gen_params_t c = params.build();
        GenerationScope scope(std::move(progress), std::move(preview), preview_mode,
                              preview_interval, preview_denoised, preview_noisy);
        // Only now, holding the generation lock that close() also takes, is the handle stable.
        sd_ctx_t* ctx = handle();
        scope.set_cancel_target(ctx);
        clear_last_error();
        sd_image_t* frames = nullptr;
        int frame_count    = 0;
        {
            py::gil_scoped_release release;
            frames = ::generate_video(ctx, &c, &frame_count);
        }
        py::list out = adopt_all(frames, frame_count);
        scope.finish();
        if (frames == nullptr) {
            raise_if_cancelled();
            raise_error("GenerationError", failure("video generation failed"));
        }
        return out;
    }

    void set_cancel(bool cancel) {
#ifdef SDCPP_NO_CANCEL
        (void)cancel;
        raise_error("UnsupportedError", "this build's engine lacks the cancel patch");
#else
        std::lock_guard<std::mutex> lock(handle_mutex_);
        if (ctx_ != nullptr) {
            sd_ctx_set_cancel(ctx_, cancel);
        }
#endif
    }

    bool cancelled() {
#ifdef SDCPP_NO_CANCEL
        return false;
#else
        std::lock_guard<std::mutex> lock(handle_mutex_);
        return ctx_ != nullptr && sd_ctx_is_cancelled(ctx_);
#endif
    }

    sample_method_t default_sample_method() { return sd_get_default_sample_method(handle()); }
    scheduler_t default_scheduler(sample_method_t method) {
        return sd_get_default_scheduler(handle(), method);
    }
    bool supports_image_generation() { return sd_ctx_supports_image_generation(handle()); }
    bool supports_video_generation() { return sd_ctx_supports_video_generation(handle()); }
    bool closed() {
        std::lock_guard<std::mutex> lock(handle_mutex_);
        return ctx_ == nullptr;
    }

    void close() {
        // Wait for a running generation on any context: freeing under it would be a crash.
        GenerationScope scope(py::none(), py::none(), PREVIEW_NONE, 1, false, false);
        py::gil_scoped_release release;
        free_now();
    }

private:
    sd_ctx_t* handle() {
        std::lock_guard<std::mutex> lock(handle_mutex_);
        if (ctx_ == nullptr) {
            raise_error("ClosedError", "the context is closed");
        }
        return ctx_;
    }

    void free_now() {
        sd_ctx_t* ctx = nullptr;
        {
            std::lock_guard<std::mutex> lock(handle_mutex_);
            std::swap(ctx, ctx_);
        }
        if (ctx != nullptr) {
            free_sd_ctx(ctx);
        }
    }

    void raise_if_cancelled() {
        if (cancelled()) {
            raise_error("Cancelled", "generation cancelled");
        }
    }

    // Take ownership of every returned buffer (the outer array, and each image's pixels).
    static py::list adopt_all(sd_image_t* images, int count) {
        py::list out;
        if (images == nullptr) {
            return out;
        }
        for (int i = 0; i < count; i++) {
            if (images[i].data != nullptr) {
                out.append(adopt_image(images[i]));
            }
        }
        std::free(images);
        return out;
    }

    std::mutex handle_mutex_;
    sd_ctx_t* ctx_ = nullptr;
};

class UpscalerContext {
public:
    UpscalerContext(const std::string& path, bool offload_params_to_cpu, bool direct, int n_threads,
                    int tile_size) {
        GenerationScope scope(py::none(), py::none(), PREVIEW_NONE, 1, false, false);
        clear_last_error();
        {
            py::gil_scoped_release release;
            ctx_ = new_upscaler_ctx(path.c_str(), offload_params_to_cpu, direct, n_threads, tile_size);
        }
        if (ctx_ == nullptr) {
            raise_error("ModelLoadError", failure("failed to load upscaler"));
        }
    }
    ~UpscalerContext() {
        if (ctx_ != nullptr) {
            free_upscaler_ctx(ctx_);
        }
    }
    UpscalerContext(const UpscalerContext&)            = delete;
    UpscalerContext& operator=(const UpscalerContext&) = delete;

    py::array_t<uint8_t> upscale(const py::object& image, uint32_t factor, py::object progress) {
        Image input(image);
        GenerationScope scope(std::move(progress), py::none(), PREVIEW_NONE, 1, false, false);
        upscaler_ctx_t* ctx = handle();
        clear_last_error();
        sd_image_t result{0, 0, 0, nullptr};
        {
            py::gil_scoped_release release;
            result = ::upscale(ctx, input.view, factor);
        }
        if (result.data == nullptr) {
            scope.finish();
            raise_error("GenerationError", failure("upscale failed"));
        }
        auto out = adopt_image(result);
        scope.finish();
        return out;
    }

    int factor() { return get_upscale_factor(handle()); }

    void close() {
        GenerationScope scope(py::none(), py::none(), PREVIEW_NONE, 1, false, false);
        if (ctx_ != nullptr) {
            py::gil_scoped_release release;
            free_upscaler_ctx(ctx_);
        }
        ctx_ = nullptr;
    }
    bool closed() const { return ctx_ == nullptr; }

private:
    upscaler_ctx_t* handle() {
        if (ctx_ == nullptr) {
            raise_error("ClosedError", "the upscaler is closed");
        }
        return ctx_;
    }

    upscaler_ctx_t* ctx_ = nullptr;
};

void convert_model(const std::string& input, const std::string& output, sd_type_t type,
                   const std::string& vae, const std::string& tensor_type_rules, bool convert_name,
                   py::object progress) {
    GenerationScope scope(std::move(progress), py::none(), PREVIEW_NONE, 1, false, false);
#ifndef SDCPP_NO_CONVERT_CANCEL
    // The flag is process-wide; under the scope's lock no other convert() is running.
    sd_convert_set_cancel(false);
    scope.cancel_convert_on_error();
#endif
    clear_last_error();
    bool ok = false;
    {
        py::gil_scoped_release release;
        // Empty strings, not NULL: the engine builds std::string from tensor_type_rules, as
        // sd-cli (which passes "") never notices.
        ok = ::convert(input.c_str(), vae.c_str(), output.c_str(), type, tensor_type_rules.c_str(),
                       convert_name);
    }
#ifndef SDCPP_NO_CONVERT_CANCEL
    sd_convert_set_cancel(false);
#endif
    scope.finish();
    if (!ok) {
        raise_error("ConversionError", failure("conversion failed"));
    }
}

py::array_t<uint8_t> canny(const py::object& image, float high, float low, float weak,
                           float strong, bool inverse) {
    Image input(image);
    py::array_t<uint8_t> out(std::vector<py::ssize_t>(input.array.shape(), input.array.shape() + input.array.ndim()));
    std::memcpy(out.mutable_data(), input.array.data(), static_cast<size_t>(input.array.nbytes()));
    sd_image_t view = input.view;
    view.data       = out.mutable_data();
    bool ok         = false;
    {
        py::gil_scoped_release release;
        ok = ::preprocess_canny(view, high, low, weak, strong, inverse);
    }
    if (!ok) {
        raise_error("GenerationError", failure("canny preprocessing failed"));
    }
    return out;
}

}  // namespace

void bind_contexts(py::module_& m) {
    const auto preview_args = [] {
        return std::make_tuple(py::arg("progress") = py::none(), py::arg("preview") = py::none(),
                               py::arg("preview_mode")     = PREVIEW_PROJ,
                               py::arg("preview_interval") = 1,
                               py::arg("preview_denoised") = true,
                               py::arg("preview_noisy")    = false);
    };
    auto [a1, a2, a3, a4, a5, a6] = preview_args();
    auto [b1, b2, b3, b4, b5, b6] = preview_args();

    py::class_<Context>(m, "Context", "An sd_ctx_t: loaded weights, ready to generate.")
        .def(py::init<CtxParams&, py::object>(), py::arg("params"), py::arg("progress") = py::none())
        .def("generate_image", &Context::generate_image, py::arg("params"), a1, a2, a3, a4, a5, a6)
        .def("generate_video", &Context::generate_video, py::arg("params"), b1, b2, b3, b4, b5, b6)
        .def("set_cancel", &Context::set_cancel, py::arg("cancel") = true)
        .def_property_readonly("cancelled", &Context::cancelled)
        .def("default_sample_method", &Context::default_sample_method)
        .def("default_scheduler", &Context::default_scheduler, py::arg("sample_method"))
        .def("supports_image_generation", &Context::supports_image_generation)
        .def("supports_video_generation", &Context::supports_video_generation)
        .def_property_readonly("closed", &Context::closed)
        .def("close", &Context::close);

    py::class_<UpscalerContext>(m, "UpscalerContext", "An upscaler_ctx_t (ESRGAN).")
        .def(py::init<const std::string&, bool, bool, int, int>(), py::arg("path"),
             py::arg("offload_params_to_cpu") = false, py::arg("direct") = false,
             py::arg("n_threads") = sd_get_num_physical_cores(), py::arg("tile_size") = 128)
        .def("upscale", &UpscalerContext::upscale, py::arg("image"), py::arg("factor"),
             py::arg("progress") = py::none())
        .def_property_readonly("factor", &UpscalerContext::factor)
        .def_property_readonly("closed", &UpscalerContext::closed)
        .def("close", &UpscalerContext::close);

    m.def("convert", &convert_model, py::arg("input_path"), py::arg("output_path"),
          py::arg("output_type"), py::arg("vae_path") = "", py::arg("tensor_type_rules") = "",
          py::arg("convert_name") = false, py::arg("progress") = py::none());
    m.def("preprocess_canny", &canny, py::arg("image"), py::arg("high_threshold") = 0.08f,
          py::arg("low_threshold") = 0.08f, py::arg("weak") = 0.8f, py::arg("strong") = 1.0f,
          py::arg("inverse") = false, "Canny edges of a copy of `image` (returned).");
}

}  // namespace sdcpp
