#include "conveyor_qc/mask.hpp"

#include "conveyor_qc/simd.hpp"

#include "params_check.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

namespace cqc {

// ---------------------------------------------------------------- strings

using detail::format_number;

const char* to_string(MaskMode m) {
    switch (m) {
        case MaskMode::Auto:
            return "auto";
        case MaskMode::Threshold:
            return "threshold";
    }
    return "auto";
}

MaskMode mask_mode_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (MaskMode m : kMaskModes) {
        if (v == to_string(m)) return m;
    }
    throw ParamError("mask.mode must be one of " + enum_names(kMaskModes) + ", got '" + s + "'");
}

const char* to_string(ColorSpace c) {
    switch (c) {
        case ColorSpace::Gray:
            return "gray";
        case ColorSpace::HSV:
            return "hsv";
        case ColorSpace::Lab:
            return "lab";
    }
    return "gray";
}

ColorSpace color_space_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (ColorSpace c : kColorSpaces) {
        if (v == to_string(c)) return c;
    }
    throw ParamError("colour space must be one of " + enum_names(kColorSpaces) + ", got '" + s + "'");
}

// ---------------------------------------------------------------- validation

namespace {

std::string num(double v) {
    return format_number(v);
}

[[noreturn]] void fail(const std::string& field, const std::string& range, double got) {
    detail::param_error("mask", field, range, got);
}

void check_closed(const std::string& field, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) fail(field, "in [" + num(lo) + ", " + num(hi) + "]", v);
}

double channel_max(ColorSpace space, int c) {
    return (space == ColorSpace::HSV && c == 0) ? 180.0 : 255.0;
}

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

    for (const ParamRange& r : ranges()) r.check("mask");
}

// ---------------------------------------------------------------- builder

MaskBuilder::MaskBuilder(const MaskParams& params)
    : params_((params.validate(), params)),
      morphology_(cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(params.kernel_size, params.kernel_size))),
      edge_morphology_(cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3))),
      belt_(params) {
    reset();
}

bool MaskBuilder::ready() const {
    return params_.mode == MaskMode::Threshold || belt_.frames_learnt() >= params_.auto_learn_frames;
}

void MaskBuilder::reset() {
    frames_seen_ = 0;
    belt_.reset();
}

// Learning frames (one in auto_learn_stride, auto_learn_frames of them) teach
// the belt model first; every frame, from the first, is classified with what
// it knows so far.
void MaskBuilder::build_auto(const cv::Mat& bgr, cv::Mat& mask) {
    if (belt_.frames_learnt() > 0 && bgr.size() != belt_.frame_size()) reset();
    if (belt_.frames_learnt() < params_.auto_learn_frames && frames_seen_ % params_.auto_learn_stride == 0)
        belt_.learn(bgr);
    ++frames_seen_;
    belt_.classify(bgr, object_, shadow_, mask);
}

namespace {

void convert(const cv::Mat& bgr, ColorSpace space, cv::Mat& dst) {
    switch (space) {
        case ColorSpace::Gray:
            cv::cvtColor(bgr, dst, cv::COLOR_BGR2GRAY);
            break;
        case ColorSpace::HSV:
            cv::cvtColor(bgr, dst, cv::COLOR_BGR2HSV);
            break;
        case ColorSpace::Lab:
            cv::cvtColor(bgr, dst, cv::COLOR_BGR2Lab);
            break;
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

// The two loops of median_blur3 as vectors, 32 bytes at a time from
// SimdLevel::AVX2, else 16 from SimdLevel::SSE2 (x86-64's baseline); the
// scalar code does the rest of a row, or all of it at SimdLevel::Scalar.
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
                  std::uint8_t* mid, std::uint8_t* hi, int n, SimdLevel level) {
    int i = 0;
    (void)level;  // builds with no vector code
#ifdef CQC_MEDIAN_AVX2
    if (level >= SimdLevel::AVX2) i = sort_columns_avx2(a, b, c, lo, mid, hi, n);
#endif
#if defined(__SSE2__)
    if (level >= SimdLevel::SSE2) {
        for (; i + 16 <= n; i += 16) {
            const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
            const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
            const __m128i vc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i));
            const __m128i mn = _mm_min_epu8(va, vb), mx = _mm_max_epu8(va, vb);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i), _mm_min_epu8(mn, vc));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i), _mm_max_epu8(mx, vc));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(mid + i), _mm_max_epu8(mn, _mm_min_epu8(mx, vc)));
        }
    }
