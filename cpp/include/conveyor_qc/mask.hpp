// Object masks without machine learning, as in the seed: colour thresholds
// (the chroma-key idea) minus a shadow mask minus a dilated Canny edge mask,
// then morphology. Or `Auto`: learn the belt from the first frames and take as
// object whatever differs from it, dark-on-light and light-on-dark alike.
#pragma once

#include "conveyor_qc/morphology.hpp"
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
    // mode uses the range below; Auto mode instead treats as shadow a pixel with
    // the belt's chroma whose lightness is between shadow_min_ratio and
    // shadow_max_ratio of the belt's.
    bool shadow_enabled = true;
    ColorSpace shadow_space = ColorSpace::HSV;
    cv::Scalar shadow_lower{0, 0, 0};
    cv::Scalar shadow_upper{180, 60, 140};
    double shadow_min_ratio = 0.35;  // lightness ratio to the belt, (0, 1)
    double shadow_max_ratio = 0.92;  // (shadow_min_ratio, 1]
    double shadow_chroma = 4.0;      // max chroma distance to the belt, in belt noise sigmas

    // --- Edges: a Canny edge mask, dilated, is removed from the object mask so
    // that objects touching each other fall apart into two components.
    bool edges_enabled = false;  // off by default: on textured objects the edges cut objects apart more often than they split touching pairs (docs/architecture.md)
    double canny_low = 60.0;     // [0, canny_high]
    double canny_high = 160.0;   // [canny_low, 1000]
    int edge_dilate = 1;         // dilation iterations of the edge mask (3x3), [0, 10]

    // --- Auto mode: belt model learnt from the first auto_learn_frames frames
    // (one frame in every auto_learn_stride), then a pixel is object when its
    // Lab distance to the belt exceeds auto_threshold robust sigmas.
    int auto_learn_frames = 8;       // [1, 1000]
    int auto_learn_stride = 4;       // [1, 1000]
    double auto_threshold = 6.0;     // (0, 100]
    double auto_min_sigma = 3.0;     // floor of the belt noise sigma, 8-bit Lab units, (0, 100]

    // --- Morphology, applied in this order: open, erode, dilate, close.
    int blur = 3;                // median blur aperture before thresholding, odd in [1, 15] (1 = off)
    int kernel_size = 5;         // elliptic structuring element, odd in [1, 31]
    int open_iterations = 1;     // [0, 20]
    int erode_iterations = 0;    // [0, 20]
    int dilate_iterations = 0;   // [0, 20]
    int close_iterations = 2;    // [0, 20]; closes cracks in broken objects; with edges on, more than 1 can re-join touching objects the edges split
    // Fill holes enclosed by an object (chocolate chips, specular spots, a
    // printed label): objects are solid things, and a hole would cut their
    // area, shape figures and, with edges, their very outline.
    bool fill_holes = true;

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
    // needed and has the size of `bgr`.
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

private:
    void learn(const cv::Mat& lab);
    // Returns true when it wrote `mask` (object & ~shadow) itself.
    bool build_auto(const cv::Mat& bgr, cv::Mat& mask);
    void build_threshold(const cv::Mat& bgr);

    MaskParams params_;
    // Elliptic kernel_size x kernel_size (open, erode, dilate, close) and 3x3
    // rectangle (edge dilation).
    Morphology morphology_, edge_morphology_;
    HoleFiller hole_filler_;
    // Reused buffers.
    cv::Mat blurred_, converted_, lab_, gray_, object_, shadow_, edges_;
    cv::Mat tmp_u8_;
    std::vector<std::uint8_t> median_scratch_;
    // Belt model (Auto mode).
    int frames_seen_ = 0;
    int frames_learnt_ = 0;
    cv::Vec3f belt_mean_{0, 0, 0};
    cv::Vec3f belt_sigma_{1, 1, 1};
    // Per-channel histograms of the pooled Lab samples (exact median and MAD
    // without sorting), and per-level look-up tables derived from the model.
    std::array<std::array<std::uint32_t, 256>, 3> hist_{};
    std::array<std::array<float, 256>, 3> lut_{};        // ((v - mean_c) / sigma_c)^2
    std::array<std::uint8_t, 256> shadow_l_{};           // L level within the shadow ratio band
    // Once the belt model is learnt, the whole decision per pixel as a table
    // over BGR at kLutBits bits per channel: bit 0 object, bit 1 shadow. It
    // replaces the per-frame BGR->Lab conversion (the largest cost of the
    // mask); 6 bits (error <= 2 levels per channel) sit well under the belt's
    // noise (auto_min_sigma >= 1 Lab level spans several BGR levels).
    static constexpr int kLutBits = 6;
    std::vector<std::uint8_t> bgr_lut_;
    bool bgr_lut_ready_ = false;
    void build_bgr_lut();
    // The exact path: object and shadow masks (sized like `lab`) from Lab pixels.
    void classify_lab(const cv::Mat& lab, cv::Mat& object, cv::Mat& shadow) const;
    void classify_bgr(const cv::Mat& bgr, cv::Mat& mask);  // the table path; also writes object & ~shadow into mask
    void update_model();
};

}  // namespace cqc
