#include "conveyor_qc/mask.hpp"

#include "params_check.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <sstream>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

namespace cqc {

// ---------------------------------------------------------------- strings

using detail::format_number;

const char* to_string(MaskMode m) {
    switch (m) {
        case MaskMode::Auto: return "auto";
        case MaskMode::Threshold: return "threshold";
    }
    return "auto";
}

MaskMode mask_mode_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (MaskMode m : {MaskMode::Auto, MaskMode::Threshold}) {
        if (v == to_string(m)) return m;
    }
    throw ParamError("mask.mode must be one of auto, threshold, got '" + s + "'");
}

const char* to_string(ColorSpace c) {
    switch (c) {
        case ColorSpace::Gray: return "gray";
        case ColorSpace::HSV: return "hsv";
        case ColorSpace::Lab: return "lab";
    }
    return "gray";
}

ColorSpace color_space_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (ColorSpace c : {ColorSpace::Gray, ColorSpace::HSV, ColorSpace::Lab}) {
        if (v == to_string(c)) return c;
    }
    throw ParamError("colour space must be one of gray, hsv, lab, got '" + s + "'");
}

// ---------------------------------------------------------------- validation

namespace {

std::string num(double v) { return format_number(v); }

[[noreturn]] void fail(const std::string& field, const std::string& range, double got) {
    detail::param_error("mask", field, range, got);
}

// Closed interval [lo, hi]; lo_name / hi_name replace the bound by "name=value"
// when the bound is another field.
void check_closed(const std::string& field, double v, double lo, double hi,
                  const std::string& lo_name = {}, const std::string& hi_name = {}) {
    if (!(v >= lo && v <= hi)) {
        const std::string l = lo_name.empty() ? num(lo) : lo_name + "=" + num(lo);
        const std::string h = hi_name.empty() ? num(hi) : hi_name + "=" + num(hi);
        fail(field, "in [" + l + ", " + h + "]", v);
    }
}

void check_int(const std::string& field, int v, int lo, int hi) {
    if (v < lo || v > hi) fail(field, "in [" + num(lo) + ", " + num(hi) + "]", v);
}

void check_odd(const std::string& field, int v, int lo, int hi) {
    if (v < lo || v > hi || v % 2 == 0) fail(field, "odd in [" + num(lo) + ", " + num(hi) + "]", v);
}

double channel_max(ColorSpace space, int c) { return (space == ColorSpace::HSV && c == 0) ? 180.0 : 255.0; }

void check_range(const std::string& lower_name, const std::string& upper_name, ColorSpace space,
                 const cv::Scalar& lower, const cv::Scalar& upper) {
    const int channels = space == ColorSpace::Gray ? 1 : 3;
    for (int c = 0; c < channels; ++c) {
        const std::string idx = "[" + std::to_string(c) + "]";
        const double hi = channel_max(space, c);
        check_closed(lower_name + idx, lower[c], 0.0, hi);
        check_closed(upper_name + idx, upper[c], 0.0, hi);
        if (!(lower[c] <= upper[c])) {
            fail(lower_name + idx, "in [0, " + upper_name + idx + "=" + num(upper[c]) + "]", lower[c]);
        }
    }
}

bool valid_space(ColorSpace s) {
    return s == ColorSpace::Gray || s == ColorSpace::HSV || s == ColorSpace::Lab;
}

}  // namespace

