// The belt model of the mask's Auto mode: what the belt looks like, learnt
// from the footage itself, with no hand-set thresholds.
//
// Real lines break the easy assumptions (a mostly empty belt, even light, a
// plain belt, a colour camera), so the model assumes only what holds on any
// conveyor: the belt is the one surface that runs through the whole view,
// connected, around the products; the products are compact things on it,
// each much smaller than the view; the light is static and smooth. It learns
// in four steps on each learning frame (the frame as the mask sees it:
// downscaled and blurred):
//
//  1. The belt's colour: the colour modes of the frame are candidates, and the
//     belt is the one whose pixels make the largest connected region. A belt
//     half covered by products still surrounds them; the products' colour,
//     however much of the frame it covers, comes in separate pieces.
//  2. The light: a smooth field (a quadratic surface of log brightness) fitted
//     to the belt's pixels cell by cell, then divided out, so that a corner 30%
//     darker looks like the centre. Steps 1 and 2 alternate (first frame only).
//  3. A first segmentation: pixels far from the belt colour (past the valley
//     that ends the belt's own spread of colours), opened, as connected
//     components. Components that reach across the view (rails, seams, a mesh
//     belt's grid) and crumbs far smaller than the typical component are belt.
//     The deep interiors of the rest are product; what lies well away from
//     them is belt; the rims between (edges, shadows) teach nothing.
//  4. Evidence per colour: how often each colour was seen as product and as
//     belt. A colour is product when the product evidence outweighs the belt's;
//     a colour never seen is product when it is far from the belt colour (the
//     rule of the old model), and a colour far from it stays product unless
//     the belt evidence for it is real, not a few stray pixels (products that
//     lay in rows reaching across the view while the model learnt taught
//     nothing, and their colour must not be lost to a blend at an edge). A
//     colour that could be the belt in shadow (the belt's chroma, 35-92% of
//     its lightness) is shadow unless product evidence says otherwise: that
//     is what keeps dark grey products of a monochrome camera, whose every
//     pixel has the belt's (zero) chroma.
//
// Per frame the work is what it was: divide out the light (only when it is
// uneven) and read each pixel's class from a table over BGR colours.
#pragma once

#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <vector>

namespace cqc {

struct MaskParams;

// The figures the model judged by, for reports (summary.json's "mask"
// section) and for `conveyor-qc inspect`. Lab values are OpenCV's 8-bit Lab
// (L, a, b in [0, 255], a and b offset by 128).
struct BeltModelStats {
    int frames_learnt = 0;
    cv::Vec3f belt_lab{0, 0, 0};         // the belt's colour, in the light of the frame's centre
    cv::Vec3f belt_sigma{0, 0, 0};       // its noise per Lab channel (at least auto_min_sigma)
    float threshold = 0.f;               // distance, in those sigmas, past which a colour never seen is product
    float belt_region = 0.f;             // share of the first frame in the belt's largest connected region
    int candidates = 0;                  // colour modes considered for the belt
    float light_range = 1.f;             // brightest / darkest point of the fitted light field
    float object_share = 0.f;            // share of the learning frames' pixels in product components
    int object_components = 0;           // product components found in the learning frames
    float typical_area = 0.f;            // their area-weighted median area, mask pixels
    float ambiguous_share = 0.f;         // share of learnt pixels whose colour was seen as both (within 2x)
    float belt_share_at_learning = 0.f;  // share of learning pixels the final table calls belt or shadow
    bool colour = true;                  // the frames carry colour (false: a monochrome camera)
};

class BeltModel {
  public:
    explicit BeltModel(const MaskParams& params);  // the auto_* and shadow_* fields

    // Learn from one frame (CV_8UC3 BGR, the size every later frame has). The
    // first call finds the belt and the light; every call adds evidence and
    // rebuilds the colour table, so classify() works after the first.
    void learn(const cv::Mat& bgr);
    int frames_learnt() const { return stats_.frames_learnt; }
    // The size of the frames learnt from (empty before the first learn()).
    cv::Size frame_size() const { return gain_f_.size(); }

