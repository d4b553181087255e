#include "conveyor_qc/morphology.hpp"

#include "conveyor_qc/contour.hpp"
#include "conveyor_qc/simd.hpp"

#include "row_scan.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
        const std::pair<int, int> shape(c0 - ax, width);
        auto sh = std::find(shapes_.begin(), shapes_.end(), shape);
        if (sh == shapes_.end()) sh = shapes_.insert(shapes_.end(), shape);
        spans_.push_back(Span{r - ay, c0 - ax, width, static_cast<int>(it - widths_.begin()),
                              static_cast<int>(sh - shapes_.begin())});
        above_ = std::max(above_, ay - r);
        below_ = std::max(below_, r - ay);
        pad_left_ = std::max(pad_left_, ax - c0);
        pad_right_ = std::max(pad_right_, c1 - ax);
    }
    if (spans_.empty()) throw std::invalid_argument("morphology kernel has no nonzero element");
    const int widest = *std::max_element(widths_.begin(), widths_.end());
    levels_ = 1;
    while ((1 << levels_) <= widest) ++levels_;
    // A word shift moves bits by less than 64.
    bits_usable_ = pad_left_ < 64 && pad_right_ < 64;
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
            const std::uint8_t* __restrict in =
                windows_of(sy) + static_cast<std::size_t>(s.which) * padded_len_ + (pad_left_ + s.dx);
            for (int x = 0; x < w; ++x) out[x] = Max ? std::max(out[x], in[x]) : std::min(out[x], in[x]);
        }
        std::memcpy(dst.ptr<std::uint8_t>(y), out, static_cast<std::size_t>(w));
    }
}

// ---------------------------------------------------------------- bit path

namespace {

// v = n copies of value, growing its capacity geometrically (assign() grows
// it to exactly n, so a mask with one run or hole more than any before would
// allocate again).
template <class T>
void assign_growing(std::vector<T>& v, std::size_t n, const T& value) {
    if (v.capacity() < n) v.reserve(std::max(n, 2 * v.capacity()));
    v.assign(n, value);
}

constexpr std::uint64_t kOnes = ~std::uint64_t{0};

// Byte b of the result is 255 where bit b of the index is set.
struct ByteMasks {
    std::uint64_t of[256];
    ByteMasks() {
        for (int v = 0; v < 256; ++v) {
            std::uint64_t m = 0;
            for (int b = 0; b < 8; ++b)
                if (v & (1 << b)) m |= std::uint64_t{0xff} << (8 * b);
            of[v] = m;
        }
    }
};
const ByteMasks kByteMasks;

// Bits of up to 64 pixels (bit i: pixel i nonzero); `binary` is cleared when
// a pixel is neither 0 nor 255. `sse2`: simd_level() >= SimdLevel::SSE2.
inline std::uint64_t pack_word(const std::uint8_t* p, int n, bool& binary, bool sse2) {
    std::uint64_t bits = 0;
    int i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128(), full = _mm_set1_epi8(-1);
    for (; sse2 && i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const __m128i set = _mm_cmpeq_epi8(v, full);
        if (_mm_movemask_epi8(_mm_or_si128(set, _mm_cmpeq_epi8(v, zero))) != 0xffff) binary = false;
        bits |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(set))) << i;
    }
#endif
    (void)sse2;
    for (; i < n; ++i) {
        if (p[i] != 0 && p[i] != 255) binary = false;
        bits |= static_cast<std::uint64_t>(p[i] != 0) << i;
    }
    return bits;
}

}  // namespace

bool Morphology::pack(const cv::Mat& src) {
    const int w = src.cols, h = src.rows;
    words_ = (w + 63) / 64;
    const std::size_t stride = static_cast<std::size_t>(words_) + 2;
    const std::size_t need = stride * static_cast<std::size_t>(h);
    if (bits_.size() < need) {
        bits_.resize(need);
        bits_out_.resize(need);
    }
    bool binary = true;
    const bool sse2 = simd_level() >= SimdLevel::SSE2;
    for (int y = 0; y < h && binary; ++y) {
        const std::uint8_t* p = src.ptr<std::uint8_t>(y);
        std::uint64_t* b = bits_.data() + static_cast<std::size_t>(y) * stride + 1;
        for (int j = 0; j < words_; ++j) b[j] = pack_word(p + 64 * j, std::min(64, w - 64 * j), binary, sse2);
    }
    return binary;
}

