#include "conveyor_qc/belt_model.hpp"

#include "conveyor_qc/mask.hpp"
#include "conveyor_qc/simd.hpp"

#include <opencv2/imgproc.hpp>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cqc {

namespace {

// --- Step 1: candidate belt colours --------------------------------------------------

// Colour modes: a Lab histogram of the (half-size) learning frame (L
// in steps of 8, a and b in steps of 4: two pale colours a few chroma units
// apart stay apart), smoothed over each bin's 3x3x3 neighbourhood; its local
// maxima, largest first, each moved to the mean of the pixels around it
// (mean shift) and merged with any other that lands on the same colour.
constexpr int kBinsL = 32, kBinsAB = 64, kShiftL = 3, kShiftAB = 2;
// At most this many colour modes are tried as the belt.
constexpr int kMaxCandidates = 4;
// A candidate's own pixels are those within this Lab distance of it (about
// four sigmas of a camera's noise after the mask's median blur).
constexpr float kCandidateRadius = 12.f;

struct Mode {
    cv::Vec3f lab;
    double mass;
};

// Mean shift in a metric scaled per channel by `inv` (1: plain Lab distance).
cv::Vec3f follow_mode(const cv::Mat& lab, cv::Vec3f start, float radius, double* support = nullptr,
                      cv::Vec3f inv = cv::Vec3f(1.f, 1.f, 1.f));

std::vector<Mode> colour_modes(const cv::Mat& lab) {
    const std::size_t bins = static_cast<std::size_t>(kBinsL) * kBinsAB * kBinsAB;
    std::vector<float> hist(bins, 0.f), tmp(bins);
    auto bin = [](int l, int a, int b) {
        return (static_cast<std::size_t>(l) * kBinsAB + static_cast<std::size_t>(a)) * kBinsAB +
               static_cast<std::size_t>(b);
    };
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* row = lab.ptr<cv::Vec3b>(y);
        for (int x = 0; x < lab.cols; ++x)
            hist[bin(row[x][0] >> kShiftL, row[x][1] >> kShiftAB, row[x][2] >> kShiftAB)] += 1.f;
    }
    // 3x3x3 box sum as three passes of 3 along each axis.
    const int dims[3] = {kBinsL, kBinsAB, kBinsAB};
    const std::size_t strides[3] = {static_cast<std::size_t>(kBinsAB) * kBinsAB, kBinsAB, 1};
    std::vector<float> smooth = hist;
    for (int axis = 0; axis < 3; ++axis) {
        const std::size_t st = strides[axis];
        for (std::size_t i = 0; i < bins; ++i) {
            const int c = static_cast<int>((i / st) % static_cast<std::size_t>(dims[axis]));
            float v = smooth[i];
            if (c > 0) v += smooth[i - st];
            if (c < dims[axis] - 1) v += smooth[i + st];
            tmp[i] = v;
        }
        smooth.swap(tmp);
    }
    // Local maxima over the 26 neighbours; on a plateau the first bin in index order wins.
    std::vector<std::pair<float, std::size_t>> peaks;
    for (int l = 0; l < kBinsL; ++l)
        for (int a = 0; a < kBinsAB; ++a)
            for (int b = 0; b < kBinsAB; ++b) {
                const std::size_t i = bin(l, a, b);
                const float v = smooth[i];
                if (v < 4.f) continue;
                bool peak = true;
                for (int dl = -1; dl <= 1 && peak; ++dl)
                    for (int da = -1; da <= 1 && peak; ++da)
                        for (int db = -1; db <= 1 && peak; ++db) {
                            const int ll = l + dl, aa = a + da, bb = b + db;
                            if ((dl | da | db) == 0 || ll < 0 || aa < 0 || bb < 0 || ll >= kBinsL || aa >= kBinsAB ||
                                bb >= kBinsAB)
                                continue;
                            const std::size_t j = bin(ll, aa, bb);
                            if (smooth[j] > v || (smooth[j] == v && j < i)) peak = false;
                        }
                if (peak) peaks.emplace_back(v, i);
            }
    std::sort(peaks.begin(), peaks.end(), [](const auto& p, const auto& q) { return p.first > q.first; });
    if (peaks.size() > static_cast<std::size_t>(2 * kMaxCandidates)) peaks.resize(2 * kMaxCandidates);

    std::vector<Mode> modes;
    const double samples = std::max(1.0, static_cast<double>(lab.total()));
    for (const auto& peak : peaks) {
        const std::size_t i = peak.second;
        const int l = static_cast<int>(i / (static_cast<std::size_t>(kBinsAB) * kBinsAB));
        const int a = static_cast<int>((i / kBinsAB) % kBinsAB), b = static_cast<int>(i % kBinsAB);
        const cv::Vec3f start((l << kShiftL) + 4.f, (a << kShiftAB) + 2.f, (b << kShiftAB) + 2.f);
        double support = 0.0;
        const cv::Vec3f m = follow_mode(lab, start, kCandidateRadius, &support);
        bool seen = false;
        for (const Mode& other : modes) seen = seen || cv::norm(other.lab - m) < 0.5f * kCandidateRadius;
        if (!seen && support > 0.0) modes.push_back({m, support / samples});
    }
    std::sort(modes.begin(), modes.end(), [](const Mode& p, const Mode& q) { return p.mass > q.mass; });
    if (modes.size() > static_cast<std::size_t>(kMaxCandidates)) modes.resize(kMaxCandidates);
    return modes;
}

// Lab distance of every pixel to `c` (CV_32F).
void lab_distance(const cv::Mat& lab, const cv::Vec3f& c, cv::Mat& dist) {
    dist.create(lab.size(), CV_32F);
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        float* d = dist.ptr<float>(y);
        for (int x = 0; x < lab.cols; ++x) {
            const float dl = p[x][0] - c[0], da = p[x][1] - c[1], db = p[x][2] - c[2];
            d[x] = std::sqrt(dl * dl + da * da + db * db);
        }
    }
}

// The belt's metric: Lab differences per channel in units of the belt's own
// noise on that channel (a gravel belt varies in lightness far more than in
// chroma; a brown product on it differs in chroma), a unit being a quarter of
// a sigma, so that a 256-bin histogram of distances spans 64 sigmas.
constexpr float kUnitsPerSigma = 4.f;