void MaskParams::validate() const {
    if (mode != MaskMode::Auto && mode != MaskMode::Threshold)
        fail("mode", "one of auto, threshold", static_cast<int>(mode));
    if (!valid_space(object_space)) fail("object_space", "one of gray, hsv, lab", static_cast<int>(object_space));
    if (!valid_space(shadow_space)) fail("shadow_space", "one of gray, hsv, lab", static_cast<int>(shadow_space));

    check_range("object_lower", "object_upper", object_space, object_lower, object_upper);
    check_range("shadow_lower", "shadow_upper", shadow_space, shadow_lower, shadow_upper);

    if (!(shadow_min_ratio > 0.0 && shadow_min_ratio < 1.0)) fail("shadow_min_ratio", "in (0, 1)", shadow_min_ratio);
    if (!(shadow_max_ratio > shadow_min_ratio && shadow_max_ratio <= 1.0))
        fail("shadow_max_ratio", "in (shadow_min_ratio=" + num(shadow_min_ratio) + ", 1]", shadow_max_ratio);
    if (!(shadow_chroma > 0.0 && shadow_chroma <= 100.0)) fail("shadow_chroma", "in (0, 100]", shadow_chroma);

    check_closed("canny_low", canny_low, 0.0, canny_high, {}, "canny_high");
    check_closed("canny_high", canny_high, canny_low, 1000.0, "canny_low", {});
    check_int("edge_dilate", edge_dilate, 0, 10);

    check_int("auto_learn_frames", auto_learn_frames, 1, 1000);
    check_int("auto_learn_stride", auto_learn_stride, 1, 1000);
    if (!(auto_threshold > 0.0 && auto_threshold <= 100.0)) fail("auto_threshold", "in (0, 100]", auto_threshold);
    if (!(auto_min_sigma > 0.0 && auto_min_sigma <= 100.0)) fail("auto_min_sigma", "in (0, 100]", auto_min_sigma);

    check_odd("blur", blur, 1, 15);
    check_odd("kernel_size", kernel_size, 1, 31);
    check_int("open_iterations", open_iterations, 0, 20);
    check_int("erode_iterations", erode_iterations, 0, 20);
    check_int("dilate_iterations", dilate_iterations, 0, 20);
    check_int("close_iterations", close_iterations, 0, 20);
}

// ---------------------------------------------------------------- builder

MaskBuilder::MaskBuilder(const MaskParams& params)
    : params_((params.validate(), params)),
      morphology_(cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(params.kernel_size, params.kernel_size))),
      edge_morphology_(cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3))) {
    reset();
}

bool MaskBuilder::ready() const {
    return params_.mode == MaskMode::Threshold || frames_learnt_ >= params_.auto_learn_frames;
}

void MaskBuilder::reset() {
    frames_seen_ = 0;
    frames_learnt_ = 0;
    bgr_lut_ready_ = false;
    for (auto& h : hist_) h.fill(0);
    belt_mean_ = cv::Vec3f(0, 0, 0);
    belt_sigma_ = cv::Vec3f(1, 1, 1);
}

namespace {

// Median of a 256-bin histogram, interpolated inside the median bin (values
// are integers, each bin seen as the interval [v - 0.5, v + 0.5)).
double hist_median(const std::uint32_t* h, int bins, double total) {
    const double half = 0.5 * total;
    double cum = 0.0;
    for (int v = 0; v < bins; ++v) {
        if (h[v] == 0) continue;
        if (cum + h[v] >= half) return v - 0.5 + (half - cum) / h[v];
        cum += h[v];
    }
    return bins - 1;
}

}  // namespace

void MaskBuilder::learn(const cv::Mat& lab) {
    // Pool every 4th pixel in x and y of this frame into the histograms.
    constexpr int step = 4;
    for (int y = step / 2; y < lab.rows; y += step) {
        const cv::Vec3b* row = lab.ptr<cv::Vec3b>(y);
        for (int x = step / 2; x < lab.cols; x += step) {
            const cv::Vec3b& p = row[x];
            ++hist_[0][p[0]];
            ++hist_[1][p[1]];
            ++hist_[2][p[2]];
        }
    }
    ++frames_learnt_;
    update_model();
}