void Morphology::unpack(cv::Mat& dst) const {
    const int w = dst.cols, h = dst.rows;
    const std::size_t stride = static_cast<std::size_t>(words_) + 2;
    for (int y = 0; y < h; ++y) {
        std::uint8_t* p = dst.ptr<std::uint8_t>(y);
        const std::uint64_t* b = bits_.data() + static_cast<std::size_t>(y) * stride + 1;
        int x = 0;
        for (; x + 8 <= w; x += 8) {
            const std::uint64_t m = kByteMasks.of[(b[x >> 6] >> (x & 63)) & 0xff];
            std::memcpy(p + x, &m, 8);
        }
        for (; x < w; ++x) p[x] = (b[x >> 6] >> (x & 63)) & 1 ? 255 : 0;
    }
}

// One pass on bits: bit x of a row shifted by d is pixel x + d, so a run
// (dx, width) is the AND / OR of `width` shifted rows; the output row that of
// the kernel rows' runs. The pixels past the row's end (in its last word and
// the side words) and the rows above and below the image are neutral, as in
// the byte path.
template <bool Max>
void Morphology::bit_pass(int w, int h) {
    const std::uint64_t neutral = Max ? 0 : kOnes;
    const int n = words_;
    const std::size_t stride = static_cast<std::size_t>(n) + 2;
    const std::uint64_t past_end = (w & 63) ? kOnes << (w & 63) : 0;  // in the last word
    for (int y = 0; y < h; ++y) {
        std::uint64_t* b = bits_.data() + static_cast<std::size_t>(y) * stride;
        b[0] = b[n + 1] = neutral;
        b[n] = Max ? (b[n] & ~past_end) : (b[n] | past_end);
    }
    const std::size_t plane = stride * static_cast<std::size_t>(h);
    if (bit_windows_.size() < shapes_.size() * plane) bit_windows_.resize(shapes_.size() * plane);
    auto op = [](std::uint64_t a, std::uint64_t b) { return Max ? (a | b) : (a & b); };
    // Each shape's runs over every row. A run of one pixel at the anchor is
    // the row itself, read from bits_ directly.
    for (std::size_t s = 0; s < shapes_.size(); ++s) {
        const int dx = shapes_[s].first, width = shapes_[s].second;
        if (dx == 0 && width == 1) continue;
        for (int y = 0; y < h; ++y) {
            const std::uint64_t* __restrict r = bits_.data() + static_cast<std::size_t>(y) * stride + 1;
            std::uint64_t* __restrict o = bit_windows_.data() + s * plane + static_cast<std::size_t>(y) * stride + 1;
            for (int j = 0; j < n; ++j) o[j] = neutral;
            for (int d = dx; d < dx + width; ++d) {
                if (d == 0) {
                    for (int j = 0; j < n; ++j) o[j] = op(o[j], r[j]);
                } else if (d > 0) {
                    for (int j = 0; j < n; ++j) o[j] = op(o[j], (r[j] >> d) | (r[j + 1] << (64 - d)));
                } else {
                    const int e = -d;
                    for (int j = 0; j < n; ++j) o[j] = op(o[j], (r[j] << e) | (r[j - 1] >> (64 - e)));
                }
            }
        }
    }
    for (int y = 0; y < h; ++y) {
        std::uint64_t* __restrict out = bits_out_.data() + static_cast<std::size_t>(y) * stride + 1;
        for (int j = 0; j < n; ++j) out[j] = neutral;
        for (const Span& sp : spans_) {
            const int sy = y + sp.dy;
            if (sy < 0 || sy >= h) continue;  // a neutral border row
            const std::pair<int, int>& shape = shapes_[static_cast<std::size_t>(sp.shape)];
            const std::uint64_t* base = shape.first == 0 && shape.second == 1
                                            ? bits_.data()
                                            : bit_windows_.data() + static_cast<std::size_t>(sp.shape) * plane;
            const std::uint64_t* __restrict in = base + static_cast<std::size_t>(sy) * stride + 1;
            for (int j = 0; j < n; ++j) out[j] = op(out[j], in[j]);
        }
    }
    bits_.swap(bits_out_);
}

