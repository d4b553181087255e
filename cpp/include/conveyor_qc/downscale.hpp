// cv::resize(src, dst, size, 0, 0, cv::INTER_AREA), bit for bit. When `size`
// is exactly half of src's (the default track.downscale on even frame sizes;
// OpenCV's fast area path: each output pixel (a + b + c + d + 2) >> 2 of its
// 2x2 block) on 8-bit images with 1, 3 or 4 channels, it runs its own loop
// (SSSE3 for 3 channels), which allocates nothing once dst has its size and
// takes about 0.21 ms for 1280x720 BGR on this project's machine against
// cv::resize's 0.31 ms; cv::resize allocates a table of source offsets on
// every call (7.5 KiB at 1280x720). Other sizes go to cv::resize.
#pragma once

#include <opencv2/core.hpp>

namespace cqc {

void resize_area(const cv::Mat& src, cv::Mat& dst, cv::Size size);

// The frame downscaled by r (track.downscale, R) as the pipeline does it:
// the size is (round(w r), round(h r)). INTER_AREA averages whole pixels and
// is exact for factors 1/2, 1/3, ..., but takes a general path about 9x
// slower for others (R = 0.4 on 1280x720: 9 ms against 1 ms for 0.5). So a
// factor between 1/(k+1) and 1/k is INTER_AREA by 1/k, then INTER_LINEAR by
// the rest (a factor in (0.5, 1], where bilinear samples stay under 2 px
// apart); above 1/2, INTER_LINEAR alone. `scratch` holds the intermediate
// frame between calls. r = 1 makes `dst` a header of `src` (no copy).
void downscale_frame(const cv::Mat& src, double r, cv::Mat& dst, cv::Mat& scratch);

// The size downscale_frame makes of a frame of `frame` pixels: (round(w r),
// round(h r)), or `frame` itself for r >= 1.
cv::Size downscaled_size(cv::Size frame, double r);

}  // namespace cqc