void MaskBuilder::update_model() {
    // The belt is the majority of the pixels: its colour is the per-channel
    // median, its noise the MAD scaled to a Gaussian sigma.
    std::array<std::uint32_t, 256> dev{};
    for (int c = 0; c < 3; ++c) {
        const auto& h = hist_[c];
        double total = 0.0;
        for (std::uint32_t n : h) total += n;
        if (total <= 0.0) return;
        const double med = hist_median(h.data(), 256, total);
        // Histogram of |v - round(med)|; the half-bin offset of the median is
        // below the resolution that matters against auto_min_sigma.
        dev.fill(0);
        const int m = static_cast<int>(std::lround(med));
        for (int v = 0; v < 256; ++v) dev[std::abs(v - m)] += h[v];
        // |v - m| is an integer: bin 0 is [0, 0.5), bin d >= 1 is [d - 0.5, d + 0.5).
        double mad = 0.0;
        {
            const double half = 0.5 * total;
            double cum = 0.0;
            for (int d = 0; d < 256; ++d) {
                if (dev[d] == 0) continue;
                const double lo = d == 0 ? 0.0 : d - 0.5, width = d == 0 ? 0.5 : 1.0;
                if (cum + dev[d] >= half) { mad = lo + width * (half - cum) / dev[d]; break; }
                cum += dev[d];
            }
        }
        belt_mean_[c] = static_cast<float>(med);
        belt_sigma_[c] = static_cast<float>(std::max(1.4826 * mad, params_.auto_min_sigma));
    }
    for (int c = 0; c < 3; ++c) {
        for (int v = 0; v < 256; ++v) {
            const float z = (static_cast<float>(v) - belt_mean_[c]) / belt_sigma_[c];
            lut_[c][v] = z * z;
        }
    }
    const double belt_l = std::max(1.0f, belt_mean_[0]);
    for (int v = 0; v < 256; ++v) {
        const double ratio = v / belt_l;
        shadow_l_[v] = (ratio >= params_.shadow_min_ratio && ratio <= params_.shadow_max_ratio) ? 1 : 0;
    }
}

bool MaskBuilder::build_auto(const cv::Mat& bgr, cv::Mat& mask) {
    object_.create(bgr.size(), CV_8UC1);
    shadow_.create(bgr.size(), CV_8UC1);
    const int stride = params_.auto_learn_stride;
    const bool learning = frames_learnt_ < params_.auto_learn_frames;
    if (!learning) {
        if (!bgr_lut_ready_) build_bgr_lut();
        ++frames_seen_;
        mask.create(bgr.size(), CV_8UC1);
        classify_bgr(bgr, mask);
        return true;
    }
    cv::cvtColor(bgr, lab_, cv::COLOR_BGR2Lab);
    if (frames_seen_ % stride == 0) learn(lab_);
    ++frames_seen_;
    if (frames_learnt_ == 0) {  // cannot happen after the first frame, kept for safety
        object_.setTo(0);
        shadow_.setTo(0);
        return false;
    }
    classify_lab(lab_, object_, shadow_);
    return false;
}

void MaskBuilder::build_bgr_lut() {
    constexpr int n = 1 << kLutBits, shift = 8 - kLutBits, centre = 1 << (shift - 1);
    // Every bin's centre colour as one n*n x n image, converted to Lab once.
    cv::Mat bins(n * n, n, CV_8UC3);
    for (int b = 0; b < n; ++b)
        for (int g = 0; g < n; ++g) {
            cv::Vec3b* row = bins.ptr<cv::Vec3b>(b * n + g);
            for (int r = 0; r < n; ++r)
                row[r] = cv::Vec3b(static_cast<std::uint8_t>((b << shift) | centre),
                                   static_cast<std::uint8_t>((g << shift) | centre),
                                   static_cast<std::uint8_t>((r << shift) | centre));
        }
    cv::Mat lab;
    cv::cvtColor(bins, lab, cv::COLOR_BGR2Lab);
    cv::Mat object(bins.size(), CV_8UC1), shadow(bins.size(), CV_8UC1);
    classify_lab(lab, object, shadow);
    bgr_lut_.resize(static_cast<std::size_t>(n) * n * n);
    const std::uint8_t* o = object.ptr<std::uint8_t>(0);  // continuous: freshly allocated
    const std::uint8_t* s = shadow.ptr<std::uint8_t>(0);
    for (std::size_t i = 0; i < bgr_lut_.size(); ++i)
        bgr_lut_[i] = static_cast<std::uint8_t>((o[i] ? 1 : 0) | (s[i] ? 2 : 0));
    bgr_lut_ready_ = true;
}