// ---------------------------------------------------------------- operations

void Morphology::run(const cv::Mat& src, cv::Mat& dst, const Step* steps, int n) {
    int total = 0;
    for (int i = 0; i < n; ++i) total += std::max(steps[i].passes, 0);
    if (total == 0) {
        src.copyTo(dst);
        return;
    }
    CV_Assert(src.type() == CV_8UC1);
    if (bits_usable_ && !src.empty() && pack(src)) {
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < steps[i].passes; ++k) {
                if (steps[i].max) bit_pass<true>(src.cols, src.rows);
                else bit_pass<false>(src.cols, src.rows);
            }
        dst.create(src.size(), CV_8UC1);  // no-op in place or when already sized
        unpack(dst);
        return;
    }
    // The byte path: the first pass from src, the others in place.
    const cv::Mat* from = &src;
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < steps[i].passes; ++k) {
            if (steps[i].max) pass<true>(*from, dst);
            else pass<false>(*from, dst);
            from = &dst;
        }
}

void Morphology::erode(const cv::Mat& src, cv::Mat& dst, int iterations) {
    const Step steps[] = {{false, iterations}};
    run(src, dst, steps, 1);
}

void Morphology::dilate(const cv::Mat& src, cv::Mat& dst, int iterations) {
    const Step steps[] = {{true, iterations}};
    run(src, dst, steps, 1);
}

void Morphology::open(const cv::Mat& src, cv::Mat& dst, int iterations) {
    const Step steps[] = {{false, iterations}, {true, iterations}};
    run(src, dst, steps, 2);
}

void Morphology::close(const cv::Mat& src, cv::Mat& dst, int iterations) {
    const Step steps[] = {{true, iterations}, {false, iterations}};
    run(src, dst, steps, 2);
}

void Morphology::apply(const cv::Mat& src, cv::Mat& dst, int open, int erode, int dilate, int close) {
    const Step steps[] = {{false, open}, {true, open}, {false, erode}, {true, dilate}, {true, close}, {false, close}};
    run(src, dst, steps, 6);
}

// ---------------------------------------------------------------- holes

// Whether each large hole is convex: its pixels at least `large_solidity` of
// its convex hull's (the hull of its rows' ends). One pass over the runs for
// all large holes; their row ends, grouped by hole with a counting sort, stay
// in row order, as the hull wants them.
void HoleFiller::judge_large(int rows, float large_solidity) {
    const std::size_t holes = large_.size();
    if (large_solidity > 1.f) {
        for (const int root : large_) runs_[static_cast<std::size_t>(root)].keep_open = true;
        return;
    }
    ends_.clear();
    assign_growing(entry_of_, holes, -1);
    assign_growing(count_, holes + 1, 0);
    for (int y = 0; y < rows; ++y) {
        for (int i = row_start_[static_cast<std::size_t>(y)]; i < row_start_[static_cast<std::size_t>(y) + 1]; ++i) {
            const int hole = hole_of_[static_cast<std::size_t>(sets_.find(i))];
            if (hole < 0) continue;
            const Run& r = runs_[static_cast<std::size_t>(i)];
            const std::size_t h = static_cast<std::size_t>(hole);
            const int entry = entry_of_[h];                                    // the hole's last row ends, if any
            if (entry < 0 || ends_[static_cast<std::size_t>(entry)].y != y) {  // its first run on this row
                entry_of_[h] = static_cast<int>(ends_.size());
                ends_.push_back({hole, y, r.x0, r.x1});
                ++count_[h + 1];
            } else {  // runs come in x order: the row's last one ends it
                ends_[static_cast<std::size_t>(entry)].x1 = r.x1;
            }
        }
    }
    for (std::size_t h = 0; h < holes; ++h) count_[h + 1] += count_[h];
    sorted_.resize(ends_.size());
    for (const RowEnds& e : ends_) sorted_[static_cast<std::size_t>(count_[static_cast<std::size_t>(e.hole)]++)] = e;
    // count_[h] is now where hole h + 1 starts.
    std::size_t first = 0;
    for (std::size_t h = 0; h < holes; ++h) {
        const std::size_t last = static_cast<std::size_t>(count_[h]);
        points_.clear();
        for (std::size_t k = first; k < last; ++k) {
            const RowEnds& e = sorted_[k];
            points_.emplace_back(e.x0, e.y);
            if (e.x1 != e.x0) points_.emplace_back(e.x1, e.y);
        }
        first = last;
        const int n = static_cast<int>(points_.size());
        bool convex = true;
        if (n >= 3) {
            if (hull_.size() < 2 * points_.size()) hull_.resize(2 * points_.size());
            const int m = convex_hull_sorted(points_.data(), n, hull_.data());
            const double area = static_cast<double>(runs_[static_cast<std::size_t>(large_[h])].area);
            convex = area >= large_solidity * hull_pixels(hull_.data(), m);
        }
        runs_[static_cast<std::size_t>(large_[h])].keep_open = !convex;
    }
}

