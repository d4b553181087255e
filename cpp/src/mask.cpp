#include "conveyor_qc/mask.hpp"

#include "params_check.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

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

void MaskBuilder::build_auto(const cv::Mat& bgr) {
    object_.create(bgr.size(), CV_8UC1);
    shadow_.create(bgr.size(), CV_8UC1);
    const int stride = params_.auto_learn_stride;
    const bool learning = frames_learnt_ < params_.auto_learn_frames;
    if (!learning) {
        if (!bgr_lut_ready_) build_bgr_lut();
        ++frames_seen_;
        classify_bgr(bgr);
        return;
    }
    cv::cvtColor(bgr, lab_, cv::COLOR_BGR2Lab);
    if (frames_seen_ % stride == 0) learn(lab_);
    ++frames_seen_;
    if (frames_learnt_ == 0) {  // cannot happen after the first frame, kept for safety
        object_.setTo(0);
        shadow_.setTo(0);
        return;
    }
    classify_lab(lab_, object_, shadow_);
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

void MaskBuilder::classify_bgr(const cv::Mat& bgr) {
    constexpr int shift = 8 - kLutBits;
    const std::uint8_t* lut = bgr_lut_.data();
    for (int y = 0; y < bgr.rows; ++y) {
        const std::uint8_t* p = bgr.ptr<std::uint8_t>(y);
        std::uint8_t* o = object_.ptr<std::uint8_t>(y);
        std::uint8_t* s = shadow_.ptr<std::uint8_t>(y);
        for (int x = 0; x < bgr.cols; ++x, p += 3) {
            const std::uint8_t f = lut[((p[0] >> shift) << (2 * kLutBits)) | ((p[1] >> shift) << kLutBits) | (p[2] >> shift)];
            o[x] = (f & 1) ? 255 : 0;
            s[x] = (f & 2) ? 255 : 0;
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

void MaskBuilder::build(const cv::Mat& bgr, cv::Mat& mask) {
    if (bgr.empty() || bgr.type() != CV_8UC3) {
        throw InputError("mask input must be a non-empty 8-bit BGR image (CV_8UC3), got type " +
                         std::to_string(bgr.type()) + " of size " + std::to_string(bgr.cols) + "x" +
                         std::to_string(bgr.rows));
    }
    const cv::Mat* src = &bgr;
    if (params_.blur > 1) {
        cv::medianBlur(bgr, blurred_, params_.blur);
        src = &blurred_;
    }

    if (params_.mode == MaskMode::Auto) {
        build_auto(*src);
    } else {
        build_threshold(*src);
    }

    // Result = object & ~shadow & ~edges, then morphology.
    object_.copyTo(mask);
    // 0/255 masks: subtracting clears the shadow pixels (setTo with a mask allocates every call).
    if (params_.shadow_enabled) cv::subtract(mask, shadow_, mask);

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

    if (params_.open_iterations > 0) morphology_.open(mask, mask, params_.open_iterations);
    if (params_.erode_iterations > 0) morphology_.erode(mask, mask, params_.erode_iterations);
    if (params_.dilate_iterations > 0) morphology_.dilate(mask, mask, params_.dilate_iterations);
    if (params_.close_iterations > 0) morphology_.close(mask, mask, params_.close_iterations);
    // Background is what a flood from outside the frame reaches; every other
    // zero pixel is a hole inside an object.
    if (params_.fill_holes) hole_filler_.fill(mask);
}

}  // namespace cqc