#endif
    for (; i < n; ++i) {
        const std::uint8_t mn = std::min(a[i], b[i]), mx = std::max(a[i], b[i]);
        lo[i] = std::min(mn, c[i]);
        hi[i] = std::max(mx, c[i]);
        mid[i] = std::max(mn, std::min(mx, c[i]));
    }
}

void median_of_columns(const std::uint8_t* lo, const std::uint8_t* mid, const std::uint8_t* hi, std::uint8_t* d, int n,
                       int cn, SimdLevel level) {
    int i = 0;
    (void)level;  // builds with no vector code
#ifdef CQC_MEDIAN_AVX2
    if (level >= SimdLevel::AVX2) i = median_of_columns_avx2(lo, mid, hi, d, n, cn);
#endif
#if defined(__SSE2__)
    auto at = [](const std::uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    if (level >= SimdLevel::SSE2) {
        for (; i + 16 <= n; i += 16) {
            const __m128i max_lo = _mm_max_epu8(_mm_max_epu8(at(lo + i - cn), at(lo + i)), at(lo + i + cn));
            const __m128i min_hi = _mm_min_epu8(_mm_min_epu8(at(hi + i - cn), at(hi + i)), at(hi + i + cn));
            const __m128i m0 = at(mid + i - cn), m1 = at(mid + i), m2 = at(mid + i + cn);
            const __m128i med_mid = _mm_max_epu8(_mm_min_epu8(m0, m1), _mm_min_epu8(_mm_max_epu8(m0, m1), m2));
            const __m128i med =
                _mm_max_epu8(_mm_min_epu8(max_lo, med_mid), _mm_min_epu8(_mm_max_epu8(max_lo, med_mid), min_hi));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), med);
        }
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
    const SimdLevel level = simd_level();
    for (int y = 0; y < h; ++y) {
        sort_columns(src.ptr<std::uint8_t>(std::max(y - 1, 0)), src.ptr<std::uint8_t>(y),
                     src.ptr<std::uint8_t>(std::min(y + 1, h - 1)), lo, mid, hi, n, level);
        for (int k = 0; k < cn; ++k) {
            lo[-cn + k] = lo[k], lo[n + k] = lo[n - cn + k];
            mid[-cn + k] = mid[k], mid[n + k] = mid[n - cn + k];
            hi[-cn + k] = hi[k], hi[n + k] = hi[n - cn + k];
        }
        median_of_columns(lo, mid, hi, dst.ptr<std::uint8_t>(y), n, cn, level);
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
    if (params_.mode == MaskMode::Auto) {
        build_auto(*src, mask);
    } else {
        build_threshold(*src);
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
    // With a learnt belt, a hole over HoleFiller::kTextureHoleShare of the
    // products it learnt from that is not convex is belt that touching
    // products enclose in a ring: filled, it would join the whole ring into
    // one blob with no neck to cut at. (A label or a window in one product is
    // convex, and filled.)
    if (params_.fill_holes) {
        const float learnt = params_.mode == MaskMode::Auto ? belt_.stats().typical_area : 0.f;
        const long long max_hole = learnt > 0.f ? static_cast<long long>(HoleFiller::kTextureHoleShare * learnt)
                                                : std::numeric_limits<long long>::max();
        hole_filler_.fill(mask, max_hole);
    }
}

}  // namespace cqc