void metric_distance(const cv::Mat& lab, const cv::Vec3f& c, const cv::Vec3f& inv, cv::Mat& dist) {
    dist.create(lab.size(), CV_32F);
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        float* d = dist.ptr<float>(y);
        for (int x = 0; x < lab.cols; ++x) {
            const float dl = (p[x][0] - c[0]) * inv[0], da = (p[x][1] - c[1]) * inv[1], db = (p[x][2] - c[2]) * inv[2];
            d[x] = std::sqrt(dl * dl + da * da + db * db);
        }
    }
}

// Each Lab channel's noise on the belt: 1.4826 times the median absolute
// difference from the belt's colour of the pixels `near` it, at least `floor`.
cv::Vec3f channel_sigmas(const cv::Mat& lab, const cv::Vec3f& c, const cv::Mat& near, float floor) {
    std::array<std::array<std::uint32_t, 512>, 3> h{};
    std::uint64_t n = 0;
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        const std::uint8_t* m = near.ptr<std::uint8_t>(y);
        for (int x = 0; x < lab.cols; ++x) {
            if (!m[x]) continue;
            for (int k = 0; k < 3; ++k)
                ++h[static_cast<std::size_t>(k)]
                   [static_cast<std::size_t>(std::min(511.f, 2.f * std::abs(p[x][k] - c[k])))];
            ++n;
        }
    }
    cv::Vec3f out(floor, floor, floor);
    if (n == 0) return out;
    for (int k = 0; k < 3; ++k) {
        std::uint64_t cum = 0;
        for (int i = 0; i < 512; ++i) {
            cum += h[static_cast<std::size_t>(k)][static_cast<std::size_t>(i)];
            if (2 * cum >= n) {
                out[k] = std::max(floor, 1.4826f * (0.5f * static_cast<float>(i) + 0.25f));
                break;
            }
        }
    }
    return out;
}

// Bands of `mask` running the whole width (`along`) or height of it, at most
// kFixtureThickness of the other side thick: a straight opening keeps what
// runs a quarter of the view, then only components that span it and are thin.
constexpr double kFixtureThickness = 0.15;
cv::Mat thin_bands(const cv::Mat& mask, bool along) {
    const int W = mask.cols, H = mask.rows;
    cv::Mat open, labels, stats, centroids;
    cv::morphologyEx(mask, open, cv::MORPH_OPEN,
                     cv::getStructuringElement(
                         cv::MORPH_RECT, along ? cv::Size(std::max(1, W / 4), 1) : cv::Size(1, std::max(1, H / 4))));
    const int n = cv::connectedComponentsWithStats(open, labels, stats, centroids, 8, CV_32S);
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(n), 0);
    for (int i = 1; i < n; ++i) {
        const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
        const bool spans = along ? w >= 0.9 * W : h >= 0.9 * H;
        const bool thin = along ? h <= kFixtureThickness * H : w <= kFixtureThickness * W;
        keep[static_cast<std::size_t>(i)] = spans && thin ? 255 : 0;
    }
    cv::Mat out(mask.size(), CV_8U);
    for (int y = 0; y < H; ++y) {
        const int* l = labels.ptr<int>(y);
        std::uint8_t* o = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < W; ++x) o[x] = keep[static_cast<std::size_t>(l[x])];
    }
    return out;
}

// Mean shift of `start` over the Lab pixels within `radius` of it: the
// nearest colour mode.
cv::Vec3f follow_mode(const cv::Mat& lab, cv::Vec3f start, float radius, double* support, cv::Vec3f inv) {
    cv::Vec3f c = start;
    const float r2 = radius * radius;
    for (int iteration = 0; iteration < 3; ++iteration) {
        cv::Vec3d sum(0, 0, 0);
        double n = 0.0;
        for (int y = 0; y < lab.rows; ++y) {
            const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
            for (int x = 0; x < lab.cols; ++x) {
                const float dl = (p[x][0] - c[0]) * inv[0], da = (p[x][1] - c[1]) * inv[1],
                            db = (p[x][2] - c[2]) * inv[2];
                if (dl * dl + da * da + db * db < r2) {
                    sum += cv::Vec3d(p[x][0], p[x][1], p[x][2]);
                    n += 1.0;
                }
            }
        }
        if (support) *support = n;
        if (n < 1.0) break;
        c = cv::Vec3f(static_cast<float>(sum[0] / n), static_cast<float>(sum[1] / n), static_cast<float>(sum[2] / n));
    }
    return c;
}

cv::Mat ellipse(int size) {
    return cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(size, size));
}

// The first segmentation's morphology, in pixels of the half-size view it
// works on: an opening that drops lines and specks up to ~6 mask pixels
// across, and the ring round each component that teaches nothing.
constexpr int kLearnOpen = 3, kLearnAround = 4;

// How much a candidate colour looks like the belt: the share of the frame in
// the largest 8-connected region of pixels within kCandidateRadius of it
// (small gaps of texture closed first), and the share of the frame's outer
// ring of pixels it covers. A belt is one surface round the products and
// reaches the edges of the view; a product's colour, however much of the
// view one product covers, sits inside it.
struct BeltLikeness {
    double region = 0.0, border = 0.0;
    double score() const { return region; }
};

BeltLikeness belt_likeness(const cv::Mat& dist) {
    cv::Mat own = dist < kCandidateRadius, labels, stats, centroids;
    cv::morphologyEx(own, own, cv::MORPH_CLOSE, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3)));
    const int n = cv::connectedComponentsWithStats(own, labels, stats, centroids, 8, CV_32S);
    int largest = 0;
    for (int i = 1; i < n; ++i) largest = std::max(largest, stats.at<int>(i, cv::CC_STAT_AREA));
    BeltLikeness out;
    out.region = static_cast<double>(largest) / static_cast<double>(dist.total());
    const int W = own.cols, H = own.rows;
    int on = 0, ring = 0;
    for (int x = 0; x < W; ++x) {
        on += (own.at<std::uint8_t>(0, x) != 0) + (own.at<std::uint8_t>(H - 1, x) != 0);
        ring += 2;
    }
    for (int y = 1; y + 1 < H; ++y) {
        on += (own.at<std::uint8_t>(y, 0) != 0) + (own.at<std::uint8_t>(y, W - 1) != 0);
        ring += 2;
    }
    out.border = ring > 0 ? static_cast<double>(on) / ring : 0.0;
    return out;
}

