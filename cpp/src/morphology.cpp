#include "conveyor_qc/morphology.hpp"

#include "row_scan.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace cqc {

// ---------------------------------------------------------------- morphology

Morphology::Morphology(const cv::Mat& kernel) {
    if (kernel.empty() || kernel.type() != CV_8UC1)
        throw std::invalid_argument("morphology kernel must be a non-empty CV_8UC1 matrix");
    const int ax = kernel.cols / 2, ay = kernel.rows / 2;  // OpenCV's default anchor
    for (int r = 0; r < kernel.rows; ++r) {
        const std::uint8_t* k = kernel.ptr<std::uint8_t>(r);
        int c0 = 0;
        while (c0 < kernel.cols && !k[c0]) ++c0;
        if (c0 == kernel.cols) continue;
        int c1 = c0;
        while (c1 + 1 < kernel.cols && k[c1 + 1]) ++c1;
        for (int c = c1 + 1; c < kernel.cols; ++c)
            if (k[c]) throw std::invalid_argument("morphology kernel rows must each hold one run of nonzero elements");
        const int width = c1 - c0 + 1;
        auto it = std::find(widths_.begin(), widths_.end(), width);
        if (it == widths_.end()) it = widths_.insert(widths_.end(), width);
        spans_.push_back(Span{r - ay, c0 - ax, width, static_cast<int>(it - widths_.begin())});
        above_ = std::max(above_, ay - r);
        below_ = std::max(below_, r - ay);
        pad_left_ = std::max(pad_left_, ax - c0);
        pad_right_ = std::max(pad_right_, c1 - ax);
    }
    if (spans_.empty()) throw std::invalid_argument("morphology kernel has no nonzero element");
    const int widest = *std::max_element(widths_.begin(), widths_.end());
    levels_ = 1;
    while ((1 << levels_) <= widest) ++levels_;
}

// Extremes of every window of each kernel width along one source row, the row
// framed by pad_left_ / pad_right_ neutral pixels; window i starts at framed
// index i. out: widths_.size() rows of padded_len_.
template <bool Max>
void Morphology::row_windows(const std::uint8_t* row, int width, std::uint8_t* out) {
    const std::uint8_t neutral = Max ? 0 : 255;
    const std::size_t len = padded_len_;
    std::uint8_t* level0 = doubling_.data();
    std::memset(level0, neutral, static_cast<std::size_t>(pad_left_));
    std::memcpy(level0 + pad_left_, row, static_cast<std::size_t>(width));
    std::memset(level0 + pad_left_ + width, neutral, static_cast<std::size_t>(pad_right_));
    // Level l holds windows of 2^l pixels.
    for (int l = 1; l < levels_; ++l) {
        const std::uint8_t* __restrict a = doubling_.data() + static_cast<std::size_t>(l - 1) * len;
        std::uint8_t* __restrict b = doubling_.data() + static_cast<std::size_t>(l) * len;
        const std::size_t half = std::size_t{1} << (l - 1), n = len - 2 * half + 1;
        for (std::size_t i = 0; i < n; ++i) b[i] = Max ? std::max(a[i], a[i + half]) : std::min(a[i], a[i + half]);
    }
    for (std::size_t k = 0; k < widths_.size(); ++k) {
        const int w = widths_[k];
        int l = 0;
        while ((2 << l) <= w) ++l;
        const std::size_t c = std::size_t{1} << l, n = len - static_cast<std::size_t>(w) + 1;
        const std::uint8_t* __restrict a = doubling_.data() + static_cast<std::size_t>(l) * len;
        std::uint8_t* __restrict o = out + k * len;
        const std::size_t off = static_cast<std::size_t>(w) - c;  // two windows of c cover w
        for (std::size_t i = 0; i < n; ++i) o[i] = Max ? std::max(a[i], a[i + off]) : std::min(a[i], a[i + off]);
    }
}

