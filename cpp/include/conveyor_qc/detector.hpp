// From a binary mask to detections: connected components with their box,
// centroid, area and the shape figures later stages need.
#pragma once

#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <vector>

namespace cqc {

struct DetectParams {
    // Area bounds in full-resolution px^2; components outside are dropped.
    double min_area = 400.0;      // [0, max_area]
    double max_area = 1.0e6;      // [min_area, 1e9]
    // Split components that are several touching objects: a distance-transform
    // peak search cuts a component whose solidity is below split_solidity into
    // one part per peak. 0 disables.
    double split_solidity = 0.0;  // [0, 1]

    void validate() const;  // throws ParamError naming "detect.<field>"
};

// Finds connected components in `mask` (CV_8U, nonzero = object) inside `roi`
// (mask pixels; empty = whole mask). `scale` is mask pixels per full-resolution
// pixel (e.g. 0.4 when the mask was built on a frame downscaled by 0.4): every
// figure of the returned detections is in full-resolution pixels.
// Components that touch the ROI's sides other than the frame border are
// dropped: they belong to objects already past the strip.
class Detector {
public:
    explicit Detector(const DetectParams& params);  // validates

    // Detections are written into `out` (cleared first); buffers are reused.
    void detect(const cv::Mat& mask, const cv::Rect& roi, double scale, std::vector<Detection>& out);

    const DetectParams& params() const { return params_; }

private:
    DetectParams params_;
    cv::Mat labels_, stats_, centroids_, component_;
    std::vector<std::vector<cv::Point>> contours_;
    std::vector<cv::Point> hull_;
};

}  // namespace cqc