// --- Step 3's threshold: the valley after the belt's peak -----------------------------

// Histogram of distances (1 Lab unit a bin) smoothed with a Gaussian of 2
// bins; the belt's peak is its maximum below 128; the threshold is the first
// bin past it where the histogram falls under 2% of the peak, or a local
// minimum under half of it.
float valley_threshold(const cv::Mat& dist) {
    std::array<double, 256> h{};
    for (int y = 0; y < dist.rows; ++y) {
        const float* d = dist.ptr<float>(y);
        for (int x = 0; x < dist.cols; ++x) ++h[static_cast<std::size_t>(std::min(255.f, d[x]))];
    }
    std::array<double, 256> s{};
    constexpr int r = 6;
    double kernel[2 * r + 1], ksum = 0.0;
    for (int k = -r; k <= r; ++k) ksum += kernel[k + r] = std::exp(-0.5 * k * k / 4.0);
    for (int i = 0; i < 256; ++i) {
        double v = 0.0;
        for (int k = -r; k <= r; ++k) {
            const int j = std::clamp(i + k, 0, 255);
            v += kernel[k + r] * h[static_cast<std::size_t>(j)];
        }
        s[static_cast<std::size_t>(i)] = v / ksum;
    }
    const auto peak_it = std::max_element(s.begin(), s.begin() + 128);
    const int p = static_cast<int>(peak_it - s.begin());
    const double top = *peak_it;
    for (int t = p + 1; t < 255; ++t) {
        const double v = s[static_cast<std::size_t>(t)];
        if (v <= 0.02 * top) return static_cast<float>(t);
        if (v < 0.5 * top && v <= s[static_cast<std::size_t>(t - 1)] && v < s[static_cast<std::size_t>(t + 1)])
            return static_cast<float>(t);
    }
    return 255.f;
}

// --- Step 2: the light ----------------------------------------------------------------

constexpr int kCellsX = 12, kCellsY = 8;
// Light fields within this range (brightest / darkest) are taken as even:
// the per-frame division is skipped.
constexpr double kEvenLight = 1.04;
constexpr double kMaxLightRange = 2.5;

// The light: log(brightness of the belt) as a quadratic in (x, y), x and y
// running over [-1, 1] across the view whatever its size (so a fit made on a
// smaller copy of the frame fills the frame itself).
struct LightFit {
    bool even = true;
    double k[6] = {0, 0, 0, 0, 0, 0};
};

// The gain (CV_32F) that brings every pixel of a view of `size` to the
// centre's light.
void fill_gain(const LightFit& fit, cv::Size size, cv::Mat& gain) {
    gain.create(size, CV_32F);
    if (fit.even) {
        gain.setTo(1.f);
        return;
    }
    const double* k = fit.k;
    for (int y = 0; y < size.height; ++y) {
        float* g = gain.ptr<float>(y);
        const double yy = (2.0 * y + 1.0) / size.height - 1.0;
        for (int x = 0; x < size.width; ++x) {
            const double xx = (2.0 * x + 1.0) / size.width - 1.0;
            const double surface = k[1] * xx + k[2] * yy + k[3] * xx * xx + k[4] * xx * yy + k[5] * yy * yy;
            g[x] = static_cast<float>(std::exp(-surface));
        }
    }
}

// Fits the light to the median brightness of the belt's pixels (`near`) in
// each cell, weighted by the square root of their number. Even (no fit) with
// fewer than 8 cells, or when the fit varies more than kMaxLightRange across
// the view: no lens or lamp does, so the "belt" pixels were not the belt's.
LightFit fit_light(const cv::Mat& bgr, const cv::Mat& near) {
    const int H = bgr.rows, W = bgr.cols;
    std::vector<double> rows, rhs, weights;
    std::vector<std::uint16_t> values;
    for (int j = 0; j < kCellsY; ++j)
        for (int i = 0; i < kCellsX; ++i) {
            const int y0 = j * H / kCellsY, y1 = (j + 1) * H / kCellsY;
            const int x0 = i * W / kCellsX, x1 = (i + 1) * W / kCellsX;
            values.clear();
            for (int y = y0; y < y1; ++y) {
                const cv::Vec3b* p = bgr.ptr<cv::Vec3b>(y);
                const std::uint8_t* m = near.ptr<std::uint8_t>(y);
                for (int x = x0; x < x1; ++x)
                    if (m[x]) values.push_back(static_cast<std::uint16_t>(p[x][0] + p[x][1] + p[x][2]));
            }
            const std::size_t cell = static_cast<std::size_t>((y1 - y0) * (x1 - x0));
            if (values.empty() || values.size() * 20 < cell) continue;
            auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
            std::nth_element(values.begin(), mid, values.end());
            const double cx = static_cast<double>(x0 + x1) / W - 1.0, cy = static_cast<double>(y0 + y1) / H - 1.0;
            const double w = std::sqrt(static_cast<double>(values.size()));
            const double terms[6] = {1.0, cx, cy, cx * cx, cx * cy, cy * cy};
            for (double t : terms) rows.push_back(t * w);
            rhs.push_back(std::log(std::max(1.0, static_cast<double>(*mid) / 3.0)) * w);
            weights.push_back(w);
        }
    LightFit fit;
    if (weights.size() < 8) return fit;
    const cv::Mat A(static_cast<int>(weights.size()), 6, CV_64F, rows.data());
    const cv::Mat b(static_cast<int>(weights.size()), 1, CV_64F, rhs.data());
    cv::Mat c;
    cv::solve(A, b, c, cv::DECOMP_SVD);
    for (int i = 0; i < 6; ++i) fit.k[i] = c.at<double>(i);
    fit.even = false;
    cv::Mat gain;
    fill_gain(fit, cv::Size(kCellsX * 4, kCellsY * 4), gain);  // its range, on a small grid
    double lo = 0.0, hi = 0.0;
    cv::minMaxLoc(gain, &lo, &hi);
    if (hi > kMaxLightRange * lo) return LightFit{};
    return fit;
}