void HoleFiller::fill(cv::Mat& mask, long long max_hole, float large_solidity) {
    CV_Assert(mask.type() == CV_8UC1);
    const int w = mask.cols, h = mask.rows;
    if (row_start_.size() < static_cast<std::size_t>(h) + 1) row_start_.resize(static_cast<std::size_t>(h) + 1);
    // runs_ and sets_ keep their capacity: they grow only on a mask with more
    // zero runs than any before.
    runs_.clear();
    sets_.clear();
    int n = 0;
    const bool sse2 = simd_level() >= SimdLevel::SSE2;
    for (int y = 0; y < h; ++y) {
        const int prev_begin = y > 0 ? row_start_[static_cast<std::size_t>(y - 1)] : 0;
        const int prev_end = n;
        row_start_[static_cast<std::size_t>(y)] = n;
        const std::uint8_t* p = mask.ptr<std::uint8_t>(y);
        int j = prev_begin;
        for (int x = detail::skip_nonzero(p, 0, w, sse2); x < w; x = detail::skip_nonzero(p, x, w, sse2)) {
            const int x0 = x;
            x = detail::skip_zero(p, x, w, sse2);
            const int x1 = x - 1;
            runs_.push_back(Run{x0, x1, y == 0 || y == h - 1 || x0 == 0 || x1 == w - 1, x1 - x0 + 1, false});
            sets_.add();
            // 4-connectivity: runs of the row above that overlap this one.
            while (j < prev_end && runs_[static_cast<std::size_t>(j)].x1 < x0) ++j;
            for (int k = j; k < prev_end && runs_[static_cast<std::size_t>(k)].x0 <= x1; ++k) {
                int a, b;
                if (!sets_.unite(n, k, a, b)) continue;
                Run& root = runs_[static_cast<std::size_t>(a)];
                const Run& other = runs_[static_cast<std::size_t>(b)];
                root.outside = root.outside || other.outside;
                root.area += other.area;
            }
            ++n;
        }
    }
    row_start_[static_cast<std::size_t>(h)] = n;
    // Large holes: open unless convex.
    large_.clear();
    assign_growing(hole_of_, static_cast<std::size_t>(n), -1);
    for (int i = 0; i < n; ++i) {
        const Run& r = runs_[static_cast<std::size_t>(i)];
        if (sets_.is_root(i) && !r.outside && r.area > max_hole) {
            hole_of_[static_cast<std::size_t>(i)] = static_cast<int>(large_.size());
            large_.push_back(i);
        }
    }
    if (!large_.empty()) judge_large(h, large_solidity);
    const Run* runs = runs_.data();
    for (int y = 0; y < h; ++y) {
        std::uint8_t* p = mask.ptr<std::uint8_t>(y);
        for (int i = row_start_[static_cast<std::size_t>(y)]; i < row_start_[static_cast<std::size_t>(y) + 1]; ++i)
            if (const Run& set = runs[sets_.find(i)]; !set.outside && !set.keep_open)
                std::memset(p + runs[i].x0, 255, static_cast<std::size_t>(runs[i].x1 - runs[i].x0 + 1));
    }
}

}  // namespace cqc
