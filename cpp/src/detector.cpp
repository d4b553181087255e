#include "conveyor_qc/detector.hpp"

#include "params_check.hpp"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace cqc {

namespace {

std::string num(double v) { return detail::format_number(v); }

[[noreturn]] void fail(const std::string& field, const std::string& range, double got) {
    detail::param_error("detect", field, range, got);
}

// A distance-transform peak is a separate object only when the straight path
// to an already accepted peak drops below this fraction of the lower peak.
constexpr float kNeckFraction = 0.75f;
// ... and by at least this many pixels (keeps small ragged objects whole).
constexpr float kNeckMinDrop = 2.0f;
// A component whose area holds more objects than its clear necks say (a small
// broken object pressed against a whole one) is also cut at shallower necks,
// down to this fraction, the deepest first.
constexpr float kShallowNeckFraction = 0.85f;
// Peaks are local maxima of at least this fraction of the component's maximum.
constexpr float kPeakFraction = 0.5f;
// At most this many parts per component (the part map is 8-bit).
constexpr std::size_t kMaxParts = 250;

}  // namespace

void DetectParams::validate() const {
    if (!(min_area >= 0.0 && min_area <= max_area))
        fail("min_area", "in [0, max_area=" + num(max_area) + "]", min_area);
    if (!(max_area >= min_area && max_area <= 1e9))
        fail("max_area", "in [min_area=" + num(min_area) + ", 1e+09]", max_area);
    if (!(split_solidity >= 0.0 && split_solidity <= 1.0)) fail("split_solidity", "in [0, 1]", split_solidity);
    if (!(split_min_part >= 0.0 && split_min_part <= 1.0)) fail("split_min_part", "in [0, 1]", split_min_part);
}

Detector::Detector(const DetectParams& params) : params_(params) {
    params_.validate();
    // Bounded by kMaxParts: sized once.
    peaks_.reserve(kMaxParts + 1);
    parts_.reserve(kMaxParts + 1);
    border_.reserve(kMaxParts + 1);
}

cv::Mat Detector::component_view(const cv::Rect& box, int label) {
    cv::Mat view = component_(cv::Rect(0, 0, box.width + 2, box.height + 2));
    view.setTo(0);
    const cv::Mat& labels = labeller_.labels();
    for (int y = 0; y < box.height; ++y) {
        const int* lab = labels.ptr<int>(box.y + y) + box.x;
        std::uint8_t* bin = view.ptr<std::uint8_t>(y + 1) + 1;
        for (int x = 0; x < box.width; ++x) bin[x] = lab[x] == label ? 255 : 0;
    }
    return view;
}

namespace {

// Solidity and circularity from the outer contour's figures. The hull passes
// through pixel centres; the pixels it covers number about area + perimeter /
// 2 + 1 (Pick), which is what the pixel count compares to.
void shape(const ContourFigures& f, double area_px, float& solidity, float& circularity) {
    solidity = 1.f;
    circularity = 1.f;
    if (f.points < 3) return;
    const double hull_px = f.hull_area + 0.5 * f.hull_perimeter + 1.0;
    if (hull_px > 0.0) solidity = static_cast<float>(std::min(1.0, area_px / hull_px));
    if (f.perimeter > 0.0)
        circularity = static_cast<float>(std::min(1.0, 4.0 * CV_PI * area_px / (f.perimeter * f.perimeter)));
    solidity = std::max(solidity, 1e-6f);
    circularity = std::max(circularity, 1e-6f);
}

}  // namespace

void Detector::emit(const cv::Rect& b, double area_px, double cx, double cy, float solidity, float circularity,
                    const cv::Rect& roi, double scale, std::vector<Detection>& out) const {
    const double area = area_px / (scale * scale);
    if (area < params_.min_area || area > params_.max_area) return;
    Detection d;
    d.box = cv::Rect2f(static_cast<float>((roi.x + b.x) / scale), static_cast<float>((roi.y + b.y) / scale),
                       static_cast<float>(b.width / scale), static_cast<float>(b.height / scale));
    // Pixel i covers [i, i + 1) in the mask, i.e. [i / scale, (i + 1) / scale) at full resolution.
    d.centroid = cv::Point2f(static_cast<float>((roi.x + cx + 0.5) / scale - 0.5),
                             static_cast<float>((roi.y + cy + 0.5) / scale - 0.5));
    d.area = static_cast<float>(area);
    d.solidity = solidity;
    d.circularity = circularity;
    out.push_back(d);
}