void apply_gain_f(const cv::Mat& bgr, const cv::Mat& gain, cv::Mat& out) {
    out.create(bgr.size(), CV_8UC3);
    for (int y = 0; y < bgr.rows; ++y) {
        const std::uint8_t* p = bgr.ptr<std::uint8_t>(y);
        const float* g = gain.ptr<float>(y);
        std::uint8_t* o = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < bgr.cols; ++x)
            for (int c = 0; c < 3; ++c) o[3 * x + c] = cv::saturate_cast<std::uint8_t>(p[3 * x + c] * g[x]);
    }
}

// --- Per frame: the light divided out, and the table, in vectors ------------

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CQC_BELT_SIMD 1
// pshufb controls: byte i of channel c is byte 3 i + c of 48 interleaved
// bytes, taken from the first, second or third 16 (-1: none).
struct ChannelShuffles {
    alignas(16) std::int8_t of[3][3][16];  // [channel][which 16][byte]
    ChannelShuffles() {
        for (int ch = 0; ch < 3; ++ch)
            for (int i = 0; i < 16; ++i) {
                const int k = 3 * i + ch;
                for (int part = 0; part < 3; ++part)
                    of[ch][part][i] = static_cast<std::int8_t>(k / 16 == part ? k % 16 : -1);
            }
    }
};
const ChannelShuffles kChannelShuffles;

__attribute__((target("ssse3"))) inline __m128i gather_channel(__m128i a, __m128i b, __m128i c, int ch) {
    const auto* k = reinterpret_cast<const __m128i*>(kChannelShuffles.of[ch]);
    return _mm_or_si128(
        _mm_or_si128(_mm_shuffle_epi8(a, _mm_load_si128(k)), _mm_shuffle_epi8(b, _mm_load_si128(k + 1))),
        _mm_shuffle_epi8(c, _mm_load_si128(k + 2)));
}

// The table path 16 pixels at a time: the channels gathered with pshufb,
// each cut to 6 bits, the table index (b << 12 | g << 6 | r) as 32-bit lanes
// by a multiply-add; then 16 table reads (the one step that cannot be done in
// lanes) and the three masks written as vectors. Returns the pixels done.
// Taken from SimdLevel::SSSE3 (the build's baseline is SSE2).
__attribute__((target("ssse3"))) int classify_row_ssse3(const std::uint8_t* p, int pixels, const std::uint8_t* lut,
                                                        std::uint8_t keep, std::uint8_t* o, std::uint8_t* s,
                                                        std::uint8_t* m) {
    const __m128i six_bits = _mm_set1_epi8(0x3f), zero = _mm_setzero_si128();
    const __m128i weights = _mm_set1_epi32(1 | (1 << 12 << 16));  // (g << 6 | r) * 1 + b * 4096
    const __m128i one = _mm_set1_epi8(1), two = _mm_set1_epi8(2), keep_v = _mm_set1_epi8(static_cast<char>(keep));
    int x = 0;
    alignas(16) std::uint32_t idx[16];
    alignas(16) std::uint8_t f[16];
    for (; x + 16 <= pixels; x += 16, p += 48) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
        const __m128i bl = _mm_and_si128(_mm_srli_epi16(gather_channel(a, b, c, 0), 2), six_bits);
        const __m128i gr = _mm_and_si128(_mm_srli_epi16(gather_channel(a, b, c, 1), 2), six_bits);
        const __m128i rd = _mm_and_si128(_mm_srli_epi16(gather_channel(a, b, c, 2), 2), six_bits);
        for (int half = 0; half < 2; ++half) {
            const __m128i b16 = half ? _mm_unpackhi_epi8(bl, zero) : _mm_unpacklo_epi8(bl, zero);
            const __m128i g16 = half ? _mm_unpackhi_epi8(gr, zero) : _mm_unpacklo_epi8(gr, zero);
            const __m128i r16 = half ? _mm_unpackhi_epi8(rd, zero) : _mm_unpacklo_epi8(rd, zero);
            const __m128i gr16 = _mm_or_si128(_mm_slli_epi16(g16, 6), r16);
            _mm_store_si128(reinterpret_cast<__m128i*>(idx + 8 * half),
                            _mm_madd_epi16(_mm_unpacklo_epi16(gr16, b16), weights));
            _mm_store_si128(reinterpret_cast<__m128i*>(idx + 8 * half + 4),
                            _mm_madd_epi16(_mm_unpackhi_epi16(gr16, b16), weights));
        }
        for (int i = 0; i < 16; ++i) f[i] = lut[idx[i]];
        const __m128i fv = _mm_load_si128(reinterpret_cast<const __m128i*>(f));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + x), _mm_cmpeq_epi8(_mm_and_si128(fv, one), one));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(s + x), _mm_cmpeq_epi8(_mm_and_si128(fv, two), two));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(m + x), _mm_cmpeq_epi8(_mm_and_si128(fv, keep_v), one));
    }
    return x;
}

// 16 samples of divide_light_row_avx2, as 16-bit lanes: the 24-bit products
// are kept as their high and low 16 bits (mulhi, mullo); the rounding's carry
// out of the low half is the top bit it clears.
__attribute__((target("avx2"))) inline __m256i divide_light_16_avx2(const std::uint8_t* p, const std::uint16_t* g) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i gain = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g));
    const __m256i lo = _mm256_mullo_epi16(v, gain), hi = _mm256_mulhi_epu16(v, gain);
    const __m256i rounded = _mm256_add_epi16(lo, _mm256_set1_epi16(128));
    const __m256i carry = _mm256_srli_epi16(_mm256_andnot_si256(rounded, lo), 15);
    // hi + carry <= 254, as p * g < 255 * 65536: the shift loses nothing
    const __m256i value =
        _mm256_or_si256(_mm256_slli_epi16(_mm256_add_epi16(hi, carry), 8), _mm256_srli_epi16(rounded, 8));
    return _mm256_min_epu16(value, _mm256_set1_epi16(255));
}

// The light divided out, 32 channel samples at a time: each sample times its
// gain (8.8 fixed point), rounded, saturated at 255: exactly the plain loop's
// (p * g + 128) >> 8. Returns the samples done. Taken from SimdLevel::AVX2.
__attribute__((target("avx2"))) int divide_light_row_avx2(const std::uint8_t* p, const std::uint16_t* g,
                                                          std::uint8_t* o, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i packed =
            _mm256_packus_epi16(divide_light_16_avx2(p + i, g + i), divide_light_16_avx2(p + i + 16, g + i + 16));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i), _mm256_permute4x64_epi64(packed, 0xd8));
    }
    return i;
}
#endif

}  // namespace

