// From a binary mask to detections: connected components with their box,
// centroid, area and the shape figures later stages need.
#pragma once

#include "conveyor_qc/components.hpp"
#include "conveyor_qc/contour.hpp"
#include "conveyor_qc/distance.hpp"
#include "conveyor_qc/morphology.hpp"
#include "conveyor_qc/param_range.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <array>
#include <limits>
#include <utility>
#include <vector>

namespace cqc {

struct DetectParams {
    // Area bounds in full-resolution px^2; components outside are dropped.
    double min_area = 400.0;
    double max_area = 1.0e6;
    // Split components that are several touching objects: a distance-transform
    // peak search cuts a component whose solidity is below split_solidity into
    // one part per peak. 0 disables.
    // A part of a split smaller than this fraction of a typical single object
    // (the median area of recent compact detections) is a piece, not an
    // object: it joins its neighbouring part. A cookie broken along a deep
    // crack looks like two touching ones, but its halves are half-sized.
    // Merging stops at the number of objects the component's area holds
    // (area / typical area, rounded), and such a component is also cut at
    // shallower necks: a small broken object pressed against a whole one
    // stays apart. A part that the frame's side cuts (a row along the belt's
    // edge) joins only under a quarter of a typical object, or this fraction
    // if lower: an object counts from 40% in view. 0 keeps every split.
    double split_min_part = 0.6;
    double split_solidity = 0.93;  // a lone round or square object has solidity > 0.95, two touching ones < 0.9
    // Pieces of one object (a product broken in two, cracked across) lie as
    // separate components a few pixels apart: a whole component smaller than
    // 3/4 of a typical object joins the nearest whole component within this
    // many full-resolution pixels, when the two together are at most 1.4
    // typical objects. 0 disables.
    double group_gap = 16.0;

    // The fields' allowed values, read from this struct (a bound may be
    // another field), in the order validate() checks them.
    std::vector<ParamRange> ranges() const {
        using R = ParamRange;
        return {
            R("min_area", min_area).at_least(0).at_most(max_area, "max_area"),
            R("max_area", max_area).at_least(min_area, "min_area").at_most(1e9),
            R("split_solidity", split_solidity).at_least(0).at_most(1),
            R("split_min_part", split_min_part).at_least(0).at_most(1),
            R("group_gap", group_gap).at_least(0).at_most(100),
        };
    }
    void validate() const;  // throws ParamError naming "detect.<field>"
};

// Finds connected components in `mask` (CV_8U, nonzero = object) inside `roi`
// (mask pixels; empty = whole mask). `scale` is mask pixels per full-resolution
// pixel (e.g. 0.4 when the mask was built on a frame downscaled by 0.4): every
// figure of the returned detections is in full-resolution pixels.
// Components that touch the ROI's sides other than the frame border are
// dropped: they belong to objects already past the strip.
// The same figures as OpenCV's connectedComponentsWithStats, findContours,
// convexHull and distanceTransform give, from allocation-free equivalents
// (components.hpp, contour.hpp, distance.hpp): its buffers grow only, so in
// the steady state detect() allocates nothing (cpp/tests/test_alloc.cpp).
// What became of one connected component, for `conveyor-qc inspect` and
// the tests (Detector::explain).
struct ComponentNote {
    enum class Outcome {
        One,        // one object, as it is
        KeptWhole,  // not solid enough for one object, but no cut found or its parts rejoined
        Split,      // cut into `detections` objects
        Grouped,    // a piece of another component's object (joined: that component's note)
        Crumb,      // a piece under a quarter of a typical object that joined none: no object
        TooSmall,   // under detect.min_area
        TooLarge,   // over detect.max_area
        CutByRoi,   // touches a side of the detection ROI inside the frame
    };
    cv::Rect box;  // mask pixels
    int pixels = 0;
    float area = 0.f;  // full-resolution px^2
    float solidity = 1.f;
    Outcome outcome = Outcome::One;
    int first_detection = -1;  // its (first) detection in detect()'s output, -1: none
    int detections = 0;
    int objects_by_area = 0;  // area / typical object, rounded, when a split was tried (0: unknown)
    int peaks = 0;            // distance-transform peaks it was cut around, when a split was tried
    int joined = -1;          // Grouped: the note it joined
};
const char* to_string(ComponentNote::Outcome o);

class Detector {
  public:
    explicit Detector(const DetectParams& params);  // validates

    // Keep a note of every component's fate on each detect() (off by
    // default: it costs a push per component).
    void explain(bool on) { explain_ = on; }
    const std::vector<ComponentNote>& notes() const { return notes_; }
    // The typical object's area (full-resolution px^2) the last detect() used (0: none yet).
    float last_typical() const { return last_typical_; }

