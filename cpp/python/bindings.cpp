// Thin pybind11 bindings of the core. Frames cross from NumPy to cv::Mat
// without a copy, the GIL is released while the core works, and every
// parameter struct is exposed field by field (with the list of field names, so
// the Python config loader can reject unknown keys without a second list).
#include "conveyor_qc/crop_reader.hpp"
#include "conveyor_qc/crossing.hpp"
#include "conveyor_qc/mot.hpp"
#include "conveyor_qc/pipeline.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace py = pybind11;
using namespace cqc;

namespace {

// A cv::Mat header over a NumPy array's memory: no copy. Only uint8 HxWx3
// C-contiguous arrays are accepted; anything else is a Python exception.
cv::Mat frame_view(const py::array& a, const char* what = "frame") {
    if (!py::isinstance<py::array_t<uint8_t>>(a) || a.dtype().kind() != 'u' || a.itemsize() != 1) {
        throw py::type_error(std::string(what) + " must be a uint8 array (got dtype " +
                             py::str(a.dtype()).cast<std::string>() + ")");
    }
    if (a.ndim() != 3 || a.shape(2) != 3) {
        std::string shape = "(";
        for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape(i));
        shape += a.ndim() == 1 ? ",)" : ")";
        throw py::value_error(std::string(what) + " must have shape (height, width, 3), got " + shape);
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(what) + " must be C-contiguous (use numpy.ascontiguousarray to make it so)");
    }
    if (a.shape(0) < 1 || a.shape(1) < 1) throw py::value_error(std::string(what) + " is empty");
    if (a.shape(0) > INT_MAX / 4 || a.shape(1) > INT_MAX / 4)
        throw py::value_error(std::string(what) + " is too large");
    // Rows are packed (C-contiguous), so the step is the row's size: a.strides(0) is not, for
    // one row, where NumPy lets it be anything (found by fuzzing: a 1-row view with stride 0
    // made cv::Mat assert).
    return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC3, const_cast<void*>(a.data()));
}

cv::Mat mask_view(const py::array& a) {
    if (a.dtype().kind() != 'u' || a.itemsize() != 1 || a.ndim() != 2 || !(a.flags() & py::array::c_style)) {
        throw py::value_error("mask must be a C-contiguous 2-D uint8 array");
    }
    if (a.shape(0) > INT_MAX / 4 || a.shape(1) > INT_MAX / 4) throw py::value_error("mask is too large");
    return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC1, const_cast<void*>(a.data()));
}

py::array_t<uint8_t> mask_to_numpy(const cv::Mat& m) {
    py::array_t<uint8_t> out({m.rows, m.cols});
    for (int y = 0; y < m.rows; ++y) std::memcpy(out.mutable_data(y, 0), m.ptr(y), static_cast<size_t>(m.cols));
    return out;
}

// A copy of an 8-bit (1 or 3 channels) or float image, for the debugging
// views (they are small and rarely read; no view into the core's buffers).
py::array image_to_numpy(const cv::Mat& m) {
    if (m.empty()) return py::array_t<uint8_t>(std::vector<py::ssize_t>{0, 0});
    const int cn = m.channels();
    std::vector<py::ssize_t> shape{m.rows, m.cols};
    if (cn > 1) shape.push_back(cn);
    const size_t row = static_cast<size_t>(m.cols) * m.elemSize();
    if (m.depth() == CV_32F) {
        py::array_t<float> out(shape);
        for (int y = 0; y < m.rows; ++y) std::memcpy(out.mutable_data(y), m.ptr(y), row);
        return out;
    }
    py::array_t<uint8_t> out(shape);
    for (int y = 0; y < m.rows; ++y) std::memcpy(out.mutable_data(y), m.ptr(y), row);
    return out;
}

py::array_t<int32_t> ids_array(const std::vector<int>& ids) {
    py::array_t<int32_t> out(static_cast<py::ssize_t>(ids.size()));
    auto o = out.mutable_unchecked<1>();
    for (size_t i = 0; i < ids.size(); ++i) o(static_cast<py::ssize_t>(i)) = ids[i];
    return out;
}

using Box = std::tuple<float, float, float, float>;  // x, y, w, h
Box rect_tuple(const cv::Rect2f& r) {
    return {r.x, r.y, r.width, r.height};
}
std::tuple<float, float, float> vec3_tuple(const cv::Vec3f& v) {
    return {v[0], v[1], v[2]};
}

// ---- What the core hands Python, as typed classes (the stub lists their fields) -------------

// Detections of one frame as columns: one array per field, no Python object per row.
struct Detections {
    py::array_t<float> boxes;                        // (N, 4) x, y, w, h, full-resolution pixels
    py::array_t<float> centroids;                    // (N, 2)
    py::array_t<float> area, solidity, circularity;  // (N,)
};