namespace {

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CQC_CLASSIFY_SSSE3 1
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
    return _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, _mm_load_si128(k)), _mm_shuffle_epi8(b, _mm_load_si128(k + 1))),
                        _mm_shuffle_epi8(c, _mm_load_si128(k + 2)));
}

// The table path 16 pixels at a time: the channels gathered with pshufb,
// each cut to 6 bits, the table index (b << 12 | g << 6 | r) as 32-bit lanes
// by a multiply-add; then 16 table reads (the one step that cannot be done in
// lanes) and the three masks written as vectors. Returns the pixels done.
// SSSE3 is checked at run time (the build's baseline is SSE2).
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
#endif

}  // namespace

void MaskBuilder::classify_bgr(const cv::Mat& bgr, cv::Mat& mask) {
    static_assert(kLutBits == 6, "classify_row_ssse3 is written for 6-bit channels");
    constexpr int shift = 8 - kLutBits;
    const std::uint8_t* lut = bgr_lut_.data();
    // The mask's first step (object minus shadow) in the same pass: a copy
    // and a subtraction less over the frame.
    const std::uint8_t keep = params_.shadow_enabled ? 3 : 1;
#ifdef CQC_CLASSIFY_SSSE3
    static const bool ssse3 = __builtin_cpu_supports("ssse3");
#endif
    for (int y = 0; y < bgr.rows; ++y) {
        const std::uint8_t* p = bgr.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict o = object_.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict s = shadow_.ptr<std::uint8_t>(y);
        std::uint8_t* __restrict m = mask.ptr<std::uint8_t>(y);
        int x = 0;
#ifdef CQC_CLASSIFY_SSSE3
        if (ssse3) {
            x = classify_row_ssse3(p, bgr.cols, lut, keep, o, s, m);
            p += 3 * x;
        }
#endif
        for (; x < bgr.cols; ++x, p += 3) {
            const std::uint8_t f = lut[((p[0] >> shift) << (2 * kLutBits)) | ((p[1] >> shift) << kLutBits) | (p[2] >> shift)];
            o[x] = (f & 1) ? 255 : 0;
            s[x] = (f & 2) ? 255 : 0;
            m[x] = (f & keep) == 1 ? 255 : 0;
        }
    }
}

void MaskBuilder::classify_lab(const cv::Mat& lab, cv::Mat& object, cv::Mat& shadow) const {
    const float thr2 = static_cast<float>(params_.auto_threshold * params_.auto_threshold);
    const float chroma2 = static_cast<float>(params_.shadow_chroma * params_.shadow_chroma);
    const bool shadows = params_.shadow_enabled;
    const float* l0 = lut_[0].data();
    const float* l1 = lut_[1].data();
    const float* l2 = lut_[2].data();
    const std::uint8_t* sl = shadow_l_.data();
    for (int y = 0; y < lab.rows; ++y) {
        const cv::Vec3b* p = lab.ptr<cv::Vec3b>(y);
        std::uint8_t* o = object.ptr<std::uint8_t>(y);
        std::uint8_t* s = shadow.ptr<std::uint8_t>(y);
        for (int x = 0; x < lab.cols; ++x) {
            const float chroma = l1[p[x][1]] + l2[p[x][2]];
            const float d2 = l0[p[x][0]] + chroma;
            s[x] = (shadows && sl[p[x][0]] && chroma < chroma2) ? 255 : 0;
            o[x] = d2 > thr2 ? 255 : 0;
        }
    }
}

namespace {

void convert(const cv::Mat& bgr, ColorSpace space, cv::Mat& dst) {
    switch (space) {
        case ColorSpace::Gray: cv::cvtColor(bgr, dst, cv::COLOR_BGR2GRAY); break;
        case ColorSpace::HSV: cv::cvtColor(bgr, dst, cv::COLOR_BGR2HSV); break;
        case ColorSpace::Lab: cv::cvtColor(bgr, dst, cv::COLOR_BGR2Lab); break;
    }
}

void in_range(const cv::Mat& src, ColorSpace space, const cv::Scalar& lo, const cv::Scalar& hi, cv::Mat& dst) {
    if (space == ColorSpace::Gray) {
        cv::inRange(src, cv::Scalar(lo[0]), cv::Scalar(hi[0]), dst);
    } else {
        cv::inRange(src, lo, hi, dst);
    }
}

}  // namespace