    // Detections are written into `out` (cleared first); buffers are reused.
    void detect(const cv::Mat& mask, const cv::Rect& roi, double scale, std::vector<Detection>& out);

    const DetectParams& params() const { return params_; }

  private:
    struct Peak {
        float value;
        cv::Point pt;
        float neck;  // saddle to the higher region / value: lower is a clearer cut
    };
    struct Part {
        double area, sx, sy;
        int x0, y0, x1, y1;
    };

    // Component `label` of detect()'s ROI: dropped (its note says why), one
    // detection, or split. `inner_sides`: the ROI's sides inside the frame
    // (kLeft | kTop | kRight | kBottom), which cut the objects they touch.
    void detect_component(int label, const cv::Rect& roi, int inner_sides, double scale, std::vector<Detection>& out);
    // Solidity and circularity of component `label` from its outer contour.
    void component_shape(int label, float& solidity, float& circularity);
    // Zero-bordered binary image of component `label` (box in ROI coordinates),
    // written into component_; returns the (w+2)x(h+2) view.
    cv::Mat component_view(const cv::Rect& box, int label);
    // Cuts component `label` into one detection per distance-transform peak.
    // Returns false when it has fewer than two peaks.
    // `frame_sides`: the box's sides on the frame's own edges (kLeft | kTop | kRight | kBottom).
    static constexpr int kLeft = 1, kTop = 2, kRight = 4, kBottom = 8;
    bool split(const cv::Rect& box, int label, double area_px, int frame_sides, const cv::Rect& roi, double scale,
               std::vector<Detection>& out);
    // The distance map of component `label` (dist_) and its peaks: peaks_,
    // the clearest neck first, the first clear_peaks_ of them at clear necks
    // (the highest peak is highest_peak()). Returns the largest distance (0:
    // an empty component).
    // Holes in it of up to `max_hole` mask pixels are filled first.
    float find_peaks(const cv::Rect& box, int label, int frame_sides, long long max_hole);
    // Its steps: the buffers, the distance map (returns its largest
    // distance), the flooding that finds the peaks.
    void grow_split_buffers();
    double distance_map(const cv::Rect& box, int label, int frame_sides, long long max_hole);
    void flood_peaks(const cv::Mat& dist, double maxv);
    // Holes under HoleFiller::kTextureHoleShare of a typical object are
    // texture (filled before the distance transform); larger ones are belt
    // between objects.
    static constexpr long long kNoHoleLimit = std::numeric_limits<long long>::max();
    int flood_root(int i);
    Peak highest_peak();
    static std::size_t nearest_peak(const std::vector<Peak>& peaks, int x, int y);
    // Whether find_peaks()'s component is one object by its shape alone: no
    // clear neck, or one region under its clear necks holds kSingleShare of it.
    // Such components, and compact ones, tell the typical object's size.
    bool single_by_shape(const cv::Rect& box, int label);
    static constexpr double kSingleShare = 0.6;
    std::size_t clear_peaks_ = 0;
    int last_view_width_ = 0;
    bool last_single_ = false;                        // split()'s component was single_by_shape()
    bool last_dominant_ = false;                      // ... by one region that holds most of it under clear necks
    std::vector<float> split_singles_;                // areas of this frame's dominant singles that were split anyway
    static float first_typical(float* areas, int n);  // n > 0; sorts `areas`
    static constexpr float kFirstOutlier = 12.f;
    std::vector<int> provisional_others_;  // the first frames' whole components that are not compact
    std::vector<Peak> shape_peaks_;
    // Each pixel of component `label` to its nearest of `peaks`: `parts` (the
    // zero-bordered part map, 1-based) and parts_ (each part's area, sums and extent).
    void assign_pixels(const cv::Rect& box, int label, const std::vector<Peak>& peaks, cv::Mat& parts);
    void emit(const cv::Rect& box_roi, double area_px, double cx, double cy, float solidity, float circularity,
              const cv::Rect& roi, double scale, std::vector<Detection>& out) const;

