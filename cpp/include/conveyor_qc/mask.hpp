// Object masks without machine learning, as in the seed: colour thresholds
// (the chroma-key idea) minus a shadow mask minus a dilated Canny edge mask,
// then morphology. Or `Auto`: learn the belt from the first frames and take as
// object whatever differs from it, dark-on-light and light-on-dark alike.
#pragma once

#include "conveyor_qc/belt_model.hpp"
#include "conveyor_qc/morphology.hpp"
#include "conveyor_qc/param_range.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cqc {

enum class MaskMode {
    Auto,       // learn the belt's colour from the first frames (no hand-set thresholds)
    Threshold,  // fixed colour range (object_space / object_lower / object_upper)
};

enum class ColorSpace {
    Gray,  // channel 0 only; ranges use element [0]
    HSV,   // OpenCV 8-bit HSV: H in [0, 180), S and V in [0, 255]
    Lab,   // OpenCV 8-bit Lab: L, a, b in [0, 255] (a, b offset by 128)
};

const char* to_string(MaskMode m);
MaskMode mask_mode_from_string(const std::string& s);
const char* to_string(ColorSpace c);
ColorSpace color_space_from_string(const std::string& s);
// Every value, in the order messages and docs/settings.md list them.
inline constexpr MaskMode kMaskModes[] = {MaskMode::Auto, MaskMode::Threshold};
inline constexpr ColorSpace kColorSpaces[] = {ColorSpace::Gray, ColorSpace::HSV, ColorSpace::Lab};

// All sizes are in pixels of the frame the mask is built on (the frame after
// downscaling by track.downscale), because that is where the work happens.
struct MaskParams {
    MaskMode mode = MaskMode::Auto;

    // --- Threshold mode: the object is every pixel inside [object_lower, object_upper]
    // in object_space (inclusive). For a grey level with polarity, use Gray and
    // [0, T] for dark objects on a light belt, [T, 255] for light on dark.
    ColorSpace object_space = ColorSpace::Gray;
    cv::Scalar object_lower{0, 0, 0};
    cv::Scalar object_upper{100, 255, 255};

    // --- Shadow: pixels in this range are removed from the object mask. Threshold
    // mode uses the range below; Auto mode instead treats as shadow a colour with
    // the belt's chroma (within shadow_chroma noise sigmas) whose lightness is
    // between shadow_min_ratio and shadow_max_ratio of the belt's, unless the
    // learning frames saw it inside products.
    bool shadow_enabled = true;
    ColorSpace shadow_space = ColorSpace::HSV;
    cv::Scalar shadow_lower{0, 0, 0};
    cv::Scalar shadow_upper{180, 60, 140};
    double shadow_min_ratio = 0.35;  // lightness ratio to the belt
    double shadow_max_ratio = 0.92;
    double shadow_chroma = 4.0;  // max chroma distance to the belt, in belt noise sigmas

    // --- Edges: a Canny edge mask, dilated, is removed from the object mask so
    // that objects touching each other fall apart into two components.
    bool edges_enabled = false;  // off by default: on textured objects the edges cut objects apart more often than they
                                 // split touching pairs (docs/architecture.md)
    double canny_low = 60.0;
    double canny_high = 160.0;
    int edge_dilate = 1;  // dilation iterations of the edge mask (3x3)

    // --- Auto mode: the belt model (belt_model.hpp) learns from the first
    // auto_learn_frames frames (one frame in every auto_learn_stride). A colour
    // is product by the evidence of those frames; a colour they never showed is
    // product when its Lab distance to the belt passes the valley that ends the
    // belt's own colours, and never nearer than auto_threshold noise sigmas.
    int auto_learn_frames = 8;
    int auto_learn_stride = 4;
    double auto_threshold = 3.0;
    double auto_min_sigma = 3.0;  // floor of the belt noise sigma, 8-bit Lab units

    // --- Morphology, applied in this order: open, erode, dilate, close.
    int blur = 3;         // median blur aperture before thresholding (1 = off)
    int kernel_size = 5;  // elliptic structuring element
    int open_iterations = 1;
    int erode_iterations = 0;
    int dilate_iterations = 0;
    // Off by default: on a crowded belt a closing joins neighbours a
    // few pixels apart into clusters no split undoes, and the pieces of a
    // broken product it used to join are grouped by the detector instead
    // (detect.group_gap). With edges on, more than 1 can re-join touching
    // objects the edges split.
    int close_iterations = 0;
    // Fill holes enclosed by an object (chocolate chips, specular spots, a
    // printed label): objects are solid things, and a hole would cut their
    // area, shape figures and, with edges, their very outline. In Auto mode a
    // large hole that is not convex (belt inside a ring of touching products)
    // stays open.
    bool fill_holes = true;

