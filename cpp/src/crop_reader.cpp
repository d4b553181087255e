#include "conveyor_qc/crop_reader.hpp"

#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace cqc {

const std::array<const char*, kCropFigureCount> kCropFigureNames = {"area_share",
                                                                    "solidity",
                                                                    "circularity",
                                                                    "hole_share",
                                                                    "defect_max",
                                                                    "defect_sum",
                                                                    "defect_count",
                                                                    "pieces",
                                                                    "crack_share",
                                                                    "crack_len",
                                                                    "crack_count",
                                                                    "hull_gap",
                                                                    "hole_max",
                                                                    "hole_elong",
                                                                    "hole_count",
                                                                    "axis_ratio",
                                                                    "radius_cv",
                                                                    "radius_min",
                                                                    "radius_max",
                                                                    "L_mean",
                                                                    "a_mean",
                                                                    "b_mean",
                                                                    "L_std",
                                                                    "a_std",
                                                                    "b_std",
                                                                    "grad_mean",
                                                                    "grad_std",
                                                                    "grad_p90",
                                                                    "edge_density",
                                                                    "dark_share",
                                                                    "dark_share_strong",
                                                                    "lbp_0",
                                                                    "lbp_1",
                                                                    "lbp_2",
                                                                    "lbp_3",
                                                                    "lbp_4",
                                                                    "lbp_5",
                                                                    "lbp_6",
                                                                    "lbp_7"};

namespace {

enum Figure {
    kAreaShare,
    kSolidity,
    kCircularity,
    kHoleShare,
    kDefectMax,
    kDefectSum,
    kDefectCount,
    kPieces,
    kCrackShare,
    kCrackLen,
    kCrackCount,
    kHullGap,
    kHoleMax,
    kHoleElong,
    kHoleCount,
    kAxisRatio,
    kRadiusCv,
    kRadiusMin,
    kRadiusMax,
    kLMean,  // L, a, b means, then their spreads
    kLStd = kLMean + 3,
    kGradMean = kLStd + 3,
    kGradStd,
    kGradP90,
    kEdgeDensity,
    kDarkShare,
    kDarkShareStrong,
    kLbp0,
};
static_assert(kLbp0 + 8 == kCropFigureCount, "the figures' names and slots must agree");

// An object (or outline) smaller than this many pixels is none.
constexpr int kMinObjectPixels = 20;
// Background kept around the object when only its neighbourhood is measured:
// the 15 px closing of the outline of several pieces needs 15 px (the
// erosions, Sobel and the local binary patterns need 1-3 px).
constexpr int kMargin = 16;
// A channel above this is not letterbox padding.
constexpr int kPaddingLevel = 8;
// Lightness varies with shadows and lighting more than hue does.
constexpr float kLightnessWeight = 0.6f;
// The outline takes every pixel this many times further from the background
// than the border's 99th percentile of distance.
constexpr double kBorderNoise = 1.5;
// A component this share of the chosen one's area that does not touch the
// crop's border is a piece of the object (a broken half).
constexpr double kPieceShare = 0.15;
// A contour of this share of the object's area counts as a piece.
constexpr double kCountedPiece = 0.02;
// A convexity defect this deep (relative to the object's size) is counted.
constexpr double kCountedDefect = 0.05;
// A hole of this share of the object's area is counted.
constexpr double kCountedHole = 0.002;
// A crack pixel is as close to the background as this share of the object's median distance.
constexpr float kCrackDistance = 0.4f;
// A crack of this length (relative to the object's size) is counted.
constexpr double kCountedCrack = 0.1;
// Dark pixels: this many (and, strong, twice as many) interquartile spreads
// of lightness below the object's median; the spread at least kMinSpread.
constexpr double kDark = 2.0, kMinSpread = 4.0;
// Canny's hysteresis thresholds, and a neighbour counts in the local binary
// pattern when brighter than the centre by more than kLbpMargin.
constexpr double kCannyLow = 60, kCannyHigh = 150;
constexpr int kLbpMargin = 2;

cv::Mat ellipse_kernel(int size) {
    return cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(size, size));
}