    // Typical area (full-resolution px^2) of a single object: the median of
    // the last kTypical whole components that are one object by their shape
    // (compact, or single_by_shape()); until kTypicalMin are seen, from the
    // frame's own such components (first_typical(); 0 with fewer than 3).
    static constexpr int kTypical = 64, kTypicalMin = 5;
    // A component of this many typical objects' area is tried for a split
    // however solid it is.
    static constexpr float kSplitByArea = 1.6f;
    float provisional_typical_ = 0.f;
    // Sets provisional_typical_ from the ROI's `n` labels (0 once kTypicalMin are known).
    void find_provisional_typical(const cv::Rect& roi, double scale, int n);
    void note_typical(float area);
    // Grouping of pieces (group_gap): every component left in one piece, with
    // its detection's index; group_pieces() merges them in `out`.
    // A piece is under kGroupPiece typical objects; a group at most kGroupMax;
    // and at least kGroupCrack of the piece's outline lies along the other.
    // and the two together are at least kGroupSolidity solid.
    // (or, for a larger piece less solid than that, kGroupSolidityKept of its
    // solidity). A piece under kGroupCrumb typical objects may make a group
    // larger than kGroupMax.
    static constexpr float kGroupPiece = 0.75f, kGroupMax = 1.3f, kGroupCrack = 0.2f, kGroupSolidity = 0.75f,
                           kGroupSolidityKept = 0.9f, kGroupCrumb = 0.25f;
    struct Piece {
        int label, det;
        float area;
        bool whole;    // touches no side of the ROI (an entering object is no piece)
        bool grouped;  // joined another piece (its detection is dropped)
        bool single;   // one object by its shape: tells the typical size (note_typical) if not grouped
        int into = -1;
        int note = -1;       // its ComponentNote (explain mode)
        bool crumb = false;  // under kGroupCrumb typical objects and joined nothing: dropped
    };
    bool explain_ = false;
    std::vector<ComponentNote> notes_;
    float last_typical_ = 0.f;
    int last_by_area_ = 0, last_peaks_ = 0;
    std::vector<Piece> pieces_;
    int label_count_ = 0;
    std::vector<int> piece_of_, order_pieces_;
    std::vector<std::pair<int, int>> near_votes_;
    std::vector<int> seen_here_;
    std::vector<std::uint8_t> dropped_;
    int box_scale_gap(double scale) const;
    void group_pieces(int gap, std::vector<Detection>& out);
    // group_pieces()'s steps for one piece: the other pieces near its outline
    // (near_votes_), the one it joins, the joining; then the dropping of the
    // detections of those that joined another or are crumbs.
    int count_near_votes(const Piece& small, int gap);
    int best_group(int k, int outline_px, const std::vector<Detection>& out);
    void join_piece(int k, int best, std::vector<Detection>& out);
    void drop_grouped(std::vector<Detection>& out);
    float union_solidity(int a, int b);
    std::vector<cv::Point> hull_in_, hull_out_;
    // Joins every part smaller than min_area_px (mask pixels; cut_min_area_px
    // for a part that reaches one of the frame's sides in frame_sides) to the neighbour
    // it shares the longest border with among those it makes no more than
    // max_union_px with, smallest first, while more than `keep` parts are
    // left; `parts` is the zero-bordered map of part numbers (1-based).
    void merge_small_parts(cv::Mat& parts, double min_area_px, double cut_min_area_px, int frame_sides,
                           double max_union_px, int keep);
    std::vector<std::uint8_t> settled_;  // parts that can join no neighbour
    std::vector<int> border_;
    float typical_area();
    std::array<float, kTypical> typical_{};
    std::array<float, kTypical> typical_scratch_{};
    int typical_seen_ = 0;

    DetectParams params_;
    ComponentLabeller labeller_;
    ContourTracer tracer_;
    cv::Mat component_;
    // Split buffers.
    HoleFiller holes_;
    DistanceTransform distance_;
    cv::Mat dist_, parts_map_;
    std::vector<Peak> peaks_;
    std::vector<Part> parts_;
    // Flooding order of the distance map: one key per pixel, the distance's
    // bits inverted above the pixel index, so that sorting plain integers
    // gives decreasing distance and then increasing index (a pair comparator
    // cost twice as much, and split() was a fifth of the core's time).
    // order_: the pixels at or above the lowest peak that can count
    // (kAreaPeakFraction of the maximum), order_low_ the rest, flooded only
    // while two regions with such peaks are still apart.
    std::vector<std::uint64_t> order_, order_low_, order_scratch_;
    void sort_flood_keys(std::vector<std::uint64_t>& keys);
    // Floods `keys` (sorted) on from where the flood stands; returns the
    // regions left whose peak is at least floor_v, stopping once one is left.
    int flood(const std::vector<std::uint64_t>& keys, int width, float floor_v, int high_regions);
    std::vector<int> uf_, uf_peak_;     // union-find over its pixels; a root's peak pixel
    std::vector<float> uf_peak_value_;  // and that peak's distance (no index -> row, column division)
};

}  // namespace cqc