    // Per frame: `object` and `shadow` (0/255, the frame's size) and `mask` =
    // object & ~shadow (or object alone with shadows off). Needs one learn().
    void classify(const cv::Mat& bgr, cv::Mat& object, cv::Mat& shadow, cv::Mat& mask);

    void reset();

    const BeltModelStats& stats() const { return stats_; }
    // The light field's gain per pixel (CV_32F, the frame's size; all 1 when the
    // light is even), the first segmentation of the last learning frame at
    // half size (CV_8U: 0 unused, 1 belt, 2 rim, 3 product, 4 fixture), and the last frame with the
    // light divided out: for `conveyor-qc inspect`.
    const cv::Mat& light_gain() const { return gain_f_; }
    const cv::Mat& learning_labels() const { return learn_labels_; }
    const cv::Mat& normalised() const { return normalised_; }
    // The class of a BGR colour (as the frame has it once the light is divided
    // out): bit 0 product, bit 1 shadow.
    std::uint8_t colour_class(std::uint8_t b, std::uint8_t g, std::uint8_t r) const;

  private:
    // Evidence histograms: 5 bits per BGR channel.
    static constexpr int kEvidenceBits = 5, kEvidenceBins = 1 << kEvidenceBits;
    // The belt evidence a colour far from the belt's needs, beyond its product
    // evidence, to be belt: this share of all the evidence (about 300 pixels
    // of a 640x360 mask's eight learning frames).
    static constexpr double kFarColourPrior = 1e-3;
    // The decision table: 6 bits per BGR channel (error <= 2 levels, well under
    // the belt's noise), bit 0 product, bit 1 shadow.
    static constexpr int kLutBits = 6;

    // Both work on the half-size copy of the learning frame; `full` is the frame's size.
    void find_belt_and_light(const cv::Mat& half_bgr, cv::Size full);
    void segment_and_count(const cv::Mat& normalised_half_bgr, cv::Size full);
    // segment_and_count()'s steps: the shadow-coloured pixels of each
    // component, the fixtures, and the counting of the colours' evidence.
    std::vector<int> shadowy_pixels(const cv::Mat& lab, const cv::Mat& labels, int n, const cv::Vec3f& belt) const;
    cv::Mat update_fixtures(const cv::Mat& structures, cv::Size full);
    std::uint64_t count_evidence(const cv::Mat& even, const cv::Mat& objects, const cv::Mat& core,
                                 const cv::Mat& around, const cv::Mat& structures, const cv::Mat& fixtures);
    void build_table();
    // `bgr` with the light divided out, into normalised_ (or bgr itself when even).
    const cv::Mat& normalise(const cv::Mat& bgr);

    double shadow_min_ratio_, shadow_max_ratio_, shadow_chroma_, auto_threshold_, min_sigma_;
    bool shadows_;

    BeltModelStats stats_;
    cv::Mat gain_f_;                        // CV_32F per-pixel light gain (inspect)
    cv::Mat half_, half_even_, gain_half_;  // the learning frame at half size, in even light; its gain
    std::vector<std::uint16_t> gain_q8_;    // per channel sample, gain * 256, for the per-frame pass
    bool uneven_light_ = false;
    // The belt's metric (per-channel scale to quarter sigmas) and the threshold in it.
    cv::Vec3f inv_unit_{1.f, 1.f, 1.f};
    float threshold_units_ = 0.f;
    cv::Mat normalised_, learn_labels_;
    // Fixtures (rails, guards: see segment_and_count): structures on every
    // learning frame so far, and the mask's keep-map (0 on fixtures).
    cv::Mat fixtures_seen_, not_fixture_;
    bool has_fixtures_ = false;
    std::vector<std::uint32_t> object_counts_, belt_counts_;  // kEvidenceBins^3 each
    std::vector<std::uint8_t> table_;                         // (1 << kLutBits)^3
    cv::Mat bin_lab_;  // the Lab colour of every table bin's centre (converted once)
};

}  // namespace cqc
