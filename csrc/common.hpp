// Shared pieces of the binding: error translation, images, the process-global callback state.
// Policy lives in Python (sdcpp/); this layer only converts, owns and releases the GIL.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stable-diffusion.h"

namespace py = pybind11;

namespace sdcpp {

// Raise sdcpp.errors.<cls>(message). The exception tree lives in Python (sdcpp/errors.py).
[[noreturn]] void raise_error(const char* cls, const std::string& message);

// ---- images ---------------------------------------------------------------------------------

// An image argument: keeps the numpy array alive and exposes it as an sd_image_t view.
// Only C-contiguous uint8 arrays of shape (H, W) or (H, W, C) are accepted; anything else is a
// TypeError/ValueError raised while the GIL is held, never something native code sees.
struct Image {
    py::array_t<uint8_t, py::array::c_style> array;
    sd_image_t view{0, 0, 0, nullptr};

    Image() = default;
    explicit Image(const py::handle& obj);
};

std::optional<Image> optional_image(const py::object& obj);
std::vector<Image> image_list(const py::object& obj);
py::object image_or_none(const std::optional<Image>& img);
py::list image_objects(const std::vector<Image>& images);
std::vector<sd_image_t> image_views(const std::vector<Image>& images);

// Wrap library-allocated pixels (malloc'd) in a numpy array that frees them: no copy.
py::array_t<uint8_t> adopt_image(sd_image_t img);
// Copy pixels the library keeps ownership of (preview frames).
py::array_t<uint8_t> copy_image(const sd_image_t& img);

// ---- callbacks ------------------------------------------------------------------------------

// The library's callbacks are process-global. One GenerationScope at a time (a global mutex,
// waited for without the GIL) installs the progress/preview trampolines for one native call and
// removes them afterwards. Exceptions raised by Python callbacks are stored and re-raised by
// finish() once the native call has returned; nothing unwinds through library frames.
class GenerationScope {
public:
    GenerationScope(py::object progress, py::object preview, preview_t preview_mode,
                    int preview_interval, bool preview_denoised, bool preview_noisy);
    ~GenerationScope();
    GenerationScope(const GenerationScope&)            = delete;
    GenerationScope& operator=(const GenerationScope&) = delete;
    // The context a failing callback cancels (set once the handle is known to be valid).
    void set_cancel_target(sd_ctx_t* ctx);
    // A failing callback cancels the running convert() instead (sd_convert_set_cancel).
    void cancel_convert_on_error();
    // Re-raise a stored callback exception, if any (GIL held).
    void finish();

private:
    std::unique_lock<std::mutex> lock_;
};

// Last ERROR-level line the library logged (the only detail of a NULL return).
std::string last_error();
void clear_last_error();
void install_log_trampoline();
void set_log_callback(py::object fn);
void shutdown_callbacks();

}  // namespace sdcpp