// ---------------------------------------------------------------- model

BeltModel::BeltModel(const MaskParams& params)
    : shadow_min_ratio_(params.shadow_min_ratio),
      shadow_max_ratio_(params.shadow_max_ratio),
      shadow_chroma_(params.shadow_chroma),
      auto_threshold_(params.auto_threshold),
      min_sigma_(params.auto_min_sigma),
      shadows_(params.shadow_enabled) {
    reset();
}

void BeltModel::reset() {
    stats_ = BeltModelStats{};
    inv_unit_ = cv::Vec3f(1.f, 1.f, 1.f);
    threshold_units_ = 0.f;
    gain_f_.release();
    gain_q8_.clear();
    uneven_light_ = false;
    learn_labels_.release();
    half_.release();
    half_even_.release();
    gain_half_.release();
    fixtures_seen_.release();
    not_fixture_.release();
    has_fixtures_ = false;
    constexpr std::size_t bins = static_cast<std::size_t>(kEvidenceBins) * kEvidenceBins * kEvidenceBins;
    object_counts_.assign(bins, 0);
    belt_counts_.assign(bins, 0);
    table_.clear();
}

void BeltModel::learn(const cv::Mat& bgr) {
    if (bgr.empty() || bgr.type() != CV_8UC3) throw InputError("belt model: frames must be 8-bit BGR");
    if (stats_.frames_learnt > 0 && bgr.size() != gain_f_.size())
        throw InputError("belt model: frame size changed while learning");
    // Learning looks at every other pixel of every other row: a belt, its
    // light and its products are as plain there, at a quarter of the work
    // (each pixel as it is, not averaged: the noise the model measures is the
    // noise the frames are classified with).
    cv::resize(bgr, half_, cv::Size(std::max(1, bgr.cols / 2), std::max(1, bgr.rows / 2)), 0, 0, cv::INTER_NEAREST);
    if (stats_.frames_learnt == 0) find_belt_and_light(half_, bgr.size());
    if (uneven_light_) apply_gain_f(half_, gain_half_, half_even_);
    segment_and_count(uneven_light_ ? half_even_ : half_, bgr.size());
    ++stats_.frames_learnt;
    build_table();
}

void BeltModel::find_belt_and_light(const cv::Mat& bgr, cv::Size full) {
    cv::Mat lab, dist, near, normalised;
    cv::Vec3f belt(0, 0, 0);
    float valley = 255.f;
    double region = 0.0;
    int candidates = 0;
    LightFit light;
    // The belt's colour and the light, in turn: the belt chosen among the
    // frame's colour modes (in the light found so far), the light fitted to
    // the pixels near that colour.
    for (int iteration = 0; iteration < 3; ++iteration) {
        cv::cvtColor(iteration == 0 ? bgr : normalised, lab, cv::COLOR_BGR2Lab);
        const std::vector<Mode> modes = colour_modes(lab);
        candidates = static_cast<int>(modes.size());
        double best = -1.0;
        for (const Mode& m : modes) {
            lab_distance(lab, m.lab, dist);
            const BeltLikeness like = belt_likeness(dist);
            if (like.score() > best) {
                best = like.score();
                region = like.region;
                belt = m.lab;
            }
        }
        if (iteration == 0) stats_.belt_region = static_cast<float>(region);
        lab_distance(lab, belt, dist);
        valley = valley_threshold(dist);
        near = dist < valley;
        light = fit_light(bgr, near);
        fill_gain(light, bgr.size(), gain_half_);
        apply_gain_f(bgr, gain_half_, normalised);
    }
    fill_gain(light, full, gain_f_);
    double lo = 0.0, hi = 0.0;
    cv::minMaxLoc(gain_f_, &lo, &hi);
    stats_.light_range = static_cast<float>(hi / std::max(lo, 1e-6));
    uneven_light_ = stats_.light_range > kEvenLight;
    if (!uneven_light_) {
        gain_f_.setTo(1.f);
        gain_half_.setTo(1.f);
    }
    gain_q8_.resize(static_cast<std::size_t>(gain_f_.total()) * 3);
    for (int y = 0; y < gain_f_.rows; ++y) {
        const float* g = gain_f_.ptr<float>(y);
        std::uint16_t* q = gain_q8_.data() + static_cast<std::size_t>(y) * gain_f_.cols * 3;
        for (int x = 0; x < gain_f_.cols; ++x)
            q[3 * x] = q[3 * x + 1] = q[3 * x + 2] =
                static_cast<std::uint16_t>(std::clamp(std::lround(g[x] * 256.0f), 0L, 65535L));
    }

    // The belt in the final light: its noise per channel from the pixels near
    // its colour, then the threshold in that metric, from the valley that
    // ends the belt's own colours.
    if (uneven_light_) apply_gain_f(bgr, gain_half_, normalised);
    cv::cvtColor(uneven_light_ ? normalised : bgr, lab, cv::COLOR_BGR2Lab);
    lab_distance(lab, belt, dist);
    valley = valley_threshold(dist);
    const cv::Vec3f sigma = channel_sigmas(lab, belt, dist < valley, static_cast<float>(min_sigma_));
    inv_unit_ = cv::Vec3f(kUnitsPerSigma / sigma[0], kUnitsPerSigma / sigma[1], kUnitsPerSigma / sigma[2]);
    metric_distance(lab, belt, inv_unit_, dist);
    valley = valley_threshold(dist);
    threshold_units_ = std::max(valley, static_cast<float>(auto_threshold_) * kUnitsPerSigma);
    stats_.belt_lab = belt;
    stats_.belt_sigma = sigma;
    stats_.threshold = threshold_units_ / kUnitsPerSigma;
    stats_.candidates = candidates;
    stats_.belt_region = std::max(stats_.belt_region, static_cast<float>(region));
    // A monochrome camera: no pixel has more than a trace of chroma.
    std::uint64_t coloured = 0;
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        for (int x = 0; x < lab.cols; ++x)
            if (std::abs(p[x][1] - 128) + std::abs(p[x][2] - 128) > 4) ++coloured;
    }
    stats_.colour = coloured * 4 * 200 > lab.total();  // more than 0.5% of the pixels
}