// One crop as the anomaly model reads it (CropReading, with NumPy copies of its images).
struct CropRead {
    py::array region;                // HxWx3 uint8, the content scaled to work_size
    std::pair<int, int> content_at;  // (x, y) in the crop
    double region_scale;             // region pixels per crop pixel
    py::object outline;              // HxW uint8 0/255, or None: no object
    py::object object;               // HxW uint8 0/255, or None: figures not asked for, or no object
    py::object figures;              // (39,) float64, or None: no object measured
    int pieces;
};

CropRead crop_read(const CropReading& r) {
    py::object figures = py::none();
    if (r.has_object) {
        py::array_t<double> f(kCropFigureCount);
        std::memcpy(f.mutable_data(), r.figures.data(), sizeof(double) * kCropFigureCount);
        figures = std::move(f);
    }
    return CropRead{image_to_numpy(r.region),
                    {r.content_at.x, r.content_at.y},
                    r.region_scale,
                    r.has_outline ? py::object(mask_to_numpy(r.outline)) : py::none(),
                    r.has_object ? py::object(mask_to_numpy(r.object)) : py::none(),
                    std::move(figures),
                    r.pieces};
}

// Row i of an (N, 4) float32 box column: x, y, w, h.
template <class Rows>
void put_box(Rows& rows, py::ssize_t i, const cv::Rect2f& box) {
    rows(i, 0) = box.x;
    rows(i, 1) = box.y;
    rows(i, 2) = box.width;
    rows(i, 3) = box.height;
}

Detections detections_columns(const std::vector<Detection>& ds) {
    const py::ssize_t n = static_cast<py::ssize_t>(ds.size());
    Detections o{py::array_t<float>({n, py::ssize_t(4)}), py::array_t<float>({n, py::ssize_t(2)}),
                 py::array_t<float>(n), py::array_t<float>(n), py::array_t<float>(n)};
    auto b = o.boxes.mutable_unchecked<2>();
    auto c = o.centroids.mutable_unchecked<2>();
    auto a = o.area.mutable_unchecked<1>(), s = o.solidity.mutable_unchecked<1>(),
         k = o.circularity.mutable_unchecked<1>();
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto& d = ds[static_cast<size_t>(i)];
        put_box(b, i, d.box);
        c(i, 0) = d.centroid.x;
        c(i, 1) = d.centroid.y;
        a(i) = d.area;
        s(i) = d.solidity;
        k(i) = d.circularity;
    }
    return o;
}

// The live tracks after one frame: one entry per track, as columns.
struct FrameTracks {
    int frame_index = 0;
    bool detection_frame = false;
    py::array_t<int32_t> ids, keys;
    py::array_t<float> boxes;
    py::array_t<bool> confirmed, whole, best_updated, detected;
    int count = 0;
    py::array_t<int32_t> crossed;
    int counted = 0;
    Detections detections;
};

FrameTracks frame_tracks(const FrameResult& r) {
    const py::ssize_t n = static_cast<py::ssize_t>(r.tracks.size());
    FrameTracks o;
    o.frame_index = r.frame_index;
    o.detection_frame = r.detection_frame;
    o.ids = py::array_t<int32_t>(n);
    o.keys = py::array_t<int32_t>(n);
    o.boxes = py::array_t<float>({n, py::ssize_t(4)});
    o.confirmed = py::array_t<bool>(n);
    o.whole = py::array_t<bool>(n);
    o.best_updated = py::array_t<bool>(n);
    o.detected = py::array_t<bool>(n);
    auto i_ = o.ids.mutable_unchecked<1>(), k_ = o.keys.mutable_unchecked<1>();
    auto b_ = o.boxes.mutable_unchecked<2>();
    auto c_ = o.confirmed.mutable_unchecked<1>(), w_ = o.whole.mutable_unchecked<1>();
    auto be_ = o.best_updated.mutable_unchecked<1>(), d_ = o.detected.mutable_unchecked<1>();
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto& t = r.tracks[static_cast<size_t>(i)];
        i_(i) = t.id;
        k_(i) = t.key;
        put_box(b_, i, t.box);
        c_(i) = t.confirmed;
        w_(i) = t.whole;
        be_(i) = t.best_updated;
        d_(i) = t.detected;
    }
    o.count = r.count;
    o.crossed = ids_array(r.crossed);
    o.counted = r.counted;
    o.detections = detections_columns(r.detections);
    return o;
}

const char* end_name(FinishedTrack::End e) {
    switch (e) {
        case FinishedTrack::End::Exited:
            return "exited";
        case FinishedTrack::End::Lost:
            return "lost";
        case FinishedTrack::End::StreamEnd:
            return "stream_end";
    }
    return "exited";
}

// A track that ended: its whole path, copied out (the core recycles its own memory).
struct FinishedObject {
    int key = 0, id = 0, first_frame = 0, last_frame = 0;
    py::array_t<int32_t> frames;  // (N,)
    py::array_t<float> boxes;     // (N, 4)
    Box best_box;
    int best_frame = 0;
    bool ever_whole = false;
    Detection shape;
    float speed = 0.f, centre = 0.f;
    std::string end;
};

