#include "conveyor_qc/distance.hpp"

#include "conveyor_qc/simd.hpp"

#include <algorithm>
#include <climits>

namespace cqc {

namespace {

constexpr int kBorder = 2;  // the 5x5 mask reaches two pixels out

// For each pixel of a row, the least of its 7 mask neighbours on the two rows
// before it in the pass (above in the forward pass: `r1` the row next to it,
// `r2` the one beyond; below in the backward pass), each plus its step. Those
// rows are final, so this part of the pass vectorises; only the neighbour on
// the row itself is left to the serial loop. Integer minima in any order:
// the same values as OpenCV's one loop.
__attribute__((always_inline)) inline void near_rows(const int* __restrict r1, const int* __restrict r2,
                                                     int* __restrict out, int w, int hv, int diag, int knight) {
    for (int j = 0; j < w; ++j) {
        int t = r2[j - 1] + knight;
        t = std::min(t, r2[j + 1] + knight);
        t = std::min(t, r1[j - 2] + knight);
        t = std::min(t, r1[j - 1] + diag);
        t = std::min(t, r1[j] + hv);
        t = std::min(t, r1[j + 1] + diag);
        t = std::min(t, r1[j + 2] + knight);
        out[j] = t;
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CQC_DISTANCE_AVX2 1
// SSE2 has no 32-bit minimum (SSE4.1's pminsd): AVX2's, from SimdLevel::AVX2.
__attribute__((target("avx2"))) void near_rows_avx2(const int* r1, const int* r2, int* out, int w, int hv, int diag,
                                                    int knight) {
    near_rows(r1, r2, out, w, hv, diag, knight);
}
#endif

void near_rows_any(const int* r1, const int* r2, int* out, int w, int hv, int diag, int knight, bool avx2) {
#ifdef CQC_DISTANCE_AVX2
    if (avx2) {
        near_rows_avx2(r1, r2, out, w, hv, diag, knight);
        return;
    }
#endif
    (void)avx2;
    near_rows(r1, r2, out, w, hv, diag, knight);
}

}  // namespace

void DistanceTransform::reserve(cv::Size size) {
    if (temp_.rows < size.height + 2 * kBorder || temp_.cols < size.width + 2 * kBorder)
        temp_.create(std::max(temp_.rows, size.height + 2 * kBorder), std::max(temp_.cols, size.width + 2 * kBorder),
                     CV_32SC1);
    if (near_.cols < size.width) near_.create(1, std::max(near_.cols, size.width), CV_32SC1);
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

    int* near = near_.ptr<int>(0);
    const bool avx2 = simd_level() >= SimdLevel::AVX2;
    // Forward pass: the neighbours above and to the left.
    for (int i = 0; i < h; ++i) {
        const std::uint8_t* s = bin.ptr<std::uint8_t>(i);
        int* t = temp.ptr<int>(i + kBorder) + kBorder;
        for (int j = 0; j < kBorder; ++j) t[-j - 1] = t[w + j] = kFar;
        near_rows_any(t - step, t - 2 * step, near, w, hv, diag, knight, avx2);
        for (int j = 0; j < w; ++j) t[j] = s[j] ? std::min(near[j], t[j - 1] + hv) : 0;
    }
    // Backward pass: below and to the right; then to float.
    for (int i = h - 1; i >= 0; --i) {
        float* d = dist.ptr<float>(i);
        int* t = temp.ptr<int>(i + kBorder) + kBorder;
        near_rows_any(t + step, t + 2 * step, near, w, hv, diag, knight, avx2);
        for (int j = w - 1; j >= 0; --j) {
            if (t[j] > hv) t[j] = std::min(std::min(t[j], near[j]), t[j + 1] + hv);
        }
        for (int j = 0; j < w; ++j) d[j] = static_cast<float>(t[j] * scale);
    }
}

}  // namespace cqc