const cv::Mat& BeltModel::normalise(const cv::Mat& bgr) {
    if (!uneven_light_) return bgr;
    normalised_.create(bgr.size(), CV_8UC3);
    const int n = bgr.cols * 3;
#ifdef CQC_BELT_SIMD
    const bool avx2 = simd_level() >= SimdLevel::AVX2;
#endif
    for (int y = 0; y < bgr.rows; ++y) {
        const std::uint8_t* p = bgr.ptr<std::uint8_t>(y);
        const std::uint16_t* g = gain_q8_.data() + static_cast<std::size_t>(y) * n;
        std::uint8_t* o = normalised_.ptr<std::uint8_t>(y);
        int i = 0;
#ifdef CQC_BELT_SIMD
        if (avx2) i = divide_light_row_avx2(p, g, o, n);
#endif
        for (; i < n; ++i) {
            const std::uint32_t v = (static_cast<std::uint32_t>(p[i]) * g[i] + 128u) >> 8;
            o[i] = static_cast<std::uint8_t>(v > 255u ? 255u : v);
        }
    }
    return normalised_;
}

namespace {

// The area at which half the pixels of `areas` lie in components no larger
// (0 for none); sorts `areas`.
double area_weighted_median(std::vector<int>& areas) {
    if (areas.empty()) return 0.0;
    std::sort(areas.begin(), areas.end());
    const double total = std::accumulate(areas.begin(), areas.end(), 0.0);
    double cum = 0.0;
    for (int a : areas) {
        cum += a;
        if (2.0 * cum >= total) return a;
    }
    return 0.0;
}

}  // namespace

void BeltModel::segment_and_count(const cv::Mat& even, cv::Size full) {
    cv::Mat lab, dist, labels, cstats, centroids;
    cv::cvtColor(even, lab, cv::COLOR_BGR2Lab);
    // The belt as this frame shows it: a flickering light or an exposure
    // that hunts moves every colour at once, so the belt's colour is followed
    // (the mean of the pixels near it, three times) before anything is
    // measured against it.
    const cv::Vec3f belt = follow_mode(lab, stats_.belt_lab, threshold_units_, nullptr, inv_unit_);
    metric_distance(lab, belt, inv_unit_, dist);
    cv::Mat far = dist > threshold_units_;
    cv::morphologyEx(far, far, cv::MORPH_OPEN, ellipse(kLearnOpen));
    // A frame that is mostly "far from the belt" (the belt itself changed
    // beyond the threshold) would teach the products' colours as belt: it
    // teaches nothing.
    if (cv::countNonZero(far) > 0.8 * static_cast<double>(far.total())) return;
    const int n = cv::connectedComponentsWithStats(far, labels, cstats, centroids, 8, CV_32S);
    const int W = even.cols, H = even.rows;
    const std::vector<int> shadowy_px = shadowy_pixels(lab, labels, n, belt);

    // Components that reach across the view (two opposite sides) are belt
    // structures; of the rest, those under a tenth of the typical component
    // (the area-weighted median: the size at which half the component pixels
    // are in larger ones) are crumbs and specks.
    std::vector<int> areas;
    std::vector<bool> product(static_cast<std::size_t>(n), false), structure(static_cast<std::size_t>(n), false);
    for (int i = 1; i < n; ++i) {
        const int x0 = cstats.at<int>(i, cv::CC_STAT_LEFT), y0 = cstats.at<int>(i, cv::CC_STAT_TOP);
        const int x1 = x0 + cstats.at<int>(i, cv::CC_STAT_WIDTH), y1 = y0 + cstats.at<int>(i, cv::CC_STAT_HEIGHT);
        if ((x0 == 0 && x1 == W) || (y0 == 0 && y1 == H)) {
            structure[static_cast<std::size_t>(i)] = true;
            continue;
        }
        if (shadowy_px[static_cast<std::size_t>(i)] >= 0.9 * cstats.at<int>(i, cv::CC_STAT_AREA)) continue;
        product[static_cast<std::size_t>(i)] = true;
        areas.push_back(cstats.at<int>(i, cv::CC_STAT_AREA));
    }
    const double typical = area_weighted_median(areas);
    int kept = 0;
    cv::Mat objects(even.size(), CV_8U, cv::Scalar(0));
    for (int i = 1; i < n; ++i) {
        if (!product[static_cast<std::size_t>(i)]) continue;
        if (cstats.at<int>(i, cv::CC_STAT_AREA) < 0.1 * typical) {
            product[static_cast<std::size_t>(i)] = false;
            continue;
        }
        ++kept;
    }
    // Structures that reach across the view (rails, guards, seams, a grid)
    // teach nothing: they are neither the belt's colour nor the products'.
    cv::Mat structures(even.size(), CV_8U);
    for (int y = 0; y < H; ++y) {
        const int* l = labels.ptr<int>(y);
        std::uint8_t* o = objects.ptr<std::uint8_t>(y);
        std::uint8_t* st = structures.ptr<std::uint8_t>(y);
        for (int x = 0; x < W; ++x) {
            o[x] = product[static_cast<std::size_t>(l[x])] ? 255 : 0;
            st[x] = structure[static_cast<std::size_t>(l[x])] ? 255 : 0;
        }
    }
    // Deep interiors (a quarter of a typical component's radius in, 1 to 3
    // pixels of this half-size view) teach the product's colours; pixels 2 or
    // more away from any component teach the belt's.
    const int r = typical > 0.0 ? std::clamp(static_cast<int>(0.25 * std::sqrt(typical / CV_PI)), 1, 3) : 1;
    cv::Mat core, around;
    cv::erode(objects, core, ellipse(2 * r + 1));
    cv::dilate(objects, around, ellipse(kLearnAround));
    const cv::Mat fixtures = update_fixtures(structures, full);
    const std::uint64_t object_px = count_evidence(even, objects, core, around, structures, fixtures);

    const double frames = stats_.frames_learnt;
    stats_.object_share = static_cast<float>(
        (stats_.object_share * frames + static_cast<double>(object_px) / even.total()) / (frames + 1.0));
    stats_.object_components += kept;
    stats_.typical_area = static_cast<float>(typical * full.area()) / static_cast<float>(even.total());
}

