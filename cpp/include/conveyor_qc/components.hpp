// Connected components of a binary mask (8-connectivity) with their stats,
// numbered as cv::connectedComponentsWithStats numbers them, with the same
// stats and centroids bit for bit, on buffers kept between calls that grow
// only: they grow on a mask larger, or with more runs or components, than any
// before, so in the steady state labelling allocates nothing (OpenCV's
// allocates about 25 times a call; cpp/tests/test_alloc.cpp).
#pragma once

#include "conveyor_qc/union_find.hpp"

#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

namespace cqc {

struct ComponentStats {
    int left = 0, top = 0, width = 0, height = 0;  // bounding box
    int area = 0;                                  // pixels
    double cx = 0.0, cy = 0.0;                     // centroid (mean pixel coordinates)
};

class ComponentLabeller {
  public:
    // Labels the nonzero pixels of `mask` (CV_8UC1, any step). Returns the
    // number of labels including the background's (0), as OpenCV does.
    int label(const cv::Mat& mask);

    // Label image of the last mask (CV_32SC1, its size). It sits inside a
    // frame of zeros one pixel wide, so the 8 neighbours of any pixel can be
    // read without bounds checks (labels().ptr<int>(y)[x +- 1 +- step]).
    const cv::Mat& labels() const { return labels_; }
    // Stats of label 1..count-1 (label 0, the background, has none here).
    const ComponentStats& stats(int label) const { return stats_[static_cast<std::size_t>(label)]; }

  private:
    // A run of nonzero pixels [x0, x1] on one row; sets_ joins the runs of
    // one component (its elements are run indices).
    struct Run {
        int x0, x1, label;
    };
    void reserve(int width, int height);

    cv::Mat framed_;  // (h + 2) x (w + 2) labels with the zero frame
    cv::Mat labels_;  // its inner view
    std::vector<Run> runs_;
    detail::UnionFind sets_;
    std::vector<int> row_start_;  // first run of each row; row_start_[h] = number of runs
    std::vector<ComponentStats> stats_;
    std::vector<std::uint64_t> sum_x_, sum_y_;
};

}  // namespace cqc