void MaskBuilder::build_threshold(const cv::Mat& bgr) {
    convert(bgr, params_.object_space, converted_);
    in_range(converted_, params_.object_space, params_.object_lower, params_.object_upper, object_);
    if (params_.shadow_enabled) {
        const cv::Mat* shadow_src = &converted_;
        if (params_.shadow_space != params_.object_space) {
            convert(bgr, params_.shadow_space, tmp_u8_);
            shadow_src = &tmp_u8_;
        }
        in_range(*shadow_src, params_.shadow_space, params_.shadow_lower, params_.shadow_upper, shadow_);
    } else {
        shadow_.create(bgr.size(), CV_8UC1);
        shadow_.setTo(0);
    }
}

namespace {

// The two loops of median_blur3 as vectors, 32 bytes at a time with AVX2
// (checked at run time), else 16 with SSE2 (x86-64's baseline); the scalar
// code does the rest of a row.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CQC_MEDIAN_AVX2 1

// Each byte's column of three (rows a, b, c) as its minimum, median and
// maximum. Returns the bytes done. Written in GCC's generic vectors (a < b ?
// a : b is vpminub here), all in one function: a helper taking or returning a
// 32-byte vector would be compiled for the baseline, with another ABI.
__attribute__((target("avx2"))) int sort_columns_avx2(const std::uint8_t* a, const std::uint8_t* b,
                                                      const std::uint8_t* c, std::uint8_t* lo, std::uint8_t* mid,
                                                      std::uint8_t* hi, int n) {
    typedef std::uint8_t Reg __attribute__((vector_size(32)));
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        Reg va, vb, vc;
        std::memcpy(&va, a + i, 32);
        std::memcpy(&vb, b + i, 32);
        std::memcpy(&vc, c + i, 32);
        const Reg mn = va < vb ? va : vb, mx = va < vb ? vb : va;
        const Reg l = mn < vc ? mn : vc, u = mx < vc ? vc : mx;
        const Reg mc = mx < vc ? mx : vc, m = mn < mc ? mc : mn;
        std::memcpy(lo + i, &l, 32);
        std::memcpy(hi + i, &u, 32);
        std::memcpy(mid + i, &m, 32);
    }
    return i;
}

// The median of each byte's 3x3 from the sorted columns at its left (-cn),
// at it and at its right (+cn). Returns the bytes done.
__attribute__((target("avx2"))) int median_of_columns_avx2(const std::uint8_t* lo, const std::uint8_t* mid,
                                                           const std::uint8_t* hi, std::uint8_t* d, int n, int cn) {
    typedef std::uint8_t Reg __attribute__((vector_size(32)));
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        Reg l0, l1, l2, u0, u1, u2, m0, m1, m2;
        std::memcpy(&l0, lo + i - cn, 32);
        std::memcpy(&l1, lo + i, 32);
        std::memcpy(&l2, lo + i + cn, 32);
        std::memcpy(&u0, hi + i - cn, 32);
        std::memcpy(&u1, hi + i, 32);
        std::memcpy(&u2, hi + i + cn, 32);
        std::memcpy(&m0, mid + i - cn, 32);
        std::memcpy(&m1, mid + i, 32);
        std::memcpy(&m2, mid + i + cn, 32);
        const Reg l01 = l0 < l1 ? l1 : l0, max_lo = l01 < l2 ? l2 : l01;
        const Reg u01 = u0 < u1 ? u0 : u1, min_hi = u01 < u2 ? u01 : u2;
        const Reg m_lo = m0 < m1 ? m0 : m1, m_hi = m0 < m1 ? m1 : m0, m_c = m_hi < m2 ? m_hi : m2;
        const Reg med_mid = m_lo < m_c ? m_c : m_lo;
        const Reg p_lo = max_lo < med_mid ? max_lo : med_mid, p_hi = max_lo < med_mid ? med_mid : max_lo;
        const Reg p_c = p_hi < min_hi ? p_hi : min_hi, med = p_lo < p_c ? p_c : p_lo;
        std::memcpy(d + i, &med, 32);
    }
    return i;
}
#endif