FinishedObject finished_object(const FinishedTrack& t) {
    const py::ssize_t n = static_cast<py::ssize_t>(t.history.size());
    FinishedObject o;
    o.frames = py::array_t<int32_t>(n);
    o.boxes = py::array_t<float>({n, py::ssize_t(4)});
    auto f = o.frames.mutable_unchecked<1>();
    auto b = o.boxes.mutable_unchecked<2>();
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto& p = t.history[static_cast<size_t>(i)];
        f(i) = p.frame;
        put_box(b, i, p.box);
    }
    o.key = t.key;
    o.id = t.id;
    o.first_frame = t.first_frame;
    o.last_frame = t.last_frame;
    o.best_box = rect_tuple(t.best_box);
    o.best_frame = t.best_frame;
    o.ever_whole = t.ever_whole;
    o.shape = t.shape;
    o.speed = t.motion.speed;
    o.centre = t.motion.centre;
    o.end = end_name(t.end);
    return o;
}

// What the end of a stream adds to the counts.
struct StreamEnd {
    py::array_t<int32_t> crossed;  // ids counted at the line at the stream end
    int counted = 0;               // the line's final count
    int count = 0;                 // confirmed objects
};

// The belt model's figures in the order summary.json's "mask" section and inspect.json give them.
py::dict belt_stats_dict(const BeltModelStats& s) {
    py::dict o;
    o["frames_learnt"] = s.frames_learnt;
    o["belt_lab"] = vec3_tuple(s.belt_lab);
    o["belt_sigma"] = vec3_tuple(s.belt_sigma);
    o["threshold"] = s.threshold;
    o["belt_region"] = s.belt_region;
    o["candidates"] = s.candidates;
    o["light_range"] = s.light_range;
    o["object_share"] = s.object_share;
    o["object_components"] = s.object_components;
    o["typical_area"] = s.typical_area;
    o["ambiguous_share"] = s.ambiguous_share;
    o["colour"] = s.colour;
    return o;
}

py::dict component_dict(const ComponentNote& n) {
    py::dict d;
    d["box"] = py::make_tuple(n.box.x, n.box.y, n.box.width, n.box.height);
    d["pixels"] = n.pixels;
    d["area"] = n.area;
    d["solidity"] = n.solidity;
    d["outcome"] = to_string(n.outcome);
    d["first_detection"] = n.first_detection;
    d["detections"] = n.detections;
    d["objects_by_area"] = n.objects_by_area;
    d["peaks"] = n.peaks;
    d["joined"] = n.joined;
    return d;
}