void Detector::detect(const cv::Mat& mask, const cv::Rect& roi_in, double scale, std::vector<Detection>& out) {
    out.clear();
    if (mask.empty() || mask.type() != CV_8UC1) {
        throw InputError("detector mask must be a non-empty 8-bit single-channel image (CV_8UC1), got type " +
                         std::to_string(mask.type()) + " of size " + std::to_string(mask.cols) + "x" +
                         std::to_string(mask.rows));
    }
    if (!(scale > 0.0 && std::isfinite(scale))) {
        throw InputError("detector scale must be a positive finite number, got " + num(scale));
    }
    const cv::Rect full(0, 0, mask.cols, mask.rows);
    const cv::Rect roi = roi_in.empty() ? full : (roi_in & full);
    if (roi.empty()) return;

    const int n = labeller_.label(mask(roi));
    if (n <= 1) return;
    const cv::Mat& labels = labeller_.labels();

    // Grow-only scratch of the ROI's size plus a 1 px border.
    if (component_.rows < roi.height + 2 || component_.cols < roi.width + 2) {
        component_.create(std::max(component_.rows, roi.height + 2), std::max(component_.cols, roi.width + 2),
                          CV_8UC1);
    }

    const bool inner_left = roi.x > 0;
    const bool inner_top = roi.y > 0;
    const bool inner_right = roi.x + roi.width < mask.cols;
    const bool inner_bottom = roi.y + roi.height < mask.rows;
    const double px_to_full = 1.0 / (scale * scale);
    const bool may_split = params_.split_solidity > 0.0;

    for (int i = 1; i < n; ++i) {
        const ComponentStats& st = labeller_.stats(i);
        const cv::Rect box(st.left, st.top, st.width, st.height);
        const double area_px = st.area;
        // Touching a side of the ROI inside the frame: the object is cut by the
        // strip, it belongs to the part of the frame outside.
        if ((inner_left && box.x == 0) || (inner_top && box.y == 0) ||
            (inner_right && box.x + box.width == roi.width) || (inner_bottom && box.y + box.height == roi.height))
            continue;
        const double area = area_px * px_to_full;
        if (area < params_.min_area) continue;
        if (!may_split && area > params_.max_area) continue;

        // The component's outer contour starts at its first pixel in raster order.
        const int* top = labels.ptr<int>(box.y);
        int first = box.x;
        while (top[first] != i) ++first;
        float solidity = 1.f, circularity = 1.f;
        shape(tracer_.component(labels, i, cv::Point(first, box.y)), area_px, solidity, circularity);
        if (may_split && solidity < params_.split_solidity && split(box, i, area_px, roi, scale, out)) continue;

        emit(box, area_px, st.cx, st.cy, solidity, circularity, roi, scale, out);
        const bool on_border = box.x == 0 || box.y == 0 || box.x + box.width == roi.width ||
                               box.y + box.height == roi.height;
        if (!on_border && solidity >= params_.split_solidity) note_typical(static_cast<float>(area));
    }
}

