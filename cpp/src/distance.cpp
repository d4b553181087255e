#include "conveyor_qc/distance.hpp"

#include <algorithm>
#include <climits>

namespace cqc {

namespace {
constexpr int kBorder = 2;  // the 5x5 mask reaches two pixels out
}  // namespace

void DistanceTransform::reserve(cv::Size size) {
    if (temp_.rows < size.height + 2 * kBorder || temp_.cols < size.width + 2 * kBorder)
        temp_.create(std::max(temp_.rows, size.height + 2 * kBorder), std::max(temp_.cols, size.width + 2 * kBorder),
                     CV_32SC1);
}

void DistanceTransform::l2_mask5(const cv::Mat& bin, cv::Mat& dist) {
    CV_Assert(bin.type() == CV_8UC1 && dist.type() == CV_32FC1 && dist.size() == bin.size());
    constexpr int kShift = 16;
    constexpr int kFar = INT_MAX >> 2;
    // OpenCV's DIST_L2 5x5 metrics (float), rounded to fixed point as it does.
    const int hv = cvRound(1.0f * (1 << kShift));
    const int diag = cvRound(1.4f * (1 << kShift));
    const int knight = cvRound(2.1969f * (1 << kShift));
    const float scale = 1.f / (1 << kShift);

    const int w = bin.cols, h = bin.rows;
    reserve(bin.size());
    cv::Mat temp = temp_(cv::Rect(0, 0, w + 2 * kBorder, h + 2 * kBorder));
    const std::ptrdiff_t step = static_cast<std::ptrdiff_t>(temp.step1());
    for (int i = 0; i < kBorder; ++i) {
        std::fill(temp.ptr<int>(i), temp.ptr<int>(i) + temp.cols, kFar);
        std::fill(temp.ptr<int>(temp.rows - 1 - i), temp.ptr<int>(temp.rows - 1 - i) + temp.cols, kFar);
    }

    // Forward pass: the neighbours above and to the left.
    for (int i = 0; i < h; ++i) {
        const std::uint8_t* s = bin.ptr<std::uint8_t>(i);
        int* t = temp.ptr<int>(i + kBorder) + kBorder;
        for (int j = 0; j < kBorder; ++j) t[-j - 1] = t[w + j] = kFar;
        for (int j = 0; j < w; ++j) {
            if (!s[j]) {
                t[j] = 0;
                continue;
            }
            int t0 = t[j - step * 2 - 1] + knight;
            t0 = std::min(t0, t[j - step * 2 + 1] + knight);
            t0 = std::min(t0, t[j - step - 2] + knight);
            t0 = std::min(t0, t[j - step - 1] + diag);
            t0 = std::min(t0, t[j - step] + hv);
            t0 = std::min(t0, t[j - step + 1] + diag);
            t0 = std::min(t0, t[j - step + 2] + knight);
            t0 = std::min(t0, t[j - 1] + hv);
            t[j] = t0;
        }
    }
    // Backward pass: below and to the right; then to float.
    for (int i = h - 1; i >= 0; --i) {
        float* d = dist.ptr<float>(i);
        int* t = temp.ptr<int>(i + kBorder) + kBorder;
        for (int j = w - 1; j >= 0; --j) {
            int t0 = t[j];
            if (t0 > hv) {
                t0 = std::min(t0, t[j + step * 2 + 1] + knight);
                t0 = std::min(t0, t[j + step * 2 - 1] + knight);
                t0 = std::min(t0, t[j + step + 2] + knight);
                t0 = std::min(t0, t[j + step + 1] + diag);
                t0 = std::min(t0, t[j + step] + hv);
                t0 = std::min(t0, t[j + step - 1] + diag);
                t0 = std::min(t0, t[j + step - 2] + knight);
                t0 = std::min(t0, t[j + 1] + hv);
                t[j] = t0;
            }
            d[j] = static_cast<float>(t0 * scale);
        }
    }
}

}  // namespace cqc