// In colour footage, a component of shadow colours only (the belt's chroma,
// darker) is a shadow, not a product: a product's shadow cast from outside
// the view, or cut off from it. It teaches nothing. (A monochrome camera has
// no chroma to tell them apart: there every colour is the belt's, and the
// evidence alone decides.) Per label of `labels`, its pixels of shadow colour
// (all 0 in monochrome footage or with shadows off).
std::vector<int> BeltModel::shadowy_pixels(const cv::Mat& lab, const cv::Mat& labels, int n,
                                           const cv::Vec3f& belt) const {
    std::vector<int> shadowy_px(static_cast<std::size_t>(n), 0);
    if (!(stats_.colour && shadows_)) return shadowy_px;
    const float chroma_limit = static_cast<float>(shadow_chroma_);  // in the belt's sigmas
    const float belt_l = std::max(1.f, belt[0]);
    const float ia = 1.f / stats_.belt_sigma[1], ib = 1.f / stats_.belt_sigma[2];
    for (int y = 0; y < lab.rows; ++y) {
        const int* l = labels.ptr<int>(y);
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        for (int x = 0; x < lab.cols; ++x) {
            if (l[x] == 0) continue;
            const float ratio = p[x][0] / belt_l, da = (p[x][1] - belt[1]) * ia, db = (p[x][2] - belt[2]) * ib;
            if (ratio >= shadow_min_ratio_ && ratio <= shadow_max_ratio_ &&
                da * da + db * db < chroma_limit * chroma_limit)
                ++shadowy_px[static_cast<std::size_t>(l[x])];
        }
    }
    return shadowy_px;
}

// Fixtures: structures in the same place on every learning frame that run
// straight along or across the whole view (side rails, guards, the belt's
// edge, a mesh's lines along the motion). The view ends at them, so every
// frame drops them from the mask; and a colour they share with the products
// (a grey guard in a monochrome camera) is not the belt's. They must be seen
// on two learning frames at least (one frame cannot tell a rail from a row of
// products), and be thin bands: at most kFixtureThickness of the view thick,
// and as long as it. Updates the mask's keep-map (not_fixture_, the frame's
// `full` size) and returns the fixtures of this half-size learning frame.
cv::Mat BeltModel::update_fixtures(const cv::Mat& structures, cv::Size full) {
    if (stats_.frames_learnt == 0) fixtures_seen_ = structures.clone();
    else cv::bitwise_and(fixtures_seen_, structures, fixtures_seen_);
    cv::Mat fixtures(structures.size(), CV_8U, cv::Scalar(0));
    if (stats_.frames_learnt >= 1) {
        fixtures = thin_bands(fixtures_seen_, true) | thin_bands(fixtures_seen_, false);
    }
    has_fixtures_ = cv::countNonZero(fixtures) > 0;
    cv::Mat full_fixtures;
    cv::resize(fixtures, full_fixtures, full, 0, 0, cv::INTER_NEAREST);
    cv::bitwise_not(full_fixtures, not_fixture_);
    return fixtures;
}

// The learning frame's evidence: each pixel's colour counts for the products
// (deep inside a product component: `core`) or for the belt (away from every
// component, `around`, and from the structures), or not at all (the rims
// between; fixtures). Their labels go to learn_labels_ (1 belt, 2 rim, 3
// product, 4 fixture). Returns the pixels of product components.
std::uint64_t BeltModel::count_evidence(const cv::Mat& even, const cv::Mat& objects, const cv::Mat& core,
                                        const cv::Mat& around, const cv::Mat& structures, const cv::Mat& fixtures) {
    learn_labels_.create(even.size(), CV_8U);
    std::uint64_t object_px = 0;
    constexpr int shift = 8 - kEvidenceBits;
    for (int y = 0; y < even.rows; ++y) {
        const cv::Vec3b* p = even.ptr<cv::Vec3b>(y);
        const std::uint8_t* c = core.ptr<std::uint8_t>(y);
        const std::uint8_t* a = around.ptr<std::uint8_t>(y);
        const std::uint8_t* o = objects.ptr<std::uint8_t>(y);
        const std::uint8_t* fx = fixtures.ptr<std::uint8_t>(y);
        const std::uint8_t* st = structures.ptr<std::uint8_t>(y);
        std::uint8_t* l = learn_labels_.ptr<std::uint8_t>(y);
        for (int x = 0; x < even.cols; ++x) {
            const std::size_t bin = (static_cast<std::size_t>(p[x][0] >> shift) * kEvidenceBins +
                                     static_cast<std::size_t>(p[x][1] >> shift)) *
                                        kEvidenceBins +
                                    static_cast<std::size_t>(p[x][2] >> shift);
            if (o[x]) ++object_px;
            if (fx[x]) {
                l[x] = 4;
            } else if (c[x]) {
                ++object_counts_[bin];
                l[x] = 3;
            } else if (!a[x] && !st[x]) {
                ++belt_counts_[bin];
                l[x] = 1;
            } else {
                l[x] = 2;
            }
        }
    }
    return object_px;
}

namespace {

// Sums over each bin's 3x3x3 neighbourhood (zero outside), as three passes of 3.
void box3_sum(const std::vector<std::uint32_t>& in, int n, std::vector<float>& out) {
    std::vector<float> a(in.begin(), in.end()), b(in.size());
    const std::size_t strides[3] = {static_cast<std::size_t>(n) * n, static_cast<std::size_t>(n), 1};
    for (int axis = 0; axis < 3; ++axis) {
        const std::size_t st = strides[axis];
        for (std::size_t i = 0; i < a.size(); ++i) {
            const int coord = static_cast<int>((i / st) % static_cast<std::size_t>(n));
            float v = a[i];
            if (coord > 0) v += a[i - st];
            if (coord < n - 1) v += a[i + st];
            b[i] = v;
        }
        std::swap(a, b);
    }
    out.swap(a);
}

}  // namespace

