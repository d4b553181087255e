// cv::distanceTransform(bin, dist, DIST_L2, DIST_MASK_5, CV_32F), the same
// figures bit for bit (OpenCV's two-pass 5x5 chamfer in 16.16 fixed point),
// on a buffer kept between calls: no heap allocation once the largest image
// has been seen (OpenCV's allocates its temporary image on every call).
#pragma once

#include <opencv2/core.hpp>

namespace cqc {

class DistanceTransform {
  public:
    // Distance of every nonzero pixel of `bin` (CV_8UC1) to the nearest zero
    // pixel; zero pixels get 0. `dist` must already be CV_32FC1 of bin's size
    // (a view into a larger buffer is fine): it is not reallocated.
    void l2_mask5(const cv::Mat& bin, cv::Mat& dist);
    // Buffers for images up to `size` (grow only).
    void reserve(cv::Size size);

  private:
    cv::Mat temp_;  // (h + 4) x (w + 4) fixed-point distances
    cv::Mat near_;  // 1 x w: a row's minimum over its neighbours two rows up (or down)
};

}  // namespace cqc
