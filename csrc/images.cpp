#include <cstdlib>
#include <cstring>

#include "common.hpp"

namespace sdcpp {

[[noreturn]] void raise_error(const char* cls, const std::string& message) {
    py::object type = py::module_::import("sdcpp.errors").attr(cls);
    PyErr_SetString(type.ptr(), message.c_str());
    throw py::error_already_set();
}

Image::Image(const py::handle& obj) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error("images must be numpy arrays of dtype uint8 (H, W[, C])");
    }
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<uint8_t>())) {
        throw py::type_error("image array dtype must be uint8, got " +
                             std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != 2 && arr.ndim() != 3) {
        throw py::value_error("image array must have shape (H, W) or (H, W, C)");
    }
    // c_style: a non-contiguous view is copied once here, while the GIL is held.
    array            = py::array_t<uint8_t, py::array::c_style>::ensure(arr);
    const auto h     = array.shape(0);
    const auto w     = array.shape(1);
    const auto c     = array.ndim() == 3 ? array.shape(2) : 1;
    if (h <= 0 || w <= 0 || (c != 1 && c != 3 && c != 4)) {
        throw py::value_error("image must be non-empty with 1, 3 or 4 channels");
    }
    // The engine only reads input images (sd_image_t has no const variant), so read-only arrays
    // such as np.asarray(PIL image) are fine.
    view = sd_image_t{static_cast<uint32_t>(w), static_cast<uint32_t>(h), static_cast<uint32_t>(c),
                      const_cast<uint8_t*>(array.data())};
}

std::optional<Image> optional_image(const py::object& obj) {
    if (obj.is_none()) {
        return std::nullopt;
    }
    return Image(obj);
}

std::vector<Image> image_list(const py::object& obj) {
    std::vector<Image> out;
    for (const auto& item : obj) {
        out.emplace_back(item);
    }
    return out;
}

py::object image_or_none(const std::optional<Image>& img) {
    return img ? py::object(img->array) : py::object(py::none());
}

py::list image_objects(const std::vector<Image>& images) {
    py::list out;
    for (const auto& img : images) {
        out.append(img.array);
    }
    return out;
}

std::vector<sd_image_t> image_views(const std::vector<Image>& images) {
    std::vector<sd_image_t> out;
    out.reserve(images.size());
    for (const auto& img : images) {
        out.push_back(img.view);
    }
    return out;
}

static std::vector<py::ssize_t> image_shape(const sd_image_t& img) {
    return {static_cast<py::ssize_t>(img.height), static_cast<py::ssize_t>(img.width),
            static_cast<py::ssize_t>(img.channel)};
}

py::array_t<uint8_t> adopt_image(sd_image_t img) {
    py::capsule owner(img.data, [](void* p) { std::free(p); });
    return py::array_t<uint8_t>(image_shape(img), img.data, owner);
}

py::array_t<uint8_t> copy_image(const sd_image_t& img) {
    py::array_t<uint8_t> out(image_shape(img));
    std::memcpy(out.mutable_data(), img.data,
                static_cast<size_t>(img.width) * img.height * img.channel);
    return out;
}

}  // namespace sdcpp
