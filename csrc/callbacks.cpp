// Trampolines from the library's process-global callbacks into Python.
//
// Rules (STYLE.md, and facts measured on the pinned source):
// - the log text points into a static buffer the library reuses: copy it before anything else;
// - log calls also come from model-loader threads: every trampoline takes the GIL itself;
// - a Python exception must never unwind through library frames: it is caught here, stored, and
//   re-raised by GenerationScope::finish() after the native call returned; a failing progress or
//   preview callback also sets the running context's cancel flag (or, during convert(), the
//   converter's) so the call ends early.
#include <atomic>

#include "common.hpp"

namespace sdcpp {
namespace {

std::mutex g_generation_mutex;

std::mutex g_error_mutex;
std::string g_last_error;

// Python callables, touched only with the GIL held. Raw owned references rather than
// py::object globals, whose destructors would run after the interpreter is gone.
PyObject* g_log_fn      = nullptr;
PyObject* g_progress_fn = nullptr;
PyObject* g_preview_fn  = nullptr;
std::atomic<bool> g_log_enabled{false};
std::exception_ptr g_pending;  // GIL held
sd_ctx_t* g_cancel_target = nullptr;  // GIL held
bool g_cancel_convert      = false;    // GIL held: a failing callback cancels convert()

void replace(PyObject*& slot, const py::object& fn) {
    PyObject* old = slot;
    slot          = fn.is_none() ? nullptr : fn.inc_ref().ptr();
    Py_XDECREF(old);
}

void store_pending() {
    if (!g_pending) {
        g_pending = std::current_exception();
    }
#ifndef SDCPP_NO_CANCEL
    if (g_cancel_target != nullptr) {
        sd_ctx_set_cancel(g_cancel_target, true);
    }
#endif
#ifndef SDCPP_NO_CONVERT_CANCEL
    if (g_cancel_convert) {
        sd_convert_set_cancel(true);
    }
#endif
}

void log_trampoline(sd_log_level_t level, const char* text, void*) {
    if (text == nullptr) {
        return;
    }
    std::string line(text);
    if (level == SD_LOG_ERROR) {
        std::string trimmed = line;
        while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) {
            trimmed.pop_back();
        }
        std::lock_guard<std::mutex> lock(g_error_mutex);
        g_last_error = std::move(trimmed);
    }
    if (!g_log_enabled.load(std::memory_order_acquire)) {
        return;
    }
    py::gil_scoped_acquire gil;
    if (g_log_fn == nullptr) {
        return;
    }
    try {
        py::handle fn(g_log_fn);
        fn(static_cast<int>(level), line);
    } catch (py::error_already_set& e) {
        // A broken log handler must not fail a generation; Python reports it as unraisable.
        e.discard_as_unraisable("sdcpp log callback");
    }
}

void progress_trampoline(int step, int steps, float time, void*) {
    py::gil_scoped_acquire gil;
    if (g_progress_fn == nullptr || g_pending) {
        return;
    }
    try {
        py::handle fn(g_progress_fn);
        fn(step, steps, time);
    } catch (...) {
        store_pending();
    }
}

// Installed when Python gave no progress callback: without any callback the engine prints a
// progress bar to stdout, which is not a library's business.
void silent_progress(int, int, float, void*) {}

void preview_trampoline(int step, int frame_count, sd_image_t* frames, bool is_noisy, void*) {
    py::gil_scoped_acquire gil;
    if (g_preview_fn == nullptr || g_pending || frames == nullptr) {
        return;
    }
    try {
        py::list images;
        for (int i = 0; i < frame_count; i++) {
            if (frames[i].data != nullptr) {
                images.append(copy_image(frames[i]));  // the library keeps these buffers
            }
        }
        py::handle fn(g_preview_fn);
        fn(step, images, is_noisy);
    } catch (...) {
        store_pending();
    }
}

}  // namespace

GenerationScope::GenerationScope(py::object progress, py::object preview, preview_t preview_mode,
                                 int preview_interval, bool preview_denoised, bool preview_noisy) {
    {
        // Wait without the GIL: the holder may need it for its own callbacks.
        py::gil_scoped_release release;
        lock_ = std::unique_lock<std::mutex>(g_generation_mutex);
    }
    g_pending        = nullptr;
    g_cancel_target  = nullptr;
    g_cancel_convert = false;
    replace(g_progress_fn, progress);
    replace(g_preview_fn, preview);
    sd_set_progress_callback(g_progress_fn ? progress_trampoline : silent_progress, nullptr);
    if (g_preview_fn != nullptr) {
        sd_set_preview_callback(preview_trampoline, preview_mode, preview_interval,
                                preview_denoised, preview_noisy, nullptr);
    } else {
        sd_set_preview_callback(nullptr, PREVIEW_NONE, 1, false, false, nullptr);
    }
}

GenerationScope::~GenerationScope() {
    sd_set_progress_callback(silent_progress, nullptr);
    sd_set_preview_callback(nullptr, PREVIEW_NONE, 1, false, false, nullptr);
    replace(g_progress_fn, py::none());
    replace(g_preview_fn, py::none());
    g_cancel_target  = nullptr;
    g_cancel_convert = false;
    g_pending        = nullptr;
}

void GenerationScope::set_cancel_target(sd_ctx_t* ctx) {
    g_cancel_target = ctx;
}

void GenerationScope::cancel_convert_on_error() {
    g_cancel_convert = true;
}

void GenerationScope::finish() {
    if (g_pending) {
        std::exception_ptr pending = g_pending;
        g_pending                  = nullptr;
        std::rethrow_exception(pending);
    }
}

std::string last_error() {
    std::lock_guard<std::mutex> lock(g_error_mutex);
    return g_last_error;
}

void clear_last_error() {
    std::lock_guard<std::mutex> lock(g_error_mutex);
    g_last_error.clear();
}

void install_log_trampoline() {
    sd_set_log_callback(log_trampoline, nullptr);
    sd_set_progress_callback(silent_progress, nullptr);
}

void set_log_callback(py::object fn) {
    replace(g_log_fn, fn);
    g_log_enabled.store(g_log_fn != nullptr, std::memory_order_release);
}

void shutdown_callbacks() {
    // Called from atexit: native threads must stop calling into a finalizing interpreter.
    g_log_enabled.store(false, std::memory_order_release);
    replace(g_log_fn, py::none());
}

}  // namespace sdcpp