    // The numeric fields' allowed values, read from this struct (a bound may
    // be another field). Besides these, validate() checks the enums and the
    // colour ranges: each channel in [0, 255] ([0, 180] for HSV's H), lower
    // <= upper.
    std::vector<ParamRange> ranges() const {
        using R = ParamRange;
        return {
            R("shadow_min_ratio", shadow_min_ratio).above(0).below(1),
            R("shadow_max_ratio", shadow_max_ratio).above(shadow_min_ratio, "shadow_min_ratio").at_most(1),
            R("shadow_chroma", shadow_chroma).above(0).at_most(100),
            R("canny_low", canny_low).at_least(0).at_most(canny_high, "canny_high"),
            R("canny_high", canny_high).at_least(canny_low, "canny_low").at_most(1000),
            R("edge_dilate", edge_dilate).at_least(0).at_most(10),
            R("auto_learn_frames", auto_learn_frames).at_least(1).at_most(1000),
            R("auto_learn_stride", auto_learn_stride).at_least(1).at_most(1000),
            R("auto_threshold", auto_threshold).above(0).at_most(100),
            R("auto_min_sigma", auto_min_sigma).above(0).at_most(100),
            R("blur", blur).odd().at_least(1).at_most(15),
            R("kernel_size", kernel_size).odd().at_least(1).at_most(31),
            R("open_iterations", open_iterations).at_least(0).at_most(20),
            R("erode_iterations", erode_iterations).at_least(0).at_most(20),
            R("dilate_iterations", dilate_iterations).at_least(0).at_most(20),
            R("close_iterations", close_iterations).at_least(0).at_most(20),
        };
    }
    void validate() const;  // throws ParamError naming "mask.<field>"
};

// cv::medianBlur(src, dst, 3), the same bytes, about twice as fast (the
// mask's default blur): 8-bit, 1 to 4 channels, dst not src. `scratch` is
// grown as needed (no allocation in the steady state).
void median_blur3(const cv::Mat& src, cv::Mat& dst, std::vector<std::uint8_t>& scratch);

// Builds the binary object mask (CV_8U, 0 or 255) of a BGR frame. Owns its
// buffers, so in the steady state building a mask allocates nothing (the
// morphology and the hole filling are morphology.hpp's, bit for bit as
// OpenCV's, which allocate on every call). A `mask` that is a view into a
// larger image is filtered as an image of its own (OpenCV's morphology reads a
// view's surroundings as its border).
class MaskBuilder {
  public:
    explicit MaskBuilder(const MaskParams& params);  // validates

    // Feed a frame. In Auto mode the first frames also teach the belt model;
    // until it has seen one frame the mask is empty. `mask` is resized as
    // needed and has the size of `bgr`. A frame of another size than the belt
    // model learnt from is another camera: Auto mode forgets the belt and
    // learns again from that frame.
    void build(const cv::Mat& bgr, cv::Mat& mask);

    // True once Auto mode has learnt all its frames (always true in Threshold mode).
    bool ready() const;
    // Forget the learnt belt (e.g. after a camera change).
    void reset();

    const MaskParams& params() const { return params_; }

    // Intermediate masks of the last build(), for debugging and docs.
    const cv::Mat& object_mask() const { return object_; }
    const cv::Mat& shadow_mask() const { return shadow_; }
    const cv::Mat& edge_mask() const { return edges_; }

    // The learnt belt of Auto mode (belt_model.hpp), for reports and inspect.
    const BeltModel& belt_model() const { return belt_; }

  private:
    void build_auto(const cv::Mat& bgr, cv::Mat& mask);  // writes object & ~shadow into mask
    void build_threshold(const cv::Mat& bgr);

    MaskParams params_;
    // Elliptic kernel_size x kernel_size (open, erode, dilate, close) and 3x3
    // rectangle (edge dilation).
    Morphology morphology_, edge_morphology_;
    HoleFiller hole_filler_;
    // Reused buffers.
    cv::Mat blurred_, converted_, gray_, object_, shadow_, edges_;
    cv::Mat tmp_u8_;
    std::vector<std::uint8_t> median_scratch_;
    BeltModel belt_;
    int frames_seen_ = 0;
};

}  // namespace cqc