// numpy.percentile (linear interpolation) of the values counted in a 256-bin
// histogram, q in [0, 100]: for q a multiple of 25 every step is exact.
double hist_quantile(const std::array<int, 256>& hist, double q) {
    std::array<long long, 256> cum{};
    long long run = 0;
    for (int v = 0; v < 256; ++v) cum[v] = run += hist[v];
    const long long n = run;
    if (n == 0) return 0.0;
    const double pos = static_cast<double>(n - 1) * (q / 100.0);
    const long long k = static_cast<long long>(std::floor(pos));
    const double g = pos - static_cast<double>(k);
    // the k-th smallest value (0-based): the first level whose cumulative count exceeds k
    auto kth = [&](long long i) {
        return static_cast<double>(std::upper_bound(cum.begin(), cum.end(), i) - cum.begin());
    };
    const double a = kth(k), b = kth(std::min(k + 1, n - 1));
    return a + (b - a) * g;
}

// numpy.percentile (linear interpolation) of `v`, q in [0, 100]; reorders v.
double quantile(std::vector<float>& v, double q) {
    if (v.empty()) return 0.0;
    const double pos = static_cast<double>(v.size() - 1) * (q / 100.0);
    const std::size_t k = static_cast<std::size_t>(std::floor(pos));
    const double g = pos - static_cast<double>(k);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    const double a = v[k];
    if (g == 0.0 || k + 1 >= v.size()) return a;
    const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(k) + 1, v.end());
    return a + (b - a) * g;
}

// The crop without its black letterbox padding (rows and columns that are all
// near black), and where that content starts.
cv::Mat content_of(const cv::Mat& bgr, cv::Point& at) {
    const int h = bgr.rows, w = bgr.cols;
    std::vector<uint8_t> col_used(static_cast<std::size_t>(w), 0);
    int top = -1, bottom = -1, rows_used = 0;
    for (int y = 0; y < h; ++y) {
        const uint8_t* p = bgr.ptr<uint8_t>(y);
        bool row_used = false;
        for (int x = 0; x < w; ++x) {
            if (p[3 * x] > kPaddingLevel || p[3 * x + 1] > kPaddingLevel || p[3 * x + 2] > kPaddingLevel) {
                col_used[static_cast<std::size_t>(x)] = 1;
                row_used = true;
            }
        }
        if (row_used) {
            ++rows_used;
            if (top < 0) top = y;
            bottom = y;
        }
    }
    int left = -1, right = -1, cols_used = 0;
    for (int x = 0; x < w; ++x) {
        if (col_used[static_cast<std::size_t>(x)]) {
            ++cols_used;
            if (left < 0) left = x;
            right = x;
        }
    }
    at = cv::Point(0, 0);
    if (rows_used < 8 || cols_used < 8) return bgr;  // too little to be a crop's content
    at = cv::Point(left, top);
    return bgr(cv::Rect(left, top, right - left + 1, bottom - top + 1));
}

// The four border strips of `m` (b pixels wide; the corners twice), as one
// column of m's type.
cv::Mat border_of(const cv::Mat& m, int b) {
    const int h = m.rows, w = m.cols;
    cv::Mat strips[4] = {m.rowRange(0, b).clone(), m.rowRange(h - b, h).clone(), m.colRange(0, b).clone(),
                         m.colRange(w - b, w).clone()};
    cv::Mat out;
    std::vector<cv::Mat> cols;
    for (cv::Mat& s : strips) cols.push_back(s.reshape(m.channels(), static_cast<int>(s.total())));
    cv::vconcat(cols, out);
    return out;
}

// Each pixel's Lab distance to the background, and Otsu's split of it.
struct Distances {
    cv::Mat raw;   // CV_32F, unblurred
    cv::Mat dist;  // CV_32F, blurred
    cv::Mat d8;    // dist scaled to 0-255
    double scale;  // d8 per unit of dist
    int border;    // the border's width, pixels
    double level;  // Otsu's threshold on d8
    cv::Mat otsu;  // d8 above it, opened (3 px): specks of noise gone
};