// Binds one parameter struct: each field becomes a property, and its name is
// recorded in the class attribute `FIELDS` (in declaration order).
template <class T>
struct ParamsBinder {
    py::class_<T> cls;
    std::vector<std::string> names;
    std::vector<std::pair<std::string, std::vector<std::string>>> choices;
    ParamsBinder(py::module_& m, const char* name, const char* doc) : cls(m, name, doc) {
        cls.def(py::init<>());
        cls.def("validate", &T::validate, "Raise ParamError naming the first out-of-range field.");
    }
    template <class M>
    ParamsBinder& field(const char* name, M T::*member) {
        cls.def_readwrite(name, member);
        names.emplace_back(name);
        return *this;
    }
    // Enum fields read and write as the strings the config file uses.
    // Their names (CHOICES) from the core's list of the enum's values.
    template <class E, std::size_t N>
    ParamsBinder& enum_field(const char* name, E T::*member, E (*parse)(const std::string&), const E (&values)[N]) {
        cls.def_property(
            name, [member](const T& p) { return std::string(to_string(p.*member)); },
            [member, parse](T& p, const std::string& v) { p.*member = parse(v); });
        names.emplace_back(name);
        std::vector<std::string> words;
        for (const E& v : values) words.emplace_back(to_string(v));
        choices.emplace_back(name, std::move(words));
        return *this;
    }
    ParamsBinder& scalar_field(const char* name, cv::Scalar T::*member) {
        cls.def_property(
            name,
            [member](const T& p) {
                const auto& s = p.*member;
                return std::vector<double>{s[0], s[1], s[2]};
            },
            [member, name](T& p, const std::vector<double>& v) {
                if (v.size() != 3) throw ParamError(std::string(name) + " must be a list of 3 numbers");
                p.*member = cv::Scalar(v[0], v[1], v[2]);
            });
        names.emplace_back(name);
        return *this;
    }
    // FIELDS: the field names in declaration order (a new list each time: the class's own stays as it is).
    // RANGES: the numeric fields' allowed values from the core's own table (T::ranges()), worded as
    // validate() words them, a bound that is another field by its name only; docs/settings.md is
    // generated from them (tools/settings_doc.py).
    void done() {
        cls.def_property_readonly_static(
            "FIELDS", [names = names](const py::object&) { return names; },
            "The settings' names, in declaration order.");
        std::vector<std::pair<std::string, std::string>> ranges;
        for (const ParamRange& r : T().ranges()) ranges.emplace_back(r.field(), r.requirement(false));
        cls.def_property_readonly_static(
            "CHOICES", [choices = choices](const py::object&) { return choices; },
            "(field, the names it takes) of each enum setting, in declaration order.");
        cls.def_property_readonly_static(
            "RANGES", [ranges = std::move(ranges)](const py::object&) { return ranges; },
            "(field, allowed values) of each numeric setting, in the order validate() checks them: "
            "('blur', 'odd in [1, 15]'), ('canny_low', 'in [0, canny_high]').");
    }
};

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "conveyor-qc's C++ core: masks, connected components, the multi-tracker and the counting line.";

    auto param_error = py::register_exception<ParamError>(m, "ParamError", PyExc_ValueError);
    py::register_exception<InputError>(m, "InputError", PyExc_ValueError);
    (void)param_error;

    // The core's results: typed, read-only; arrays are NumPy's (copies the caller owns).
    py::class_<Detection>(m, "Detection", "One object's box and shape figures (types.hpp).")
        .def_property_readonly(
            "box", [](const Detection& d) { return rect_tuple(d.box); }, "(x, y, w, h), full-resolution pixels")
        .def_property_readonly(
            "centroid", [](const Detection& d) { return std::make_tuple(d.centroid.x, d.centroid.y); },
            "(x, y) of the mask pixels' centroid")
        .def_readonly("area", &Detection::area, "mask pixel count, full-resolution px^2")
        .def_readonly("solidity", &Detection::solidity, "area / convex hull area, in (0, 1]")
        .def_readonly("circularity", &Detection::circularity, "4 pi area / perimeter^2, in (0, 1]");

    py::class_<Detections>(m, "Detections", "A frame's detections as columns (N rows).")
        .def_readonly("boxes", &Detections::boxes, "(N, 4) float32: x, y, w, h, full-resolution pixels")
        .def_readonly("centroids", &Detections::centroids, "(N, 2) float32")
        .def_readonly("area", &Detections::area, "(N,) float32, full-resolution px^2")
        .def_readonly("solidity", &Detections::solidity, "(N,) float32")
        .def_readonly("circularity", &Detections::circularity, "(N,) float32")
        .def("__len__", [](const Detections& d) { return d.area.shape(0); });

    py::class_<FrameTracks>(m, "FrameTracks", "The live tracks after one frame, as columns (one row per track).")
        .def_readonly("frame_index", &FrameTracks::frame_index, "0-based index of the frame")
        .def_readonly("detection_frame", &FrameTracks::detection_frame, "detection ran on this frame")
        .def_readonly("ids", &FrameTracks::ids, "(N,) int32: the number shown for a confirmed track, else -1")
        .def_readonly("keys", &FrameTracks::keys, "(N,) int32: a track's internal key, from its first frame")
        .def_readonly("boxes", &FrameTracks::boxes, "(N, 4) float32: x, y, w, h, full-resolution pixels")
        .def_readonly("confirmed", &FrameTracks::confirmed, "(N,) bool: counted as an object (track.min_hits)")
        .def_readonly("whole", &FrameTracks::whole, "(N,) bool: wholly in view")
        .def_readonly("best_updated", &FrameTracks::best_updated, "(N,) bool: the box is its largest so far")
        .def_readonly("detected", &FrameTracks::detected, "(N,) bool: matched to a detection on this frame")
        .def_readonly("count", &FrameTracks::count, "confirmed objects so far")
        .def_readonly("crossed", &FrameTracks::crossed, "(K,) int32: ids counted at the line on this frame")
        .def_readonly("counted", &FrameTracks::counted, "objects counted at the line so far")
        .def_readonly("detections", &FrameTracks::detections, "this frame's detections (empty between them)");

    py::class_<FinishedObject>(m, "FinishedObject", "A confirmed track that ended, with its whole path.")
        .def_readonly("key", &FinishedObject::key)
        .def_readonly("id", &FinishedObject::id, "the object's number")
        .def_readonly("first_frame", &FinishedObject::first_frame)
        .def_readonly("last_frame", &FinishedObject::last_frame)
        .def_readonly("frames", &FinishedObject::frames, "(N,) int32: the frames it was seen on")
        .def_readonly("boxes", &FinishedObject::boxes, "(N, 4) float32: its box on each of them")
        .def_readonly("best_box", &FinishedObject::best_box, "(x, y, w, h) of its largest whole box")
        .def_readonly("best_frame", &FinishedObject::best_frame)
        .def_readonly("ever_whole", &FinishedObject::ever_whole, "it was wholly in view on some frame")
        .def_readonly("shape", &FinishedObject::shape, "its shape figures, from its best detection")
        .def_readonly("speed", &FinishedObject::speed,
                      "its speed along the belt when it ended, px per frame (crossing.hpp; 0: unknown)")
        .def_readonly("centre_along", &FinishedObject::centre,
                      "its centre along the belt on its last frame, px from the entry edge (crossing.hpp)")
        .def_readonly("end", &FinishedObject::end, "how it ended: exited, lost or stream_end");

    py::class_<StreamEnd>(m, "StreamEnd", "What the end of a stream adds to the counts.")
        .def_readonly("crossed", &StreamEnd::crossed, "(K,) int32: ids counted at the line at the stream end")
        .def_readonly("counted", &StreamEnd::counted, "the line's final count")
        .def_readonly("count", &StreamEnd::count, "confirmed objects");

    py::class_<BeltModelStats>(m, "BeltStats", "The figures the learnt belt model judged by (belt_model.hpp).")
        .def_readonly("frames_learnt", &BeltModelStats::frames_learnt,
                      "0: not learnt (threshold mode, or no frame yet)")
        .def_property_readonly(
            "belt_lab", [](const BeltModelStats& s) { return vec3_tuple(s.belt_lab); },
            "the belt's Lab colour in the light of the frame's centre")
        .def_property_readonly(
            "belt_sigma", [](const BeltModelStats& s) { return vec3_tuple(s.belt_sigma); }, "its noise per Lab channel")
        .def_readonly("threshold", &BeltModelStats::threshold,
                      "distance in sigmas past which an unseen colour is product")
        .def_readonly("belt_region", &BeltModelStats::belt_region,
                      "share of the first frame in the belt's largest region")
        .def_readonly("candidates", &BeltModelStats::candidates, "colour modes considered for the belt")
        .def_readonly("light_range", &BeltModelStats::light_range, "brightest / darkest point of the light field")
        .def_readonly("object_share", &BeltModelStats::object_share, "share of learning pixels in product components")
        .def_readonly("object_components", &BeltModelStats::object_components, "product components while learning")
        .def_readonly("typical_area", &BeltModelStats::typical_area, "their area-weighted median area, mask pixels")
        .def_readonly("ambiguous_share", &BeltModelStats::ambiguous_share, "share of learnt pixels seen as both")
        .def_readonly("colour", &BeltModelStats::colour, "the frames carry colour (false: monochrome)")
        .def("as_dict", &belt_stats_dict, "The figures as a dict, in the order summary.json gives them.");

    py::class_<ComponentNote>(m, "ComponentNote", "What the detector did with one connected component (explain on).")
        .def_property_readonly(
            "box", [](const ComponentNote& n) { return std::make_tuple(n.box.x, n.box.y, n.box.width, n.box.height); },
            "(x, y, w, h), mask pixels")
        .def_readonly("pixels", &ComponentNote::pixels)
        .def_readonly("area", &ComponentNote::area, "full-resolution px^2")
        .def_readonly("solidity", &ComponentNote::solidity)
        .def_property_readonly(
            "outcome", [](const ComponentNote& n) { return std::string(to_string(n.outcome)); },
            "one, kept_whole, split, grouped, crumb, too_small, too_large or cut_by_roi")
        .def_readonly("first_detection", &ComponentNote::first_detection,
                      "its first detection in detect()'s output, -1: none")
        .def_readonly("detections", &ComponentNote::detections)
        .def_readonly("objects_by_area", &ComponentNote::objects_by_area,
                      "area / typical object, rounded (0: not tried)")
        .def_readonly("peaks", &ComponentNote::peaks, "distance-transform peaks it was cut around")
        .def_readonly("joined", &ComponentNote::joined, "grouped: the component it joined, else -1")
        .def("as_dict", &component_dict, "The note as a dict (inspect.json).");

    ParamsBinder<MaskParams>(m, "MaskParams", "Object mask settings (see mask.hpp).")
        .enum_field("mode", &MaskParams::mode, &mask_mode_from_string, kMaskModes)
        .enum_field("object_space", &MaskParams::object_space, &color_space_from_string, kColorSpaces)
        .scalar_field("object_lower", &MaskParams::object_lower)
        .scalar_field("object_upper", &MaskParams::object_upper)
        .field("shadow_enabled", &MaskParams::shadow_enabled)
        .enum_field("shadow_space", &MaskParams::shadow_space, &color_space_from_string, kColorSpaces)
        .scalar_field("shadow_lower", &MaskParams::shadow_lower)
        .scalar_field("shadow_upper", &MaskParams::shadow_upper)
        .field("shadow_min_ratio", &MaskParams::shadow_min_ratio)
        .field("shadow_max_ratio", &MaskParams::shadow_max_ratio)
        .field("shadow_chroma", &MaskParams::shadow_chroma)
        .field("edges_enabled", &MaskParams::edges_enabled)
        .field("canny_low", &MaskParams::canny_low)
        .field("canny_high", &MaskParams::canny_high)
        .field("edge_dilate", &MaskParams::edge_dilate)
        .field("auto_learn_frames", &MaskParams::auto_learn_frames)
        .field("auto_learn_stride", &MaskParams::auto_learn_stride)
        .field("auto_threshold", &MaskParams::auto_threshold)
        .field("auto_min_sigma", &MaskParams::auto_min_sigma)
        .field("blur", &MaskParams::blur)
        .field("kernel_size", &MaskParams::kernel_size)
        .field("open_iterations", &MaskParams::open_iterations)
        .field("erode_iterations", &MaskParams::erode_iterations)
        .field("dilate_iterations", &MaskParams::dilate_iterations)
        .field("close_iterations", &MaskParams::close_iterations)
        .field("fill_holes", &MaskParams::fill_holes)
        .done();

    ParamsBinder<DetectParams>(m, "DetectParams", "Connected-component settings (see detector.hpp).")
        .field("min_area", &DetectParams::min_area)
        .field("max_area", &DetectParams::max_area)
        .field("split_solidity", &DetectParams::split_solidity)
        .field("split_min_part", &DetectParams::split_min_part)
        .field("group_gap", &DetectParams::group_gap)
        .done();

    ParamsBinder<TrackParams>(m, "TrackParams", "Multi-tracker settings (see tracker.hpp).")
        .enum_field("kind", &TrackParams::kind, &tracker_kind_from_string, kTrackerKinds)
        .field("downscale", &TrackParams::downscale)
        .field("detect_every", &TrackParams::detect_every)
        .field("entry_strip", &TrackParams::entry_strip)
        .enum_field("direction", &TrackParams::direction, &direction_from_string, kDirections)
        .field("max_distance", &TrackParams::max_distance)
        .field("max_misses", &TrackParams::max_misses)
        .field("min_hits", &TrackParams::min_hits)
        .field("grow_ratio", &TrackParams::grow_ratio)
        .field("edge_margin", &TrackParams::edge_margin)
        .field("duplicate_iou", &TrackParams::duplicate_iou)
        .field("parallel", &TrackParams::parallel)
        .done();

    ParamsBinder<CountParams>(m, "CountParams", "Counting line settings (see counter.hpp).")
        .field("line", &CountParams::line)
        .done();

    py::class_<PipelineParams>(m, "PipelineParams")
        .def(py::init<>())
        .def_readwrite("mask", &PipelineParams::mask)
        .def_readwrite("detect", &PipelineParams::detect)
        .def_readwrite("track", &PipelineParams::track)
        .def_readwrite("count", &PipelineParams::count)
        .def("validate", &PipelineParams::validate);

    py::class_<MaskBuilder>(m, "MaskBuilder", "Builds object masks; keeps the learnt belt model between frames.")
        .def(py::init<const MaskParams&>(), py::arg("params"))
        .def(
            "build",
            [](MaskBuilder& self, const py::array& frame) {
                cv::Mat view = frame_view(frame), mask;
                {
                    py::gil_scoped_release release;
                    self.build(view, mask);
                }
                return mask_to_numpy(mask);
            },
            py::arg("frame"), "Object mask (uint8, 0 or 255) of a BGR frame.")
        .def_property_readonly("ready", &MaskBuilder::ready)
        .def_property_readonly(
            "belt_stats", [](const MaskBuilder& self) { return self.belt_model().stats(); },
            "The figures the learnt belt model judged by (auto mode; belt_model.hpp).")
        .def(
            "object_mask", [](const MaskBuilder& self) { return image_to_numpy(self.object_mask()); },
            "Pixels of a product colour on the last frame, before shadows and morphology.")
        .def(
            "shadow_mask", [](const MaskBuilder& self) { return image_to_numpy(self.shadow_mask()); },
            "Pixels of a shadow colour on the last frame.")
        .def(
            "light_gain", [](const MaskBuilder& self) { return image_to_numpy(self.belt_model().light_gain()); },
            "The belt model's light gain per pixel (float32; 1 where the light is even).")
        .def(
            "learning_labels",
            [](const MaskBuilder& self) { return image_to_numpy(self.belt_model().learning_labels()); },
            "The last learning frame's first segmentation: 0 unused, 1 belt, 2 rim, 3 product.")
        .def(
            "normalised", [](const MaskBuilder& self) { return image_to_numpy(self.belt_model().normalised()); },
            "The last frame with the light divided out (empty while the light is even).");

    py::class_<Detector>(m, "Detector", "Connected components to detections.")
        .def(py::init<const DetectParams&>(), py::arg("params"))
        .def(
            "detect",
            [](Detector& self, const py::array& mask, std::vector<int> roi, double scale) {
                cv::Mat view = mask_view(mask);
                if (!roi.empty() && roi.size() != 4) throw py::value_error("roi must be (x, y, w, h) or empty");
                cv::Rect r = roi.empty() ? cv::Rect() : cv::Rect(roi[0], roi[1], roi[2], roi[3]);
                std::vector<Detection> out;
                {
                    py::gil_scoped_release release;
                    self.detect(view, r, scale, out);
                }
                return detections_columns(out);
            },
            py::arg("mask"), py::arg("roi") = std::vector<int>{}, py::arg("scale") = 1.0,
            "Detections as columns: boxes (N,4 x,y,w,h), centroids, area, solidity, circularity.")
        .def("explain", &Detector::explain, py::arg("on") = true,
             "Keep a note of every component's fate on each detect() (components()).")
        .def(
            "components", [](const Detector& self) { return self.notes(); },
            "With explain on: a ComponentNote for every component of the last detect(), in label order.")
        .def_property_readonly("typical_area", &Detector::last_typical,
                               "The typical object's area (full-resolution px^2) the last detect() used; 0: none yet.");

    ParamsBinder<CropReadParams>(m, "CropReadParams", "How a crop is read for the anomaly model (see crop_reader.hpp).")
        .field("work_size", &CropReadParams::work_size)
        .field("area_resize", &CropReadParams::area_resize)
        .field("figures", &CropReadParams::figures)
        .done();

    py::class_<CropRead>(m, "CropReading", "What one crop shows: its object's outline and figures (crop_reader.hpp).")
        .def_readonly("region", &CropRead::region, "The crop's content scaled to work_size (BGR uint8).")
        .def_readonly("content_at", &CropRead::content_at, "Where the content starts in the crop (x, y).")
        .def_readonly("region_scale", &CropRead::region_scale, "Region pixels per crop pixel.")
        .def_readonly("outline", &CropRead::outline,
                      "The whole object, holes filled (uint8 0/255, region's size); None: no object.")
        .def_readonly("object", &CropRead::object,
                      "Otsu's object, holes kept, that the figures measure (uint8 0/255, region's size); None: "
                      "figures not asked for, or no object.")
        .def_readonly("figures", &CropRead::figures,
                      "The 39 figures (float64, CROP_FIGURE_NAMES); None: not asked for, or no object.")
        .def_readonly("pieces", &CropRead::pieces, "The object's sizeable pieces (2: broken in two).");

    m.attr("CROP_FIGURE_NAMES") =
        py::tuple(py::cast(std::vector<std::string>(kCropFigureNames.begin(), kCropFigureNames.end())));

    py::class_<CropReader>(m, "CropReader", "Finds a crop's object and measures it, for the anomaly model.")
        .def(py::init<const CropReadParams&>(), py::arg("params"))
        .def(
            "read",
            [](const CropReader& self, const py::array& crop) {
                cv::Mat view = frame_view(crop, "crop");
                CropReading r;
                {
                    py::gil_scoped_release release;
                    r = self.read(view);
                }
                return crop_read(r);
            },
            py::arg("crop"), "Read one BGR crop (uint8, HxWx3, C-contiguous; not copied).");

    m.def(
        "downscale",
        [](const py::array& frame, double r) {
            if (!(r > 0.0 && r <= 1.0)) throw py::value_error("downscale factor must be in (0, 1]");
            cv::Mat view = frame_view(frame), small, scratch;
            {
                py::gil_scoped_release release;
                downscale_frame(view, r, small, scratch);
            }
            if (small.data == view.data) small = view.clone();  // r = 1: a copy the caller owns
            py::array_t<uint8_t> out(
                {static_cast<py::ssize_t>(small.rows), static_cast<py::ssize_t>(small.cols), py::ssize_t(3)});
            for (int y = 0; y < small.rows; ++y)
                std::memcpy(out.mutable_data(y), small.ptr(y), static_cast<size_t>(small.cols) * 3);
            return out;
        },
        py::arg("frame"), py::arg("r"),
        "The BGR frame downscaled by r as the pipeline does it (track.downscale): same size, same pixels.");

    m.def(
        "mot_lines",
        [](int track_id, const py::array& frames, const py::array& boxes) {
            if (!py::isinstance<py::array_t<int32_t>>(frames) || frames.ndim() != 1 ||
                !(frames.flags() & py::array::c_style))
                throw py::value_error("frames must be a C-contiguous int32 array of shape (N,)");
            // float32 (the core's) or float64, written as given: a cast would change the numbers.
            const bool single = py::isinstance<py::array_t<float>>(boxes);
            if (!(single || py::isinstance<py::array_t<double>>(boxes)) || boxes.ndim() != 2 || boxes.shape(1) != 4 ||
                boxes.shape(0) != frames.shape(0) || !(boxes.flags() & py::array::c_style))
                throw py::value_error(
                    "boxes must be a C-contiguous float32 or float64 array of shape (N, 4), N = len(frames)");
            const auto* f = static_cast<const int*>(frames.data());
            const auto n = static_cast<std::size_t>(frames.shape(0));
            std::string out;
            {
                py::gil_scoped_release release;
                if (single) append_mot_lines(out, track_id, f, static_cast<const float*>(boxes.data()), n);
                else append_mot_lines(out, track_id, f, static_cast<const double*>(boxes.data()), n);
            }
            return py::bytes(out);
        },
        py::arg("track_id"), py::arg("frames"), py::arg("boxes"),
        "One track's lines of tracks.txt (MOTChallenge: frame,id,x,y,w,h,1,-1,-1,-1, frames 1-based, numbers to "
        "two decimals without trailing zeros), each ending with a newline: frames (N,) int32 as the core numbers "
        "them (0-based), boxes (N, 4) float32 or float64.");

    m.def("format_decimal2", &format_decimal2, py::arg("value"),
          "value to two decimals as printf rounds it, trailing zeros and point dropped ('12', '12.5', '-0').");

    m.def(
        "count_line_segment",
        [](std::pair<int, int> frame_size, double line, const std::string& direction) {
            CountParams params;
            params.line = line;
            const auto seg = LineCounter(params, direction_from_string(direction))
                                 .segment(cv::Size(frame_size.first, frame_size.second));
            return std::make_pair(std::make_pair(seg.first.x, seg.first.y), std::make_pair(seg.second.x, seg.second.y));
        },
        py::arg("frame_size"), py::arg("line"), py::arg("direction"),
        "End points ((x0, y0), (x1, y1)) of the counting line across a (width, height) frame, as the "
        "counter places it (count.line along the belt from the entry edge, inside the frame).");

    py::class_<Crossing>(m, "Crossing", "When an object reaches a line downstream of the view (crossing.hpp).")
        .def_readonly("known", &Crossing::known, "false: its speed is not known")
        .def_readonly("centre", &Crossing::centre, "frames after its last frame when its centre reaches the line")
        .def_readonly("front", &Crossing::front, "... its leading edge")
        .def_readonly("back", &Crossing::back, "... its trailing edge");

    m.def(
        "predict_crossing",
        [](float centre, float speed, const Box& full_box, const std::string& direction, std::pair<int, int> frame_size,
           double beyond_exit) {
            const BeltAxis axis{direction_from_string(direction), cv::Size(frame_size.first, frame_size.second)};
            if (axis.direction == Direction::Auto) throw py::value_error("predict_crossing needs a known direction");
            const cv::Rect2f box(std::get<0>(full_box), std::get<1>(full_box), std::get<2>(full_box),
                                 std::get<3>(full_box));
            return predict_crossing(BeltMotion{speed, centre}, box, axis, beyond_exit);
        },
        py::arg("centre"), py::arg("speed"), py::arg("full_box"), py::arg("direction"), py::arg("frame_size"),
        py::arg("beyond_exit"),
        "When an object that ended with its centre `centre` px along the belt (from the entry edge) moving at "
        "`speed` px a frame crosses a line `beyond_exit` px past the exit edge (a reject gate); `full_box` "
        "(x, y, w, h, its largest whole box) gives its length. In frames after its last frame.");

    py::class_<Pipeline>(m, "Pipeline", "The core's per-frame job: downscale, mask, components, tracking.")
        .def(py::init<const PipelineParams&>(), py::arg("params"))
        .def(
            "process",
            [](Pipeline& self, const py::array& frame) {
                cv::Mat view = frame_view(frame);
                const FrameResult* r;
                {
                    py::gil_scoped_release release;
                    r = &self.process(view);
                }
                return frame_tracks(*r);
            },
            py::arg("frame"),
            "Process the next BGR frame (uint8, HxWx3, C-contiguous; not copied). Returns the live tracks.")
        .def(
            "take_finished",
            [](Pipeline& self) {
                std::vector<FinishedTrack> done;
                self.take_finished(done);
                std::vector<FinishedObject> out;
                out.reserve(done.size());
                for (const auto& t : done) out.push_back(finished_object(t));  // copies: the arrays are Python's
                self.recycle(done);                                            // their memory serves the next objects
                return out;
            },
            "Tracks confirmed and ended since the last call.")
        .def(
            "finish",
            [](Pipeline& self) {
                const FrameResult& r = self.finish();
                return StreamEnd{ids_array(r.crossed), r.counted, r.count};
            },
            "End of stream: every live confirmed track becomes finished (take them with take_finished).")
        .def_property_readonly("frames_processed", &Pipeline::frames_processed)
        .def_property_readonly(
            "belt_stats", [](const Pipeline& self) { return self.mask_builder().belt_model().stats(); },
            "The figures the learnt belt model judged by (mask.mode auto; belt_model.hpp).")
        .def_property_readonly(
            "direction", [](const Pipeline& self) { return std::string(to_string(self.direction())); },
            "The belt's direction: track.direction, or with 'auto' the direction read from the footage "
            "once known ('auto' until then).")
        .def(
            "last_mask", [](const Pipeline& self) { return mask_to_numpy(self.last_mask()); },
            "The object mask of the last detection frame (at the downscaled size).")
        .def(
            "downscaled",
            [](Pipeline& self, const py::array& frame) {
                cv::Mat view = frame_view(frame);
                const cv::Size size = self.downscaled_size();
                if (size.empty()) throw InputError("no frame processed yet: nothing to downscale");
                py::array_t<uint8_t> out({size.height, size.width, 3});
                cv::Mat dst(size.height, size.width, CV_8UC3, out.mutable_data());  // filled in place
                {
                    py::gil_scoped_release release;
                    self.downscaled(view, dst);
                }
                return out;
            },
            py::arg("frame"),
            "The last frame processed (``frame``: that same frame), downscaled by track.downscale as the "
            "core does it: a new array, a copy of the core's own downscaled frame when it made one.")
        .def_property_readonly(
            "downscaled_size",
            [](const Pipeline& self) {
                const cv::Size s = self.downscaled_size();
                return py::make_tuple(s.width, s.height);
            },
            "(width, height) of the frames downscaled by track.downscale ((0, 0) before the first frame).");
}