void BeltModel::build_table() {
    constexpr int eb = kEvidenceBins;
    auto idx = [](int b, int g, int r) { return (static_cast<std::size_t>(b) * eb + g) * eb + r; };
    // Evidence smoothed over each bin's 3x3x3 neighbourhood (about +-8 levels).
    std::vector<float> objects, belt;
    box3_sum(object_counts_, eb, objects);
    box3_sum(belt_counts_, eb, belt);
    // How split the evidence is: pixels whose own bin was seen as both.
    double both = 0.0, all = 0.0;
    for (std::size_t i = 0; i < object_counts_.size(); ++i) {
        const double o = object_counts_[i], b = belt_counts_[i];
        all += o + b;
        if (o > 0.0 && b > 0.0 && std::min(o, b) * 2.0 >= std::max(o, b)) both += o + b;
    }
    stats_.ambiguous_share = all > 0.0 ? static_cast<float>(both / all) : 0.f;
    // A colour far from the belt's is a product's unless the belt evidence
    // for it is real: more than its product evidence by kFarColourPrior of all
    // the evidence. A few stray belt pixels (a blend at an edge, a thin limb
    // the learning's opening took off) must not make a product colour belt
    // when every product of that colour lay in rows that reach across the
    // view while the model learnt, and so taught nothing.
    const float far_prior = static_cast<float>(kFarColourPrior * all);

    // Every table bin's centre colour in Lab, converted once.
    constexpr int n = 1 << kLutBits, shift = 8 - kLutBits, centre = 1 << (shift - 1);
    if (bin_lab_.empty()) {
        cv::Mat bins(n * n, n, CV_8UC3);
        for (int b = 0; b < n; ++b)
            for (int g = 0; g < n; ++g) {
                cv::Vec3b* row = bins.ptr<cv::Vec3b>(b * n + g);
                for (int r = 0; r < n; ++r)
                    row[r] = cv::Vec3b(static_cast<std::uint8_t>((b << shift) | centre),
                                       static_cast<std::uint8_t>((g << shift) | centre),
                                       static_cast<std::uint8_t>((r << shift) | centre));
            }
        cv::cvtColor(bins, bin_lab_, cv::COLOR_BGR2Lab);
    }
    const cv::Vec3f belt_lab = stats_.belt_lab;
    const float threshold = threshold_units_;
    const cv::Vec3f inv = inv_unit_;
    const float chroma_limit = static_cast<float>(shadow_chroma_) * kUnitsPerSigma;
    const float belt_l = std::max(1.f, belt_lab[0]);
    table_.resize(static_cast<std::size_t>(n) * n * n);
    constexpr int down = kLutBits - kEvidenceBits;
    for (int b = 0; b < n; ++b)
        for (int g = 0; g < n; ++g) {
            const cv::Vec3b* row = bin_lab_.ptr<cv::Vec3b>(b * n + g);
            for (int r = 0; r < n; ++r) {
                const cv::Vec3b& p = row[r];
                const float dl = (p[0] - belt_lab[0]) * inv[0], da = (p[1] - belt_lab[1]) * inv[1],
                            db = (p[2] - belt_lab[2]) * inv[2];
                const float distance = std::sqrt(dl * dl + da * da + db * db);
                const std::size_t e = idx(b >> down, g >> down, r >> down);
                const float o = objects[e], s = belt[e];
                const bool far = distance > threshold;
                const bool seen = o + s >= 3.f;
                const bool product_evidence = seen && o > s;
                const bool product = seen ? o + (far ? far_prior : 0.f) > s : far;
                const float ratio = p[0] / belt_l;
                const bool shadowy = ratio >= shadow_min_ratio_ && ratio <= shadow_max_ratio_ &&
                                     std::sqrt(da * da + db * db) < chroma_limit;
                const bool shadow = shadows_ && shadowy && !product_evidence;
                table_[(static_cast<std::size_t>(b) * n + g) * n + r] =
                    static_cast<std::uint8_t>((product ? 1 : 0) | (shadow ? 2 : 0));
            }
        }
}

void BeltModel::classify(const cv::Mat& bgr, cv::Mat& object, cv::Mat& shadow, cv::Mat& mask) {
    if (table_.empty()) throw InputError("belt model: classify() before any learn()");
    // The light field and the fixtures are per pixel: with either, frames
    // must keep the learnt size (the pipeline's frames always do).
    if (bgr.type() != CV_8UC3 || ((uneven_light_ || has_fixtures_) && bgr.size() != gain_f_.size()))
        throw InputError("belt model: frames must be 8-bit BGR of the learnt size");
    const cv::Mat& even = normalise(bgr);
    object.create(bgr.size(), CV_8UC1);
    shadow.create(bgr.size(), CV_8UC1);
    mask.create(bgr.size(), CV_8UC1);
    static_assert(kLutBits == 6, "classify_row_ssse3 is written for 6-bit channels");
    constexpr int shift = 8 - kLutBits;
    const std::uint8_t* lut = table_.data();
    // The mask's first step (object minus shadow) in the same pass: a copy
    // and a subtraction less over the frame.
    const std::uint8_t keep = shadows_ ? 3 : 1;
#ifdef CQC_BELT_SIMD
    const bool ssse3 = simd_level() >= SimdLevel::SSSE3;
#endif
    for (int y = 0; y < even.rows; ++y) {
        const std::uint8_t* p = even.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict o = object.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict s = shadow.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict m = mask.ptr<std::uint8_t>(y);
        int x = 0;
#ifdef CQC_BELT_SIMD
        if (ssse3) {
            x = classify_row_ssse3(p, even.cols, lut, keep, o, s, m);
            p += 3 * x;
        }
#endif
        for (; x < even.cols; ++x, p += 3) {
            const std::uint8_t f =
                lut[((p[0] >> shift) << (2 * kLutBits)) | ((p[1] >> shift) << kLutBits) | (p[2] >> shift)];
            o[x] = (f & 1) ? 255 : 0;
            s[x] = (f & 2) ? 255 : 0;
            m[x] = (f & keep) == 1 ? 255 : 0;
        }
        if (has_fixtures_) {
            const std::uint8_t* keep_px = not_fixture_.ptr<std::uint8_t>(y);
            for (int i = 0; i < even.cols; ++i) m[i] &= keep_px[i];
        }
    }
}

std::uint8_t BeltModel::colour_class(std::uint8_t b, std::uint8_t g, std::uint8_t r) const {
    if (table_.empty()) return 0;
    constexpr int shift = 8 - kLutBits;
    return table_[((static_cast<std::size_t>(b >> shift) << kLutBits | (g >> shift)) << kLutBits) | (r >> shift)];
}

}  // namespace cqc