Distances distances_of(const cv::Mat& lab) {
    Distances d;
    const int h = lab.rows, w = lab.cols;
    d.border = std::max(2, std::min(h, w) / 40);
    const cv::Mat border = border_of(lab, d.border);
    float bg[3];
    for (int c = 0; c < 3; ++c) {
        std::array<int, 256> hist{};
        for (int i = 0; i < border.rows; ++i) ++hist[border.ptr<uint8_t>(i)[c]];
        bg[c] = static_cast<float>(hist_quantile(hist, 50));
    }
    // each channel's squared difference to the background for every level, looked up per pixel
    float sq[3][256];
    for (int c = 0; c < 3; ++c) {
        for (int v = 0; v < 256; ++v) {
            float diff = static_cast<float>(v) - bg[c];
            if (c == 0) diff *= kLightnessWeight;
            sq[c][v] = diff * diff;
        }
    }
    d.raw.create(h, w, CV_32F);
    for (int y = 0; y < h; ++y) {
        const uint8_t* p = lab.ptr<uint8_t>(y);
        float* o = d.raw.ptr<float>(y);
        for (int x = 0; x < w; ++x) o[x] = std::sqrt(sq[0][p[3 * x]] + sq[1][p[3 * x + 1]] + sq[2][p[3 * x + 2]]);
    }
    cv::GaussianBlur(d.raw, d.dist, cv::Size(5, 5), 0);
    double maxv = 0;
    cv::minMaxLoc(d.dist, nullptr, &maxv);
    d.scale = 255.0 / std::max(maxv, 1e-6);
    // scaled and truncated (not rounded): Otsu's level and the noise's threshold are read on it
    const float scale = static_cast<float>(d.scale);
    d.d8.create(h, w, CV_8U);
    for (int y = 0; y < h; ++y) {
        const float* p = d.dist.ptr<float>(y);
        uint8_t* o = d.d8.ptr<uint8_t>(y);
        for (int x = 0; x < w; ++x) o[x] = static_cast<uint8_t>(std::min(std::max(p[x] * scale, 0.f), 255.f));
    }
    cv::Mat otsu;
    d.level = cv::threshold(d.d8, otsu, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
    cv::morphologyEx(otsu, d.otsu, cv::MORPH_OPEN, ellipse_kernel(3));
    return d;
}

// The crop's object among a mask's components: the one nearest the middle,
// weighted by its size, and with it every large piece that does not touch the border.
cv::Mat pick_object(const cv::Mat& mask) {
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
    if (n <= 1) return mask.clone();
    const int h = mask.rows, w = mask.cols;
    int best = 1;
    double best_weight = -1;
    for (int i = 1; i < n; ++i) {
        const double area = stats.at<int>(i, cv::CC_STAT_AREA);
        const double d =
            std::hypot(centroids.at<double>(i, 0) - w / 2.0, centroids.at<double>(i, 1) - h / 2.0) / std::max(h, w);
        const double weight = area * std::exp(-4 * d * d);
        if (weight > best_weight) best_weight = weight, best = i;
    }
    const double best_area = stats.at<int>(best, cv::CC_STAT_AREA);
    std::vector<uint8_t> keep(static_cast<std::size_t>(n), 0);
    for (int i = 1; i < n; ++i) {
        const int x = stats.at<int>(i, cv::CC_STAT_LEFT), y = stats.at<int>(i, cv::CC_STAT_TOP);
        const int bw = stats.at<int>(i, cv::CC_STAT_WIDTH), bh = stats.at<int>(i, cv::CC_STAT_HEIGHT);
        const bool touches = x <= 0 || y <= 0 || x + bw >= w || y + bh >= h;
        if (stats.at<int>(i, cv::CC_STAT_AREA) >= kPieceShare * best_area && !touches) keep[i] = 255;
    }
    keep[static_cast<std::size_t>(best)] = 255;
    cv::Mat out(h, w, CV_8U);
    for (int y = 0; y < h; ++y) {
        const int* l = labels.ptr<int>(y);
        uint8_t* o = out.ptr<uint8_t>(y);
        for (int x = 0; x < w; ++x) o[x] = keep[static_cast<std::size_t>(l[x])];
    }
    return out;
}

// The mask with its holes filled.
cv::Mat filled_of(const cv::Mat& mask) {
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(mask, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    cv::Mat out = cv::Mat::zeros(mask.size(), CV_8U);
    if (!contours.empty()) cv::drawContours(out, contours, -1, cv::Scalar(255), cv::FILLED);
    return out;
}

// The whole outline, holes filled: Otsu's split, and every pixel further
// from the background than the border's own noise.
cv::Mat outline_of(const Distances& d) {
    std::vector<float> ring(border_of(d.dist, d.border));
    const double noise = kBorderNoise * quantile(ring, 99) * d.scale;
    cv::Mat wide;
    cv::threshold(d.d8, wide, std::min(d.level, noise), 255, cv::THRESH_BINARY);
    cv::morphologyEx(wide, wide, cv::MORPH_OPEN, ellipse_kernel(5));
    cv::bitwise_or(wide, d.otsu, wide);
    return filled_of(pick_object(wide));
}

// One crop's object, as every group of figures sees it: its neighbourhood
// (the box of its mask with a margin, where each operation gives what it
// gives on the whole region).
struct CropObject {
    cv::Mat region;  // the whole region (BGR), for Canny
    cv::Mat lab;     // the neighbourhood in Lab
    cv::Mat mask;    // the object's pixels (holes open)
    cv::Mat dist;    // each pixel's Lab distance to the background
    cv::Mat filled;  // the object with its holes filled
    cv::Rect near;   // the neighbourhood in region
    double crop_area = 0, area = 0, mask_area = 0;
    std::vector<cv::Point> outline;  // one contour around all its pieces (region coordinates)
    int pieces = 0;
    double size() const { return std::sqrt(area); }
};

bool find_object(const cv::Mat& region, const cv::Mat& lab, const Distances& d, const cv::Mat& whole, CropObject& o) {
    const cv::Rect box = cv::boundingRect(whole);
    if (box.area() == 0) return false;
    const cv::Rect near = (box + cv::Size(2 * kMargin, 2 * kMargin) - cv::Point(kMargin, kMargin)) &
                          cv::Rect(0, 0, whole.cols, whole.rows);
    o.mask = whole(near).clone();
    o.filled = filled_of(o.mask);
    o.area = cv::countNonZero(o.filled);
    if (o.area < kMinObjectPixels) return false;
    o.region = region;
    o.lab = lab(near);
    o.dist = d.raw(near);
    o.near = near;
    o.crop_area = static_cast<double>(region.rows) * region.cols;
    o.mask_area = cv::countNonZero(o.mask);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(o.filled, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE, near.tl());
    o.pieces = static_cast<int>(std::count_if(
        contours.begin(), contours.end(), [&](const auto& c) { return cv::contourArea(c) >= kCountedPiece * o.area; }));
    if (contours.size() == 1) {
        o.outline = contours[0];
        return true;
    }
    std::vector<cv::Point> all;
    for (const auto& c : contours) all.insert(all.end(), c.begin(), c.end());
    if (all.size() < 5) {
        cv::convexHull(all, o.outline);
        return true;
    }
    // One contour around several pieces: close the gaps between them (the gap
    // stays as a deep notch, a convexity defect), then the outer contour.
    cv::Mat closed;
    cv::morphologyEx(o.filled, closed, cv::MORPH_CLOSE, ellipse_kernel(15));
    cv::findContours(closed, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE, near.tl());
    o.outline = *std::max_element(contours.begin(), contours.end(),
                                  [](const auto& a, const auto& b) { return cv::contourArea(a) < cv::contourArea(b); });
    return true;
}

using Figures = std::array<double, kCropFigureCount>;

// Size, solidity and circularity (the core's Detector), holes' share, pieces.
void shape_figures(const CropObject& o, Figures& f) {
    DetectParams p;
    p.min_area = 1.0;
    p.split_solidity = 0.0;  // never cut the crop's object in parts
    Detector detector(p);    // a fresh one: what it learns of typical sizes must not carry over crops
    std::vector<Detection> found;
    detector.detect(o.filled, cv::Rect(), 1.0, found);
    const auto largest = std::max_element(found.begin(), found.end(),
                                          [](const Detection& a, const Detection& b) { return a.area < b.area; });
    f[kAreaShare] = o.area / o.crop_area;
    f[kSolidity] = largest != found.end() ? largest->solidity : 1.0;
    f[kCircularity] = largest != found.end() ? largest->circularity : 1.0;
    f[kHoleShare] = 1.0 - o.mask_area / o.area;
    f[kPieces] = o.pieces;
}

// Convexity defects (a bite, a gap between halves), the hull's gap, the
// ellipse's axis ratio, the spread of the radius around the centre.
void outline_figures(const CropObject& o, Figures& f) {
    const std::vector<cv::Point>& cnt = o.outline;
    double dmax = 0, dsum = 0;
    int dcount = 0;
    if (cnt.size() >= 4) {
        std::vector<int> hull;
        cv::convexHull(cnt, hull, false, false);
        std::vector<cv::Vec4i> defects;
        if (hull.size() > 3) {
            try {
                cv::convexityDefects(cnt, hull, defects);
            } catch (const cv::Exception&) {  // a self-intersecting outline
                defects.clear();
            }
        }
        for (const cv::Vec4i& d : defects) {
            const double depth = d[3] / 256.0 / o.size();
            dmax = std::max(dmax, depth);
            dsum += depth;
            dcount += depth > kCountedDefect;
        }
    }
    std::vector<cv::Point> hull_points;
    cv::convexHull(cnt, hull_points);
    const double hull_area = std::max(cv::contourArea(hull_points), 1.0);
    f[kDefectMax] = dmax;
    f[kDefectSum] = dsum;
    f[kDefectCount] = dcount;
    f[kHullGap] = 1.0 - o.mask_area / hull_area;
    f[kAxisRatio] = 1.0;
    if (cnt.size() >= 5) {
        const cv::RotatedRect e = cv::fitEllipse(cnt);
        const double a = e.size.width, b = e.size.height;
        f[kAxisRatio] = std::min(a, b) / std::max({a, b, 1e-6});
    }
    const cv::Moments m = cv::moments(o.filled, true);
    const double cx = m.m10 / m.m00 + o.near.x, cy = m.m01 / m.m00 + o.near.y;
    std::vector<double> r(cnt.size());
    for (std::size_t i = 0; i < cnt.size(); ++i) r[i] = std::hypot(cnt[i].x - cx, cnt[i].y - cy);
    const double mean = std::accumulate(r.begin(), r.end(), 0.0) / static_cast<double>(r.size());
    double var = 0;
    for (double v : r) var += (v - mean) * (v - mean);
    const double rm = std::max(mean, 1e-6);
    f[kRadiusCv] = std::sqrt(var / static_cast<double>(r.size())) / rm;
    f[kRadiusMin] = *std::min_element(r.begin(), r.end()) / rm;
    f[kRadiusMax] = *std::max_element(r.begin(), r.end()) / rm;
}

// Holes: chips are small and round, cracks and gaps large or long.
void hole_figures(const CropObject& o, Figures& f) {
    cv::Mat holes;
    cv::bitwise_and(o.filled, ~o.mask, holes);
    double hmax = 0, helong = 0;
    int hcount = 0;
    if (cv::countNonZero(holes)) {
        cv::Mat labels, stats, centroids;
        const int n = cv::connectedComponentsWithStats(holes, labels, stats, centroids, 8, CV_32S);
        for (int j = 1; j < n; ++j) {
            const double a = stats.at<int>(j, cv::CC_STAT_AREA);
            hcount += a / o.area > kCountedHole;
            if (a > hmax) {
                hmax = a;
                const double side = std::max(stats.at<int>(j, cv::CC_STAT_WIDTH), stats.at<int>(j, cv::CC_STAT_HEIGHT));
                helong = side * side / std::max(a, 1.0);
            }
        }
    }
    f[kHoleMax] = hmax / o.area;
    f[kHoleElong] = helong;
    f[kHoleCount] = hcount;
}

// Cracks and gaps: pixels inside the outline with the background's own colour
// (the belt or tray seen through the object; chocolate chips and creases are
// dark but not belt-coloured).
void crack_figures(const CropObject& o, Figures& f) {
    cv::Mat inner;
    cv::erode(o.filled, inner, ellipse_kernel(7));
    std::vector<float> object_dist;
    object_dist.reserve(static_cast<std::size_t>(o.mask_area));
    for (int y = 0; y < o.mask.rows; ++y) {
        const uint8_t* m = o.mask.ptr<uint8_t>(y);
        const float* d = o.dist.ptr<float>(y);
        for (int x = 0; x < o.mask.cols; ++x)
            if (m[x]) object_dist.push_back(d[x]);
    }
    const double ref = object_dist.empty() ? 1.0 : quantile(object_dist, 50);
    const float limit = kCrackDistance * static_cast<float>(std::max(ref, 1e-6));
    cv::Mat crack = cv::Mat::zeros(inner.size(), CV_8U);
    for (int y = 0; y < inner.rows; ++y) {
        const uint8_t* in = inner.ptr<uint8_t>(y);
        const float* d = o.dist.ptr<float>(y);
        uint8_t* c = crack.ptr<uint8_t>(y);
        for (int x = 0; x < inner.cols; ++x) c[x] = in[x] && d[x] < limit ? 255 : 0;
    }
    const int crack_px = cv::countNonZero(crack);
    double longest = 0;
    int counted = 0;
    if (crack_px) {
        cv::Mat labels, stats, centroids;
        const int n = cv::connectedComponentsWithStats(crack, labels, stats, centroids, 8, CV_32S);
        for (int j = 1; j < n; ++j) {
            const double len =
                std::hypot(stats.at<int>(j, cv::CC_STAT_WIDTH), stats.at<int>(j, cv::CC_STAT_HEIGHT)) / o.size();
            longest = std::max(longest, len);
            counted += len > kCountedCrack;
        }
    }
    f[kCrackShare] = crack_px / o.area;
    f[kCrackLen] = longest;
    f[kCrackCount] = counted;
}

// Lab mean and spread inside the object, gradients, edges, dark pixels, local binary patterns.
void colour_and_texture_figures(const CropObject& o, Figures& f) {
    cv::Mat inside;
    cv::erode(o.mask, inside, ellipse_kernel(5));
    if (cv::countNonZero(inside) < 10) inside = o.mask;
    cv::Mat filled_inside;
    cv::erode(o.filled, filled_inside, ellipse_kernel(5));
    if (!cv::countNonZero(filled_inside)) filled_inside = o.filled;

    cv::Mat gray_full, edges;
    cv::cvtColor(o.region, gray_full, cv::COLOR_BGR2GRAY);
    cv::Canny(gray_full, edges, kCannyLow, kCannyHigh);  // the whole region: hysteresis follows edges anywhere
    // the neighbourhood as an image of its own (its borders reflected, not read beyond it)
    const cv::Mat gray = gray_full(o.near).clone();
    cv::Mat gx, gy;
    cv::Sobel(gray, gx, CV_32F, 1, 0, 3);
    cv::Sobel(gray, gy, CV_32F, 0, 1, 3);

    double sum[3] = {0, 0, 0}, sum2[3] = {0, 0, 0};
    std::array<int, 256> lightness{};
    std::vector<float> grad;
    grad.reserve(static_cast<std::size_t>(cv::countNonZero(inside)));
    long long n_sel = 0, n_edges = 0;
    std::array<long long, 8> lbp{};
    const int h = gray.rows, w = gray.cols;
    for (int y = 0; y < h; ++y) {
        const uint8_t* in = inside.ptr<uint8_t>(y);
        const uint8_t* lab = o.lab.ptr<uint8_t>(y);
        const float* px = gx.ptr<float>(y);
        const float* py = gy.ptr<float>(y);
        const uint8_t* e = edges.ptr<uint8_t>(y + o.near.y) + o.near.x;
        const uint8_t* up = gray.ptr<uint8_t>(std::max(y - 1, 0));
        const uint8_t* row = gray.ptr<uint8_t>(y);
        const uint8_t* down = gray.ptr<uint8_t>(std::min(y + 1, h - 1));
        const bool edge_row = y == 0 || y == h - 1;
        for (int x = 0; x < w; ++x) {
            if (!in[x]) continue;
            ++n_sel;
            for (int c = 0; c < 3; ++c) {
                const double v = lab[3 * x + c];
                sum[c] += v;
                sum2[c] += v * v;
            }
            ++lightness[lab[3 * x]];
            grad.push_back(std::sqrt(px[x] * px[x] + py[x] * py[x]));
            n_edges += e[x] != 0;
            // the rotation-invariant local binary pattern: neighbours brighter than the centre
            // by more than kLbpMargin, counted (0-7: 8 joins 7); the image's edge has none
            if (edge_row || x == 0 || x == w - 1) continue;
            const int centre = row[x] + kLbpMargin;
            const int count = (up[x - 1] > centre) + (up[x] > centre) + (up[x + 1] > centre) + (row[x - 1] > centre) +
                              (row[x + 1] > centre) + (down[x - 1] > centre) + (down[x] > centre) +
                              (down[x + 1] > centre);
            ++lbp[static_cast<std::size_t>(std::min(count, 7))];
        }
    }
    const double n = static_cast<double>(std::max<long long>(n_sel, 1));
    for (int c = 0; c < 3; ++c) {
        const double mean = sum[c] / n;
        f[kLMean + c] = mean;
        f[kLStd + c] = std::sqrt(std::max(sum2[c] / n - mean * mean, 0.0));
    }
    double gsum = 0, gsum2 = 0;
    for (float g : grad) gsum += g, gsum2 += static_cast<double>(g) * g;
    const double gmean = gsum / n;
    f[kGradMean] = gmean;
    f[kGradStd] = std::sqrt(std::max(gsum2 / n - gmean * gmean, 0.0));
    f[kGradP90] = quantile(grad, 90);
    f[kEdgeDensity] = static_cast<double>(n_edges) / n;

    // dark pixels inside the outline: cracks (belt or tray through the object), a stacked top's shadow
    const double q25 = hist_quantile(lightness, 25), median = hist_quantile(lightness, 50),
                 q75 = hist_quantile(lightness, 75);
    const double spread = std::max(q75 - q25, kMinSpread);
    long long dark = 0, strong = 0, n_filled = 0;
    for (int y = 0; y < h; ++y) {
        const uint8_t* fi = filled_inside.ptr<uint8_t>(y);
        const uint8_t* lab = o.lab.ptr<uint8_t>(y);
        for (int x = 0; x < w; ++x) {
            if (!fi[x]) continue;
            ++n_filled;
            dark += lab[3 * x] < median - kDark * spread;
            strong += lab[3 * x] < median - 2 * kDark * spread;
        }
    }
    f[kDarkShare] = static_cast<double>(dark) / static_cast<double>(std::max<long long>(n_filled, 1));
    f[kDarkShareStrong] = static_cast<double>(strong) / static_cast<double>(std::max<long long>(n_filled, 1));
    const double lbp_n = static_cast<double>(std::max<long long>(std::accumulate(lbp.begin(), lbp.end(), 0LL), 1));
    for (int j = 0; j < 8; ++j) f[kLbp0 + j] = static_cast<double>(lbp[static_cast<std::size_t>(j)]) / lbp_n;
}

}  // namespace

void CropReadParams::validate() const {
    for (const ParamRange& r : ranges()) r.check("crop_read");
}

CropReader::CropReader(const CropReadParams& params) : params_(params) {
    params_.validate();
}

CropReading CropReader::read(const cv::Mat& bgr) const {
    CropReading out;
    if (bgr.empty()) return out;
    if (bgr.type() != CV_8UC3) throw InputError("a crop must be a BGR image of 8-bit channels (CV_8UC3)");
    const cv::Mat content = content_of(bgr, out.content_at);
    const double s = static_cast<double>(params_.work_size) / std::max(content.rows, content.cols);
    // rounded half to even, as Python's round()
    const cv::Size size(std::max(8, static_cast<int>(std::nearbyint(content.cols * s))),
                        std::max(8, static_cast<int>(std::nearbyint(content.rows * s))));
    cv::resize(content, out.region, size, 0, 0, params_.area_resize ? cv::INTER_AREA : cv::INTER_LINEAR);
    out.region_scale = s;
    cv::Mat lab;
    cv::cvtColor(out.region, lab, cv::COLOR_BGR2Lab);
    const Distances d = distances_of(lab);
    out.outline = outline_of(d);
    out.has_outline = cv::countNonZero(out.outline) >= kMinObjectPixels;
    if (!params_.figures) return out;
    out.object = pick_object(d.otsu);
    CropObject o;
    if (!find_object(out.region, lab, d, out.object, o)) return out;
    out.has_object = true;
    out.pieces = o.pieces;
    shape_figures(o, out.figures);
    outline_figures(o, out.figures);
    hole_figures(o, out.figures);
    crack_figures(o, out.figures);
    colour_and_texture_figures(o, out.figures);
    return out;
}

}  // namespace cqc
