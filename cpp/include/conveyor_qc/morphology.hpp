// Binary-mask morphology without heap allocation in the steady state: erode,
// dilate, open and close with a structuring element made of one run per row
// (an ellipse, a rectangle, a cross), bit for bit as cv::erode, cv::dilate and
// cv::morphologyEx with the default anchor and border; and the filling of
// holes. OpenCV's filter engine allocates its buffers on every call (about 11
// allocations per morphologyEx, 4 per floodFill).
#pragma once

#include "conveyor_qc/union_find.hpp"

#include <opencv2/core.hpp>

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace cqc {

// Minimum (erode) or maximum (dilate) over the structuring element: each
// kernel row's run is a sliding-window extreme along the source row (built by
// doubling windows, which vectorises), and the output row the extreme of the
// kernel rows' windows. Outside the image is neutral (255 for erode, 0 for
// dilate), which is OpenCV's default morphology border. Works in place.
//
// A binary image (every pixel 0 or 255, as the mask is) is packed to bits, 64
// pixels a word, and filtered as bits: a run's extreme is the AND (erode) or
// OR (dilate) of shifted words, 64 pixels at a time; a sequence of passes
// (open then close) packs and unpacks once. Any other image takes the byte
// path; both give OpenCV's result.
class Morphology {
  public:
    // `kernel`: CV_8UC1, anchor at its centre; on each row its nonzero
    // elements form one run (std::invalid_argument otherwise).
    explicit Morphology(const cv::Mat& kernel);

    // dst may be src. iterations >= 0 (0 copies), each a pass as OpenCV does.
    void erode(const cv::Mat& src, cv::Mat& dst, int iterations);
    void dilate(const cv::Mat& src, cv::Mat& dst, int iterations);
    void open(const cv::Mat& src, cv::Mat& dst, int iterations);   // erode then dilate, `iterations` each
    void close(const cv::Mat& src, cv::Mat& dst, int iterations);  // dilate then erode
    // open, erode, dilate, close in this order with these iterations, as the
    // four calls in turn (the mask's post-processing), packed once.
    void apply(const cv::Mat& src, cv::Mat& dst, int open, int erode, int dilate, int close);

  private:
    struct Span {
        int dy;     // kernel row relative to the anchor
        int dx;     // its run's start relative to the anchor
        int width;  // its run's length
        int which;  // index of its width in widths_
        int shape;  // index of its (dx, width) in shapes_
    };
    struct Step {
        bool max;  // dilate (else erode)
        int passes;
    };
    // The passes of `steps` in order, src to dst.
    void run(const cv::Mat& src, cv::Mat& dst, const Step* steps, int n);
    template <bool Max>
    void pass(const cv::Mat& src, cv::Mat& dst);
    template <bool Max>
    void row_windows(const std::uint8_t* row, int width, std::uint8_t* out);

    // Bit path. Rows of bits_ are words_ + 2 words: a neutral word on each
    // side, so a shift reads across the row's ends without a test.
    bool pack(const cv::Mat& src);  // false (and nothing usable) when src is not 0/255
    void unpack(cv::Mat& dst) const;
    template <bool Max>
    void bit_pass(int w, int h);                                // bits_ to bits_out_, then swapped
    bool bits_usable_ = false;                                  // the kernel reaches less than a word to either side
    std::vector<std::pair<int, int>> shapes_;                   // distinct (dx, width) of the spans
    int words_ = 0;                                             // words per row of pixels
    std::vector<std::uint64_t> bits_, bits_out_, bit_windows_;  // bit_windows_: shapes_ x rows

    std::vector<Span> spans_;
    std::vector<int> widths_;             // distinct run lengths
    int above_ = 0, below_ = 0;           // kernel rows above / below the anchor
    int pad_left_ = 0, pad_right_ = 0;    // border columns a row needs
    int levels_ = 1;                      // doubling levels (window 1, 2, 4, ...)
    std::size_t padded_len_ = 0;          // a row with its border
    std::vector<std::uint8_t> doubling_;  // levels_ x padded_len_
    std::vector<std::uint8_t> ring_;      // (above_ + below_ + 1) x widths_ x padded_len_
    std::vector<std::uint8_t> out_row_;
};

// Sets to 255 every zero pixel of a mask that no 4-connected path of zero
// pixels joins to the image's border: what a flood fill from outside the image
// (cv::floodFill from the corner of a zero-padded copy) leaves unreached. Zero
// runs of each row are joined to the zero runs they touch on the row above
// (union-find); a set that touches the border is background, the others are
// holes. With `max_hole`, a hole of more pixels than that is filled only when
// it is convex: its pixels at least `large_solidity` of its convex hull's (a
// label or a window in one product; belt that a ring of touching round
// products encloses has their curved sides for its outline).
class HoleFiller {
  public:
    // Solidity from which a large hole is one product's own (fill()'s default).
    static constexpr float kConvexHole = 0.8f;
    // A hole in the mask under this share of a typical product's area is the
    // product's own texture (chips, a dark label); a larger one is belt that
    // touching products enclose. The mask (MaskBuilder) and the split
    // (Detector) judge holes by the same share.
    static constexpr double kTextureHoleShare = 0.1;
    void fill(cv::Mat& mask, long long max_hole = std::numeric_limits<long long>::max(),
              float large_solidity = kConvexHole);  // CV_8UC1, in place
    // Room for images up to `size` with up to 16 background runs a row and
    // 64 large holes (the lists still grow past that), so that they need not
    // grow later.
    void reserve(cv::Size size) {
        runs_.reserve(static_cast<std::size_t>(size.height) * 16);
        sets_.reserve(static_cast<std::size_t>(size.height) * 16);
        hole_of_.reserve(static_cast<std::size_t>(size.height) * 16);
        // Large holes: 64 of them, and their row ends for 4 on every row.
        entry_of_.reserve(65);
        count_.reserve(65);
        ends_.reserve(static_cast<std::size_t>(size.height) * 4);
        sorted_.reserve(static_cast<std::size_t>(size.height) * 4);
        row_start_.reserve(static_cast<std::size_t>(size.height) + 1);
    }

  private:
    // A run of zero pixels [x0, x1] on one row; sets_ joins the runs of one
    // hole or of the background (its elements are run indices; a set's
    // figures are kept at its root).
    struct Run {
        int x0, x1;
        bool outside;    // at a root: the set touches the border
        long long area;  // at a root: the set's pixels
        bool keep_open;  // at a root: a large hole that is not convex
    };
    struct RowEnds {
        int hole, y, x0, x1;  // a large hole's first and last pixel on row y
    };
    // Sets keep_open on the roots in large_: not convex by their outline.
    void judge_large(int rows, float large_solidity);
    std::vector<Run> runs_;
    detail::UnionFind sets_;
    std::vector<int> row_start_;
    std::vector<int> large_;                // roots of holes over max_hole
    std::vector<int> hole_of_;              // per run: its index in large_ if it is such a root, else -1
    std::vector<RowEnds> ends_, sorted_;    // large holes' row ends, in row order, then grouped by hole
    std::vector<int> entry_of_;             // per large hole: its entry in ends_ for the last row it was on
    std::vector<int> count_;                // counting sort of ends_ by hole
    std::vector<cv::Point> points_, hull_;  // a large hole's row extremes and their hull
};

}  // namespace cqc