template <bool Max>
void Morphology::pass(const cv::Mat& src, cv::Mat& dst) {
    CV_Assert(src.type() == CV_8UC1);
    const int w = src.cols, h = src.rows;
    dst.create(src.size(), CV_8UC1);  // no-op in place or when already sized
    padded_len_ = static_cast<std::size_t>(pad_left_ + w + pad_right_);
    const std::size_t kernel_rows = static_cast<std::size_t>(above_ + below_ + 1);
    const std::size_t slot = widths_.size() * padded_len_;
    if (doubling_.size() < static_cast<std::size_t>(levels_) * padded_len_)
        doubling_.resize(static_cast<std::size_t>(levels_) * padded_len_);
    if (ring_.size() < kernel_rows * slot) ring_.resize(kernel_rows * slot);
    if (out_row_.size() < static_cast<std::size_t>(w)) out_row_.resize(static_cast<std::size_t>(w));

    const std::uint8_t neutral = Max ? 0 : 255;
    auto windows_of = [&](int y) { return ring_.data() + static_cast<std::size_t>(y) % kernel_rows * slot; };
    int computed = 0;  // source rows already in the ring
    for (int y = 0; y < h; ++y) {
        // Source rows below the output row are read before it is written, so
        // dst may be src.
        for (const int last = std::min(h - 1, y + below_); computed <= last; ++computed)
            row_windows<Max>(src.ptr<std::uint8_t>(computed), w, windows_of(computed));
        std::uint8_t* __restrict out = out_row_.data();
        std::memset(out, neutral, static_cast<std::size_t>(w));
        for (const Span& s : spans_) {
            const int sy = y + s.dy;
            if (sy < 0 || sy >= h) continue;  // a neutral border row
            const std::uint8_t* __restrict in = windows_of(sy) + static_cast<std::size_t>(s.which) * padded_len_ +
                                                (pad_left_ + s.dx);
            for (int x = 0; x < w; ++x) out[x] = Max ? std::max(out[x], in[x]) : std::min(out[x], in[x]);
        }
        std::memcpy(dst.ptr<std::uint8_t>(y), out, static_cast<std::size_t>(w));
    }
}

void Morphology::erode(const cv::Mat& src, cv::Mat& dst, int iterations) {
    if (iterations <= 0) {
        src.copyTo(dst);
        return;
    }
    pass<false>(src, dst);
    for (int i = 1; i < iterations; ++i) pass<false>(dst, dst);
}

void Morphology::dilate(const cv::Mat& src, cv::Mat& dst, int iterations) {
    if (iterations <= 0) {
        src.copyTo(dst);
        return;
    }
    pass<true>(src, dst);
    for (int i = 1; i < iterations; ++i) pass<true>(dst, dst);
}

void Morphology::open(const cv::Mat& src, cv::Mat& dst, int iterations) {
    erode(src, dst, iterations);
    dilate(dst, dst, iterations);
}

void Morphology::close(const cv::Mat& src, cv::Mat& dst, int iterations) {
    dilate(src, dst, iterations);
    erode(dst, dst, iterations);
}

// ---------------------------------------------------------------- holes

int HoleFiller::find(int i) {
    while (runs_[static_cast<std::size_t>(i)].parent != i) {
        Run& r = runs_[static_cast<std::size_t>(i)];
        r.parent = runs_[static_cast<std::size_t>(r.parent)].parent;
        i = r.parent;
    }
    return i;
}

void HoleFiller::fill(cv::Mat& mask) {
    CV_Assert(mask.type() == CV_8UC1);
    const int w = mask.cols, h = mask.rows;
    if (row_start_.size() < static_cast<std::size_t>(h) + 1) row_start_.resize(static_cast<std::size_t>(h) + 1);
    // runs_ keeps its capacity: it grows only on a mask with more zero runs
    // than any before.
    runs_.clear();
    int n = 0;
    for (int y = 0; y < h; ++y) {
        const int prev_begin = y > 0 ? row_start_[static_cast<std::size_t>(y - 1)] : 0;
        const int prev_end = n;
        row_start_[static_cast<std::size_t>(y)] = n;
        const std::uint8_t* p = mask.ptr<std::uint8_t>(y);
        int j = prev_begin;
        for (int x = detail::skip_nonzero(p, 0, w); x < w; x = detail::skip_nonzero(p, x, w)) {
            const int x0 = x;
            x = detail::skip_zero(p, x, w);
            const int x1 = x - 1;
            runs_.push_back(Run{x0, x1, n, y == 0 || y == h - 1 || x0 == 0 || x1 == w - 1});
            // 4-connectivity: runs of the row above that overlap this one.
            while (j < prev_end && runs_[static_cast<std::size_t>(j)].x1 < x0) ++j;
            for (int k = j; k < prev_end && runs_[static_cast<std::size_t>(k)].x0 <= x1; ++k) {
                int a = find(n), b = find(k);
                if (a == b) continue;
                if (b < a) std::swap(a, b);
                Run& root = runs_[static_cast<std::size_t>(a)];
                Run& other = runs_[static_cast<std::size_t>(b)];
                other.parent = a;
                root.outside = root.outside || other.outside;
            }
            ++n;
        }
    }
    row_start_[static_cast<std::size_t>(h)] = n;
    const Run* runs = runs_.data();
    for (int y = 0; y < h; ++y) {
        std::uint8_t* p = mask.ptr<std::uint8_t>(y);
        for (int i = row_start_[static_cast<std::size_t>(y)]; i < row_start_[static_cast<std::size_t>(y) + 1]; ++i)
            if (!runs[find(i)].outside) std::memset(p + runs[i].x0, 255, static_cast<std::size_t>(runs[i].x1 - runs[i].x0 + 1));
    }
}

}  // namespace cqc