void sort_columns(const std::uint8_t* a, const std::uint8_t* b, const std::uint8_t* c, std::uint8_t* lo,
                  std::uint8_t* mid, std::uint8_t* hi, int n, bool avx2) {
    int i = 0;
#ifdef CQC_MEDIAN_AVX2
    if (avx2) i = sort_columns_avx2(a, b, c, lo, mid, hi, n);
#endif
    (void)avx2;
#if defined(__SSE2__)
    for (; i + 16 <= n; i += 16) {
        const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
        const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
        const __m128i vc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i));
        const __m128i mn = _mm_min_epu8(va, vb), mx = _mm_max_epu8(va, vb);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i), _mm_min_epu8(mn, vc));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i), _mm_max_epu8(mx, vc));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(mid + i), _mm_max_epu8(mn, _mm_min_epu8(mx, vc)));
    }
#endif
    for (; i < n; ++i) {
        const std::uint8_t mn = std::min(a[i], b[i]), mx = std::max(a[i], b[i]);
        lo[i] = std::min(mn, c[i]);
        hi[i] = std::max(mx, c[i]);
        mid[i] = std::max(mn, std::min(mx, c[i]));
    }
}

void median_of_columns(const std::uint8_t* lo, const std::uint8_t* mid, const std::uint8_t* hi, std::uint8_t* d,
                       int n, int cn, bool avx2) {
    int i = 0;
#ifdef CQC_MEDIAN_AVX2
    if (avx2) i = median_of_columns_avx2(lo, mid, hi, d, n, cn);
#endif
    (void)avx2;
#if defined(__SSE2__)
    auto at = [](const std::uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    for (; i + 16 <= n; i += 16) {
        const __m128i max_lo = _mm_max_epu8(_mm_max_epu8(at(lo + i - cn), at(lo + i)), at(lo + i + cn));
        const __m128i min_hi = _mm_min_epu8(_mm_min_epu8(at(hi + i - cn), at(hi + i)), at(hi + i + cn));
        const __m128i m0 = at(mid + i - cn), m1 = at(mid + i), m2 = at(mid + i + cn);
        const __m128i med_mid = _mm_max_epu8(_mm_min_epu8(m0, m1), _mm_min_epu8(_mm_max_epu8(m0, m1), m2));
        const __m128i med = _mm_max_epu8(_mm_min_epu8(max_lo, med_mid),
                                         _mm_min_epu8(_mm_max_epu8(max_lo, med_mid), min_hi));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), med);
    }
#endif
    for (; i < n; ++i) {
        const std::uint8_t max_lo = std::max(std::max(lo[i - cn], lo[i]), lo[i + cn]);
        const std::uint8_t min_hi = std::min(std::min(hi[i - cn], hi[i]), hi[i + cn]);
        const std::uint8_t m0 = mid[i - cn], m1 = mid[i], m2 = mid[i + cn];
        const std::uint8_t med_mid = std::max(std::min(m0, m1), std::min(std::max(m0, m1), m2));
        d[i] = std::max(std::min(max_lo, med_mid), std::min(std::max(max_lo, med_mid), min_hi));
    }
}

}  // namespace