void Detector::merge_small_parts(cv::Mat& parts, double min_area_px, int keep) {
    const int n = static_cast<int>(parts_.size());
    border_.resize(static_cast<std::size_t>(n));
    for (int alive = static_cast<int>(std::count_if(parts_.begin(), parts_.end(),
                                                    [](const Part& p) { return p.area > 0.0; }));
         alive > keep; --alive) {
        int k = -1;  // the smallest part below the bound
        for (int i = 0; i < n; ++i) {
            const double a = parts_[static_cast<std::size_t>(i)].area;
            if (a > 0.0 && a < min_area_px && (k < 0 || a < parts_[static_cast<std::size_t>(k)].area)) k = i;
        }
        if (k < 0) return;
        Part& small = parts_[static_cast<std::size_t>(k)];
        std::fill(border_.begin(), border_.end(), 0);
        const auto own = static_cast<std::uint8_t>(k + 1);
        for (int y = small.y0; y <= small.y1; ++y) {
            const std::uint8_t* row = parts.ptr<std::uint8_t>(y);
            for (int x = small.x0; x <= small.x1; ++x) {
                if (row[x] != own) continue;
                // The map has a zero border, so the 4 neighbours are always inside.
                for (const std::uint8_t other : {row[x - 1], row[x + 1], parts.ptr<std::uint8_t>(y - 1)[x],
                                                 parts.ptr<std::uint8_t>(y + 1)[x]}) {
                    if (other != 0 && other != own) ++border_[static_cast<std::size_t>(other - 1)];
                }
            }
        }
        const auto best = std::max_element(border_.begin(), border_.end());
        if (*best == 0) return;  // touches no other part (cannot happen in one component)
        const int j = static_cast<int>(best - border_.begin());
        Part& into = parts_[static_cast<std::size_t>(j)];
        const auto to = static_cast<std::uint8_t>(j + 1);
        for (int y = small.y0; y <= small.y1; ++y) {
            std::uint8_t* row = parts.ptr<std::uint8_t>(y);
            for (int x = small.x0; x <= small.x1; ++x)
                if (row[x] == own) row[x] = to;
        }
        into.area += small.area;
        into.sx += small.sx;
        into.sy += small.sy;
        into.x0 = std::min(into.x0, small.x0);
        into.y0 = std::min(into.y0, small.y0);
        into.x1 = std::max(into.x1, small.x1);
        into.y1 = std::max(into.y1, small.y1);
        small.area = 0.0;
    }
}

void Detector::note_typical(float area) {
    typical_[static_cast<std::size_t>(typical_seen_ % kTypical)] = area;
    ++typical_seen_;
}

float Detector::typical_area() {
    const int n = std::min(typical_seen_, kTypical);
    if (n < kTypicalMin) return 0.f;
    std::copy(typical_.begin(), typical_.begin() + n, typical_scratch_.begin());
    auto mid = typical_scratch_.begin() + n / 2;
    std::nth_element(typical_scratch_.begin(), mid, typical_scratch_.begin() + n);
    return *mid;
}

namespace {

// A flooding key: the distance's bits inverted (larger first), then the pixel index.
std::uint64_t flood_key(float distance, int index) {
    std::uint32_t bits;
    std::memcpy(&bits, &distance, sizeof bits);
    return (static_cast<std::uint64_t>(~bits) << 32) | static_cast<std::uint32_t>(index);
}
int flood_index(std::uint64_t key) { return static_cast<int>(static_cast<std::uint32_t>(key)); }
float flood_value(std::uint64_t key) {
    const std::uint32_t bits = ~static_cast<std::uint32_t>(key >> 32);
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

}  // namespace

// order_ sorted ascending, as std::sort would: the keys were pushed in raster
// order, i.e. by increasing pixel index (their low half), so a stable sort on
// the high half alone (the distance) gives the same order. An LSD radix sort,
// a byte per pass, skipping a byte all keys share: std::sort was a third of
// split()'s time.
void Detector::sort_flood_keys() {
    const std::size_t n = order_.size();
    if (n < 64) {  // a histogram per byte costs more than sorting a few keys
        std::sort(order_.begin(), order_.end());
        return;
    }
    std::uint32_t count[4][256] = {};
    for (const std::uint64_t key : order_) {
        const auto high = static_cast<std::uint32_t>(key >> 32);
        ++count[0][high & 0xff];
        ++count[1][(high >> 8) & 0xff];
        ++count[2][(high >> 16) & 0xff];
        ++count[3][high >> 24];
    }
    if (order_scratch_.size() < order_.capacity()) order_scratch_.resize(order_.capacity());  // grows with order_
    std::uint64_t* src = order_.data();
    std::uint64_t* dst = order_scratch_.data();
    for (int pass = 0; pass < 4; ++pass) {
        std::uint32_t* c = count[pass];
        const int shift = 32 + 8 * pass;
        if (c[(src[0] >> shift) & 0xff] == n) continue;  // one value of this byte: nothing moves
        std::uint32_t sum = 0;
        for (int b = 0; b < 256; ++b) {
            const std::uint32_t k = c[b];
            c[b] = sum;
            sum += k;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint64_t key = src[i];
            dst[c[(key >> shift) & 0xff]++] = key;
        }
        std::swap(src, dst);
    }
    if (src != order_.data()) std::copy(src, src + n, order_.data());
}

bool Detector::split(const cv::Rect& box, int label, double area_px, const cv::Rect& roi, double scale,
                     std::vector<Detection>& out) {
    const int w = box.width + 2, h = box.height + 2;
    if (dist_.rows < component_.rows || dist_.cols < component_.cols) {
        // The first split (or a larger ROI): 2-D buffers for any component of
        // the ROI, so that a larger component does not allocate later.
        dist_.create(component_.size(), CV_32F);
        parts_map_.create(component_.size(), CV_8UC1);
        distance_.reserve(component_.size());
        tracer_.reserve(component_.size());
    }
    const cv::Rect r(0, 0, w, h);
    cv::Mat bin = component_view(box, label);
    cv::Mat dist = dist_(r), parts = parts_map_(r);
    // Peaks come from the component with its holes filled (texture such as
    // chips leaves holes in the mask that would otherwise make false necks):
    // what filling its outer contour gives.
    holes_.fill(bin);
    distance_.l2_mask5(bin, dist);
    double maxv = 0.0;
    cv::minMaxLoc(dist, nullptr, &maxv);
    if (maxv <= 0.0) return false;

    // Peaks by flooding the distance map from the top (0-dimensional
    // persistence): pixels enter in decreasing distance; when two regions meet
    // at a saddle, the lower one is a separate object if the saddle is a real
    // neck (well below its peak) and its peak is at least half the maximum.
    // A plateau or a ridge (an ellipse, a notched disc) stays one region.
    const float floor_v = kPeakFraction * static_cast<float>(maxv);
    order_.clear();
    for (int y = 1; y < h - 1; ++y) {
        const float* d = dist.ptr<float>(y);
        for (int x = 1; x < w - 1; ++x) {
            // Positive floats order as their bit patterns do.
            if (d[x] > 0.f) order_.push_back(flood_key(d[x], y * w + x));
        }
    }
    sort_flood_keys();
    // resize (not assign) grows geometrically: a few larger components, not each one.
    const std::size_t pixels = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
    if (uf_.size() < pixels) {
        uf_.resize(pixels);
        uf_peak_.resize(pixels);
        uf_peak_value_.resize(pixels);
    }
    std::fill(uf_.begin(), uf_.begin() + static_cast<std::ptrdiff_t>(pixels), -1);  // -1: not flooded yet; else parent
    // uf_peak_ and uf_peak_value_ are valid at roots: the region's peak pixel and its distance.
    auto find = [&](int i) {
        while (uf_[i] != i) {
            uf_[i] = uf_[uf_[i]];
            i = uf_[i];
        }
        return i;
    };
    peaks_.clear();
    const int nb[8] = {-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1};
    for (const std::uint64_t key : order_) {
        const int i = flood_index(key);
        const float saddle = flood_value(key);
        uf_[i] = i;
        uf_peak_[i] = i;
        uf_peak_value_[i] = saddle;
        // i's root, without a find: i itself, then the region each union keeps.
        int root = i;
        for (int k = 0; k < 8; ++k) {
            const int j = i + nb[k];
            const int up = uf_[j];
            // Not flooded yet (the zero border never is), or already in i's
            // region: most neighbours, told without a find.
            if (up < 0 || up == root) continue;
            int a = root, b = up == j ? j : find(j);
            if (a == b) continue;
            // a: the region with the higher peak.
            if (uf_peak_value_[b] > uf_peak_value_[a]) std::swap(a, b);
            const int lower = uf_peak_[b];
            const float vb = uf_peak_value_[b];
            if (vb >= floor_v && saddle < kShallowNeckFraction * vb && vb - saddle >= kNeckMinDrop &&
                peaks_.size() + 1 < kMaxParts) {
                peaks_.push_back({vb, cv::Point(lower % w, lower / w), saddle / vb});
            }
            uf_[b] = a;
            root = a;
        }
    }
    // Clear necks always cut; shallow ones only while the component's area
    // says it holds more objects than that (area / typical area, rounded).
    std::sort(peaks_.begin(), peaks_.end(), [](const Peak& p, const Peak& q) { return p.neck < q.neck; });
    const auto clear = static_cast<std::size_t>(
        std::count_if(peaks_.begin(), peaks_.end(), [](const Peak& p) { return p.neck < kNeckFraction; }));
    const float typical = typical_area();
    const std::size_t by_area =
        typical > 0.f ? static_cast<std::size_t>(std::lround(area_px / (typical * scale * scale))) : 0;
    peaks_.resize(std::max(clear, std::min(peaks_.size(), by_area > 0 ? by_area - 1 : 0)));
    if (!peaks_.empty()) {
        // The highest peak of all survives every merge.
        const int root = find(flood_index(order_.front()));
        const int top = uf_peak_[root];
        peaks_.push_back({uf_peak_value_[root], cv::Point(top % w, top / w), 0.f});
    }
    if (peaks_.size() < 2) return false;

    // Nearest peak in the power distance |p - c|^2 - r^2: exact cut for
    // overlapping discs (their radical axis).
    parts_.assign(peaks_.size(), Part{0.0, 0.0, 0.0, w, h, -1, -1});
    parts.setTo(0);
    for (int y = 1; y < h - 1; ++y) {
        const int* lab = labeller_.labels().ptr<int>(box.y + y - 1) + box.x;
        std::uint8_t* pm = parts.ptr<std::uint8_t>(y);
        for (int x = 1; x < w - 1; ++x) {
            if (lab[x - 1] != label) continue;  // the component's own pixels, holes excluded
            std::size_t best = 0;
            float best_d = 0.f;
            for (std::size_t k = 0; k < peaks_.size(); ++k) {
                const float dx = static_cast<float>(x - peaks_[k].pt.x), dy = static_cast<float>(y - peaks_[k].pt.y);
                const float dd = dx * dx + dy * dy - peaks_[k].value * peaks_[k].value;
                if (k == 0 || dd < best_d) {
                    best_d = dd;
                    best = k;
                }
            }
            pm[x] = static_cast<std::uint8_t>(best + 1);
            Part& part = parts_[best];
            part.area += 1.0;
            part.sx += x;
            part.sy += y;
            part.x0 = std::min(part.x0, x);
            part.y0 = std::min(part.y0, y);
            part.x1 = std::max(part.x1, x);
            part.y1 = std::max(part.y1, y);
        }
    }

    // Parts much smaller than a single object are pieces of one (half of a
    // broken object, a lobe of a stacked one), not objects of their own:
    // each joins the neighbouring part it shares the longest border with,
    // smallest first. A component left in one part stays whole.
    if (typical > 0.f && params_.split_min_part > 0.0) {
        // The component's area says how many objects it holds at least: a
        // component of twice a typical area is two objects even when one of
        // them is small (a broken cookie against a stacked one), so merging
        // stops there.
        const int keep = std::max(1, static_cast<int>(by_area));
        merge_small_parts(parts, params_.split_min_part * typical * scale * scale, keep);
        const auto alive = std::count_if(parts_.begin(), parts_.end(), [](const Part& p) { return p.area > 0.0; });
        if (alive < 2) return false;
    }

    // One detection per part; the component view is reused for each part's mask.
    for (std::size_t k = 0; k < parts_.size(); ++k) {
        const Part& part = parts_[k];
        if (part.area <= 0.0) continue;
        cv::Mat part_bin = component_(r);
        const auto own = static_cast<std::uint8_t>(k + 1);
        for (int y = 0; y < h; ++y) {
            const std::uint8_t* pm = parts.ptr<std::uint8_t>(y);
            std::uint8_t* pb = part_bin.ptr<std::uint8_t>(y);
            for (int x = 0; x < w; ++x) pb[x] = pm[x] == own ? 255 : 0;
        }
        // A part need not be connected: its figures are those of its largest outer contour.
        float solidity = 1.f, circularity = 1.f;
        shape(tracer_.largest_external(part_bin), part.area, solidity, circularity);
        // Part coordinates are in the padded view: subtract the 1 px border.
        const cv::Rect pbox(box.x + part.x0 - 1, box.y + part.y0 - 1, part.x1 - part.x0 + 1, part.y1 - part.y0 + 1);
        const double cx = box.x + part.sx / part.area - 1.0, cy = box.y + part.sy / part.area - 1.0;
        emit(pbox, part.area, cx, cy, solidity, circularity, roi, scale, out);
    }
    return true;
}

}  // namespace cqc