// Column sorts first: each pixel's column of three (the rows above, at and
// below it) as its minimum, median and maximum; then the median of the nine
// is the median of the largest minimum, the median median and the smallest
// maximum of its three columns. 18 minima and maxima a byte against the 38
// of the 19-exchange network cv::medianBlur runs, in SSE2 or AVX2 vectors.
// The median of nine is unique: the same bytes as OpenCV's, whose 3x3 border
// is BORDER_REPLICATE (the edge rows and pixels stand in for those past them).
void median_blur3(const cv::Mat& src, cv::Mat& dst, std::vector<std::uint8_t>& scratch) {
    CV_Assert(src.depth() == CV_8U && src.channels() <= 4 && src.data != dst.data);
    const int h = src.rows, cn = src.channels(), n = src.cols * cn;
    dst.create(src.size(), src.type());
    if (src.empty()) return;
    const std::size_t len = static_cast<std::size_t>(n + 2 * cn);
    if (scratch.size() < 3 * len) scratch.resize(3 * len);
    std::uint8_t* lo = scratch.data() + cn;  // one pixel of border on either side
    std::uint8_t* mid = lo + len;
    std::uint8_t* hi = mid + len;
#ifdef CQC_MEDIAN_AVX2
    static const bool avx2 = __builtin_cpu_supports("avx2");
#else
    const bool avx2 = false;
#endif
    for (int y = 0; y < h; ++y) {
        sort_columns(src.ptr<std::uint8_t>(std::max(y - 1, 0)), src.ptr<std::uint8_t>(y),
                     src.ptr<std::uint8_t>(std::min(y + 1, h - 1)), lo, mid, hi, n, avx2);
        for (int k = 0; k < cn; ++k) {
            lo[-cn + k] = lo[k], lo[n + k] = lo[n - cn + k];
            mid[-cn + k] = mid[k], mid[n + k] = mid[n - cn + k];
            hi[-cn + k] = hi[k], hi[n + k] = hi[n - cn + k];
        }
        median_of_columns(lo, mid, hi, dst.ptr<std::uint8_t>(y), n, cn, avx2);
    }
}

void MaskBuilder::build(const cv::Mat& bgr, cv::Mat& mask) {
    if (bgr.empty() || bgr.type() != CV_8UC3) {
        throw InputError("mask input must be a non-empty 8-bit BGR image (CV_8UC3), got type " +
                         std::to_string(bgr.type()) + " of size " + std::to_string(bgr.cols) + "x" +
                         std::to_string(bgr.rows));
    }
    const cv::Mat* src = &bgr;
    if (params_.blur > 1) {
        if (params_.blur == 3) median_blur3(bgr, blurred_, median_scratch_);
        else cv::medianBlur(bgr, blurred_, params_.blur);
        src = &blurred_;
    }

    // Result = object & ~shadow & ~edges, then morphology. The table path of
    // auto mode writes object & ~shadow itself.
    const bool combined = params_.mode == MaskMode::Auto ? build_auto(*src, mask) : (build_threshold(*src), false);
    if (!combined) {
        object_.copyTo(mask);
        // 0/255 masks: subtracting clears the shadow pixels (setTo with a mask allocates every call).
        if (params_.shadow_enabled) cv::subtract(mask, shadow_, mask);
    }

    if (params_.edges_enabled) {
        // The gray image of the blurred frame: threshold mode in Gray already has it.
        const cv::Mat* gray = &converted_;
        if (params_.mode != MaskMode::Threshold || params_.object_space != ColorSpace::Gray) {
            cv::cvtColor(*src, gray_, cv::COLOR_BGR2GRAY);
            gray = &gray_;
        }
        if (params_.edge_dilate > 0) {
            cv::Canny(*gray, tmp_u8_, params_.canny_low, params_.canny_high);
            edge_morphology_.dilate(tmp_u8_, edges_, params_.edge_dilate);
        } else {
            cv::Canny(*gray, edges_, params_.canny_low, params_.canny_high);
        }
        cv::subtract(mask, edges_, mask);
    } else {
        if (edges_.size() != bgr.size() || edges_.type() != CV_8UC1) edges_ = cv::Mat::zeros(bgr.size(), CV_8UC1);
    }

    // Open, erode, dilate, close in one go: the 0/255 mask is packed to bits once.
    morphology_.apply(mask, mask, params_.open_iterations, params_.erode_iterations, params_.dilate_iterations,
                      params_.close_iterations);
    // Background is what a flood from outside the frame reaches; every other
    // zero pixel is a hole inside an object.
    if (params_.fill_holes) hole_filler_.fill(mask);
}

}  // namespace cqc
