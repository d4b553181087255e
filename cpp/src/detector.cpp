#include "conveyor_qc/detector.hpp"

#include "conveyor_qc/union_find.hpp"

#include "params_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

namespace cqc {

namespace {

std::string num(double v) {
    return detail::format_number(v);
}

// A distance-transform peak is a separate object only when the straight path
// to an already accepted peak drops below this fraction of the lower peak.
constexpr float kNeckFraction = 0.75f;
// ... and by at least this many pixels (keeps small ragged objects whole).
constexpr float kNeckMinDrop = 2.0f;
// Peaks are local maxima of at least this fraction of the component's maximum.
constexpr float kPeakFraction = 0.5f;
// A component whose area holds more objects than its clear necks say (a small
// broken object pressed against a whole one, products packed edge to edge)
// is also cut at shallower necks, down to this fraction, the deepest first,
// and at lower peaks, down to kAreaPeakFraction of the maximum (in a large
// cluster, where products overlap the distance map is highest, the others'
// peaks fall under half of it).
constexpr float kShallowNeckFraction = 0.95f;
constexpr float kAreaPeakFraction = 0.35f;
// A part that the frame's side cuts is an object of its own from this
// fraction of a typical object's area, not from split_min_part: of an object
// cut by the side of the view only part is ever seen (a row along the belt's
// edge), and it counts from 40% in view. Parts that the frame does not cut
// keep split_min_part: a lobe of a broken object is not an object.
constexpr double kCutMinPart = 0.25;
// At most this many parts per component (the part map is 8-bit).
constexpr std::size_t kMaxParts = 250;

}  // namespace

const char* to_string(ComponentNote::Outcome o) {
    switch (o) {
        case ComponentNote::Outcome::One:
            return "one";
        case ComponentNote::Outcome::KeptWhole:
            return "kept_whole";
        case ComponentNote::Outcome::Split:
            return "split";
        case ComponentNote::Outcome::Grouped:
            return "grouped";
        case ComponentNote::Outcome::Crumb:
            return "crumb";
        case ComponentNote::Outcome::TooSmall:
            return "too_small";
        case ComponentNote::Outcome::TooLarge:
            return "too_large";
        case ComponentNote::Outcome::CutByRoi:
            return "cut_by_roi";
    }
    return "one";
}

void DetectParams::validate() const {
    for (const ParamRange& r : ranges()) r.check("detect");
}

Detector::Detector(const DetectParams& params) : params_(params) {
    params_.validate();
    // Bounded by kMaxParts: sized once.
    peaks_.reserve(kMaxParts + 1);
    split_singles_.reserve(kTypical);
    shape_peaks_.reserve(kMaxParts + 1);
    parts_.reserve(kMaxParts + 1);
    border_.reserve(kMaxParts + 1);
    settled_.reserve(kMaxParts + 1);
    // Grouping's lists, sized for far more components than a frame holds, so
    // that the steady state allocates nothing (they still grow if needed).
    pieces_.reserve(1024);
    piece_of_.reserve(4096);
    order_pieces_.reserve(1024);
    dropped_.reserve(1024);
    near_votes_.reserve(64);
    seen_here_.reserve(64);
    hull_in_.reserve(8192);
    hull_out_.reserve(16384);
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
    label_count_ = n;
    if (n <= 1) return;

    // Grow-only scratch of the ROI's size plus a 1 px border.
    if (component_.rows < roi.height + 2 || component_.cols < roi.width + 2) {
        component_.create(std::max(component_.rows, roi.height + 2), std::max(component_.cols, roi.width + 2), CV_8UC1);
    }
    find_provisional_typical(roi, scale, n);

    // The sides of the ROI that lie inside the frame (a detection strip's).
    const int inner_sides = (roi.x > 0 ? kLeft : 0) | (roi.y > 0 ? kTop : 0) |
                            (roi.x + roi.width < mask.cols ? kRight : 0) |
                            (roi.y + roi.height < mask.rows ? kBottom : 0);
    // The typical object stays the same through the frame: it learns from
    // the frame's objects only once they are all found.
    last_typical_ = typical_area();
    notes_.clear();
    for (int i = 1; i < n; ++i) detect_component(i, roi, inner_sides, scale, out);
    group_pieces(box_scale_gap(scale), out);
    for (const Piece& p : pieces_)
        if (p.single && !p.grouped && !p.crumb) note_typical(p.area);
    for (const float a : split_singles_) note_typical(a);
    pieces_.clear();
    split_singles_.clear();
}

void Detector::component_shape(int label, float& solidity, float& circularity) {
    const ComponentStats& st = labeller_.stats(label);
    // The component's outer contour starts at its first pixel in raster order.
    const int* top = labeller_.labels().ptr<int>(st.top);
    int first = st.left;
    while (top[first] != label) ++first;
    shape(tracer_.component(labeller_.labels(), label, cv::Point(first, st.top)), st.area, solidity, circularity);
}

// The typical object from earlier frames; on the first frames, before
// kTypicalMin are known, from this frame's own whole components that are
// one object by their shape (a dense belt merges its first objects into
// clusters that only the typical size tells how to cut).
void Detector::find_provisional_typical(const cv::Rect& roi, double scale, int n) {
    provisional_typical_ = 0.f;
    if (typical_seen_ >= kTypicalMin) return;
    int m = 0;
    provisional_others_.clear();
    for (int i = 1; i < n && m < kTypical; ++i) {
        const ComponentStats& st = labeller_.stats(i);
        const double area = st.area / (scale * scale);
        if (st.left == 0 || st.top == 0 || st.left + st.width == roi.width || st.top + st.height == roi.height ||
            area < params_.min_area || area > params_.max_area)
            continue;
        float solidity = 1.f, circularity = 1.f;
        component_shape(i, solidity, circularity);
        if (solidity >= params_.split_solidity)
            typical_scratch_[static_cast<std::size_t>(m++)] = static_cast<float>(area);
        else provisional_others_.push_back(i);
    }
    // The others are single by their shape or not; their holes over a
    // tenth of the compact ones' median are belt between objects (a ring
    // of touching objects filled in would be one huge "single").
    long long max_hole = kNoHoleLimit;
    if (m >= 3) {
        auto mid = typical_scratch_.begin() + m / 2;
        std::nth_element(typical_scratch_.begin(), mid, typical_scratch_.begin() + m);
        max_hole = static_cast<long long>(HoleFiller::kTextureHoleShare * *mid * scale * scale);
    }
    for (const int i : provisional_others_) {
        if (m >= kTypical) break;
        const ComponentStats& st = labeller_.stats(i);
        const cv::Rect box(st.left, st.top, st.width, st.height);
        if (find_peaks(box, i, 0, max_hole) > 0.f && single_by_shape(box, i))
            typical_scratch_[static_cast<std::size_t>(m++)] = static_cast<float>(st.area / (scale * scale));
    }
    if (m >= 3) provisional_typical_ = first_typical(typical_scratch_.data(), m);
}

// Component `label` of the ROI: dropped, one detection, or cut into several;
// one left whole is a piece that group_pieces() may join to another.
void Detector::detect_component(int label, const cv::Rect& roi, int inner_sides, double scale,
                                std::vector<Detection>& out) {
    const ComponentStats& st = labeller_.stats(label);
    const cv::Rect box(st.left, st.top, st.width, st.height);
    const double area_px = st.area;
    const double area = area_px * (1.0 / (scale * scale));
    ComponentNote* note = nullptr;
    if (explain_) {
        notes_.push_back({box + roi.tl(), st.area, static_cast<float>(area), 1.f, ComponentNote::Outcome::One});
        note = &notes_.back();
    }
    // Touching a side of the ROI inside the frame: the object is cut by the
    // strip, it belongs to the part of the frame outside.
    const int touching = (box.x == 0 ? kLeft : 0) | (box.y == 0 ? kTop : 0) |
                         (box.x + box.width == roi.width ? kRight : 0) |
                         (box.y + box.height == roi.height ? kBottom : 0);
    if (touching & inner_sides) {
        if (note) note->outcome = ComponentNote::Outcome::CutByRoi;
        return;
    }
    const bool may_split = params_.split_solidity > 0.0;
    if (area < params_.min_area || (!may_split && area > params_.max_area)) {
        if (note)
            note->outcome =
                area < params_.min_area ? ComponentNote::Outcome::TooSmall : ComponentNote::Outcome::TooLarge;
        return;
    }
    float solidity = 1.f, circularity = 1.f;
    component_shape(label, solidity, circularity);
    // The sides it touches are now the frame's own edges: the object may go
    // on beyond them (a row cut by a side of the view).
    const int frame_sides = touching;
    const std::size_t before = out.size();
    // A component too little convex for one object is cut; so is one
    // whose area holds two objects (two squares side by side make a
    // rectangle as solid as one), and one the frame's side cuts (an
    // object coming into view right behind another hangs on to it by a
    // sliver, and the cut hides the waist between them).
    const float typical = last_typical_;
    const bool tried = may_split && (solidity < params_.split_solidity || frame_sides != 0 ||
                                     (typical > 0.f && area >= kSplitByArea * typical));
    last_by_area_ = 0;
    last_peaks_ = 0;
    if (note) note->solidity = solidity;
    if (tried && split(box, label, area_px, frame_sides, roi, scale, out)) {
        // One object by its shape (one region holds most of it under its
        // clear necks), cut only because the typical size was taken too
        // small: it still tells the typical size.
        if (last_dominant_ && frame_sides == 0 && split_singles_.size() < kTypical)
            split_singles_.push_back(static_cast<float>(area));
        if (note) {
            note->outcome = ComponentNote::Outcome::Split;
            note->first_detection = static_cast<int>(before);
            note->detections = static_cast<int>(out.size() - before);
            note->objects_by_area = last_by_area_;
            note->peaks = last_peaks_;
        }
        return;
    }
    emit(box, area_px, st.cx, st.cy, solidity, circularity, roi, scale, out);
    if (note) {
        note->objects_by_area = last_by_area_;
        note->peaks = last_peaks_;
        if (out.size() == before) {
            note->outcome = ComponentNote::Outcome::TooLarge;
        } else {
            note->outcome = tried ? ComponentNote::Outcome::KeptWhole : ComponentNote::Outcome::One;
            note->first_detection = static_cast<int>(before);
            note->detections = 1;
        }
    }
    if (out.size() == before) return;
    const bool on_border = touching != 0;
    pieces_.push_back({label, static_cast<int>(before), static_cast<float>(area), !on_border, false,
                       !on_border && (tried ? last_single_ : true), -1,
                       note ? static_cast<int>(notes_.size() - 1) : -1});
}

// Solidity of pieces a and b (with what is grouped into them) taken together:
// their pixels over the pixels of the convex hull of both, from each row's
// leftmost and rightmost pixel of either (Andrew's monotone chain), counted
// as shape() counts a hull's pixels.
float Detector::union_solidity(int a, int b) {
    const cv::Mat& labels = labeller_.labels();
    hull_in_.clear();
    double pixels = 0.0;
    auto member = [&](int label) {
        const int p = piece_of_[static_cast<std::size_t>(label)];
        if (p < 0) return false;
        const Piece& q = pieces_[static_cast<std::size_t>(p)];
        return p == a || p == b || (q.grouped && (q.into == a || q.into == b));
    };
    cv::Rect box;
    for (std::size_t k = 0; k < pieces_.size(); ++k) {
        const Piece& q = pieces_[k];
        if (!(static_cast<int>(k) == a || static_cast<int>(k) == b || (q.grouped && (q.into == a || q.into == b))))
            continue;
        const ComponentStats& st = labeller_.stats(q.label);
        const cv::Rect r(st.left, st.top, st.width, st.height);
        box = box.empty() ? r : (box | r);
        pixels += st.area;
    }
    for (int y = box.y; y < box.y + box.height; ++y) {
        const int* row = labels.ptr<int>(y);
        int lo = -1, hi = -1;
        for (int x = box.x; x < box.x + box.width; ++x) {
            if (row[x] == 0 || !member(row[x])) continue;
            if (lo < 0) lo = x;
            hi = x;
        }
        if (lo < 0) continue;
        hull_in_.emplace_back(lo, y);
        if (hi != lo) hull_in_.emplace_back(hi, y);
    }
    const std::size_t n = hull_in_.size();
    if (n < 3 || pixels <= 0.0) return 1.f;
    hull_out_.assign(2 * n, cv::Point());
    const int m = convex_hull_sorted(hull_in_.data(), static_cast<int>(n), hull_out_.data());
    return static_cast<float>(std::min(1.0, pixels / hull_pixels(hull_out_.data(), m)));
}

int Detector::box_scale_gap(double scale) const {
    return params_.group_gap > 0.0 ? std::max(1, static_cast<int>(std::lround(params_.group_gap * scale))) : 0;
}

// Pieces of one object: a product broken in two, or cracked right across,
// lies as two components a few pixels apart; each is much smaller than a
// typical object, and together they make one. A small whole component joins
// the whole component (left in one piece) nearest it within `gap` mask pixels
// (the one most of its outline is near), smallest first, as long as the two
// together stay the size of one object; the group is one detection.
void Detector::group_pieces(int gap, std::vector<Detection>& out) {
    const float typical = last_typical_;
    if (gap <= 0 || typical <= 0.f || pieces_.size() < 2) return;
    // Label -> piece index (labels of components that are no piece map to -1).
    piece_of_.assign(static_cast<std::size_t>(label_count_), -1);
    for (std::size_t k = 0; k < pieces_.size(); ++k)
        piece_of_[static_cast<std::size_t>(pieces_[k].label)] = static_cast<int>(k);
    order_pieces_.clear();
    for (std::size_t k = 0; k < pieces_.size(); ++k)
        if (pieces_[k].whole && pieces_[k].area < kGroupPiece * typical) order_pieces_.push_back(static_cast<int>(k));
    std::sort(order_pieces_.begin(), order_pieces_.end(), [&](int a, int b) {
        return pieces_[static_cast<std::size_t>(a)].area < pieces_[static_cast<std::size_t>(b)].area;
    });
    bool any = false;
    for (const int k : order_pieces_) {
        if (pieces_[static_cast<std::size_t>(k)].grouped) continue;
        const int outline_px = count_near_votes(pieces_[static_cast<std::size_t>(k)], gap);
        const int best = best_group(k, outline_px, out);
        if (best < 0) continue;
        join_piece(k, best, out);
        any = true;
    }
    // A crumb that joined nothing is no object either (a limb or a head
    // lying apart from its figure, debris bigger than min_area).
    for (Piece& p : pieces_)
        if (p.whole && !p.grouped && p.area < kGroupCrumb * typical) p.crumb = any = true;
    if (any) drop_grouped(out);
}

// For every other piece, how many of this piece's outline pixels have one of
// its pixels within `gap` (Chebyshev distance): the length of the crack they
// share, into near_votes_. Returns the outline's length.
int Detector::count_near_votes(const Piece& small, int gap) {
    const cv::Mat& labels = labeller_.labels();  // framed by zeros: reads one pixel out are safe
    const ComponentStats& st = labeller_.stats(small.label);
    near_votes_.clear();
    int outline_px = 0;
    for (int y = st.top; y < st.top + st.height; ++y) {
        const int* row = labels.ptr<int>(y);
        for (int x = st.left; x < st.left + st.width; ++x) {
            if (row[x] != small.label) continue;
            const bool outline = row[x - 1] != small.label || row[x + 1] != small.label ||
                                 labels.ptr<int>(y - 1)[x] != small.label || labels.ptr<int>(y + 1)[x] != small.label;
            if (!outline) continue;
            ++outline_px;
            seen_here_.clear();
            const int y0 = std::max(0, y - gap), y1 = std::min(labels.rows - 1, y + gap);
            const int x0 = std::max(0, x - gap), x1 = std::min(labels.cols - 1, x + gap);
            for (int yy = y0; yy <= y1; ++yy) {
                const int* r = labels.ptr<int>(yy);
                for (int xx = x0; xx <= x1; ++xx) {
                    const int l = r[xx];
                    if (l == 0 || l == small.label) continue;
                    const int other = piece_of_[static_cast<std::size_t>(l)];
                    if (other < 0 || std::find(seen_here_.begin(), seen_here_.end(), other) != seen_here_.end())
                        continue;
                    seen_here_.push_back(other);
                    auto it = std::find_if(near_votes_.begin(), near_votes_.end(),
                                           [&](const std::pair<int, int>& v) { return v.first == other; });
                    if (it == near_votes_.end()) near_votes_.emplace_back(other, 1);
                    else ++it->second;
                }
            }
        }
    }
    return outline_px;
}

// The piece that piece k joins, of near_votes_ (-1: none): the one most of
// its outline is near; a crumb would rather join a piece that is no crumb
// itself (a figure's leg its body, not the other leg).
int Detector::best_group(int k, int outline_px, const std::vector<Detection>& out) {
    const float typical = last_typical_;
    const Piece& small = pieces_[static_cast<std::size_t>(k)];
    const bool crumb = small.area < kGroupCrumb * typical;
    int best = -1, best_votes = 0;
    bool best_solid = false;
    for (const auto& [other, votes] : near_votes_) {
        // A piece already grouped stands for its group.
        const Piece& o = pieces_[static_cast<std::size_t>(other)];
        const int target = o.grouped ? o.into : other;
        const Piece& into = pieces_[static_cast<std::size_t>(target)];
        if (target == k || !into.whole || into.grouped) continue;
        // A crumb of an object (a figure's head or hand that the mask's
        // opening cut off) is no object of its own: it joins the piece it
        // lies nearest to, whatever the shape or size they make.
        if (!crumb) {
            // A group stays one object's size.
            if (small.area + into.area > kGroupMax * typical) continue;
            if (votes < kGroupCrack * outline_px) continue;  // only a corner near: two objects side by side
            // Pieces of one object fit together into something about as
            // solid as one; two objects side by side leave a waist. A
            // product that is not convex need only stay about as solid as
            // its larger piece already is.
            const float solid_enough =
                std::min(kGroupSolidity, kGroupSolidityKept * out[static_cast<std::size_t>(into.det)].solidity);
            if (union_solidity(k, target) < solid_enough) continue;
        }
        const bool solid = into.area >= kGroupCrumb * typical;
        if (solid > best_solid || (solid == best_solid && votes > best_votes)) {
            best_votes = votes;
            best_solid = solid;
            best = target;
        }
    }
    return best;
}

// Piece k joins piece `best`: best's detection becomes the group's.
void Detector::join_piece(int k, int best, std::vector<Detection>& out) {
    Piece& small = pieces_[static_cast<std::size_t>(k)];
    Piece& into = pieces_[static_cast<std::size_t>(best)];
    Detection& a = out[static_cast<std::size_t>(into.det)];
    const Detection& b = out[static_cast<std::size_t>(small.det)];
    const float total = a.area + b.area;
    a.centroid = (a.centroid * a.area + b.centroid * b.area) / total;
    a.box = a.box | b.box;
    a.area = total;
    a.solidity = std::min(a.solidity, b.solidity);  // a group's figures: its least regular piece's
    a.circularity = std::min(a.circularity, b.circularity);
    into.area = total;
    small.grouped = true;
    small.into = best;
    into.single = false;
}

// Drops the grouped pieces' and the crumbs' detections, keeping the order of the rest.
void Detector::drop_grouped(std::vector<Detection>& out) {
    std::size_t w = 0;
    dropped_.assign(out.size(), 0);
    for (const Piece& p : pieces_)
        if (p.grouped || p.crumb) dropped_[static_cast<std::size_t>(p.det)] = 1;
    if (explain_) {
        // Notes follow: detection numbers shift down past the dropped ones.
        for (const Piece& p : pieces_) {
            if (p.crumb && p.note >= 0) {
                ComponentNote& nt = notes_[static_cast<std::size_t>(p.note)];
                nt.outcome = ComponentNote::Outcome::Crumb;
                nt.first_detection = -1;
                nt.detections = 0;
            }
            if (!p.grouped || p.note < 0) continue;
            ComponentNote& nt = notes_[static_cast<std::size_t>(p.note)];
            nt.outcome = ComponentNote::Outcome::Grouped;
            nt.joined = pieces_[static_cast<std::size_t>(p.into)].note;
            nt.first_detection = pieces_[static_cast<std::size_t>(p.into)].det;
        }
        for (ComponentNote& nt : notes_) {
            if (nt.first_detection < 0) continue;
            int shift = 0;
            for (int r = 0; r < nt.first_detection; ++r) shift += dropped_[static_cast<std::size_t>(r)];
            nt.first_detection -= shift;
        }
    }
    for (std::size_t r = 0; r < out.size(); ++r)
        if (!dropped_[r]) out[w++] = out[r];
    out.resize(w);
}

void Detector::merge_small_parts(cv::Mat& parts, double min_area_px, double cut_min_area_px, int frame_sides,
                                 double max_union_px, int keep) {
    const int n = static_cast<int>(parts_.size());
    // Whether a part reaches a side of the view that cuts the component (part
    // coordinates are in the padded view: the component spans 1 .. w-2).
    const int last_x = parts.cols - 2, last_y = parts.rows - 2;
    const auto cut = [&](const Part& p) {
        return ((frame_sides & kLeft) && p.x0 == 1) || ((frame_sides & kTop) && p.y0 == 1) ||
               ((frame_sides & kRight) && p.x1 == last_x) || ((frame_sides & kBottom) && p.y1 == last_y);
    };
    border_.resize(static_cast<std::size_t>(n));
    settled_.assign(static_cast<std::size_t>(n), 0);
    for (int alive =
             static_cast<int>(std::count_if(parts_.begin(), parts_.end(), [](const Part& p) { return p.area > 0.0; }));
         alive > keep;) {
        int k = -1;  // the smallest part below the bound not yet settled
        for (int i = 0; i < n; ++i) {
            const Part& p = parts_[static_cast<std::size_t>(i)];
            const double a = p.area;
            if (a > 0.0 && a < (cut(p) ? cut_min_area_px : min_area_px) && !settled_[static_cast<std::size_t>(i)] &&
                (k < 0 || a < parts_[static_cast<std::size_t>(k)].area))
                k = i;
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
                for (const std::uint8_t other :
                     {row[x - 1], row[x + 1], parts.ptr<std::uint8_t>(y - 1)[x], parts.ptr<std::uint8_t>(y + 1)[x]}) {
                    if (other != 0 && other != own) ++border_[static_cast<std::size_t>(other - 1)];
                }
            }
        }
        // The neighbour it shares the longest border with, of those it can
        // join without making more than one object's size (a piece joins its
        // object; a small object beside a large one stays itself).
        int j = -1;
        for (int i = 0; i < n; ++i) {
            const Part& p = parts_[static_cast<std::size_t>(i)];
            if (border_[static_cast<std::size_t>(i)] == 0 || p.area + small.area > max_union_px) continue;
            if (j < 0 || border_[static_cast<std::size_t>(i)] > border_[static_cast<std::size_t>(j)]) j = i;
        }
        if (j < 0) {
            settled_[static_cast<std::size_t>(k)] = 1;
            continue;
        }
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
        --alive;
    }
}

void Detector::note_typical(float area) {
    typical_[static_cast<std::size_t>(typical_seen_ % kTypical)] = area;
    ++typical_seen_;
}

float Detector::typical_area() {
    const int n = std::min(typical_seen_, kTypical);
    if (n < kTypicalMin) return provisional_typical_;
    std::copy(typical_.begin(), typical_.begin() + n, typical_scratch_.begin());
    auto mid = typical_scratch_.begin() + n / 2;
    std::nth_element(typical_scratch_.begin(), mid, typical_scratch_.begin() + n);
    return *mid;
}

// On the first frame: a figure whose head and limbs the mask cut off leaves
// several small pieces for each whole figure, which a plain median would take
// for the object (and, taken for it, they would never be grouped or dropped as
// crumbs, and go on telling the typical size). The area-weighted median (the
// area half of the candidates' pixels lie in objects no larger than) is not
// fooled by them, but leans to pairs that lie with no neck between them, and
// one huge blob (a belt model that has seen one frame may fill the belt
// between crowded objects) outweighs every object. So: candidates over
// kFirstOutlier plain medians are left out, and the typical is the plain
// median of those that are no crumbs of the weighted median of the rest.
float Detector::first_typical(float* areas, int n) {
    std::sort(areas, areas + n);
    float* const end = std::upper_bound(areas, areas + n, kFirstOutlier * areas[n / 2]);
    double total = 0.0;
    for (const float* a = areas; a < end; ++a) total += *a;
    double below = 0.0;
    float weighted = areas[n / 2];
    for (const float* a = areas; a < end; ++a) {
        below += *a;
        if (below >= 0.5 * total) {
            weighted = *a;
            break;
        }
    }
    const float* first = std::lower_bound(areas, end, kGroupCrumb * weighted);
    return first[(end - first) / 2];
}

namespace {

// A flooding key: the distance's bits inverted (larger first), then the pixel index.
std::uint64_t flood_key(float distance, int index) {
    std::uint32_t bits;
    std::memcpy(&bits, &distance, sizeof bits);
    return (static_cast<std::uint64_t>(~bits) << 32) | static_cast<std::uint32_t>(index);
}
int flood_index(std::uint64_t key) {
    return static_cast<int>(static_cast<std::uint32_t>(key));
}
float flood_value(std::uint64_t key) {
    const std::uint32_t bits = ~static_cast<std::uint32_t>(key >> 32);
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

}  // namespace

// `keys` sorted ascending, as std::sort would: the keys were pushed in raster
// order, i.e. by increasing pixel index (their low half), so a stable sort on
// the high half alone (the distance) gives the same order. An LSD radix sort,
// a byte per pass, skipping a byte all keys share: std::sort was a third of
// split()'s time.
void Detector::sort_flood_keys(std::vector<std::uint64_t>& keys) {
    const std::size_t n = keys.size();
    if (n < 64) {  // a histogram per byte costs more than sorting a few keys
        std::sort(keys.begin(), keys.end());
        return;
    }
    std::uint32_t count[4][256] = {};
    for (const std::uint64_t key : keys) {
        const auto high = static_cast<std::uint32_t>(key >> 32);
        ++count[0][high & 0xff];
        ++count[1][(high >> 8) & 0xff];
        ++count[2][(high >> 16) & 0xff];
        ++count[3][high >> 24];
    }
    if (order_scratch_.size() < keys.capacity()) order_scratch_.resize(keys.capacity());  // grows with the keys
    std::uint64_t* src = keys.data();
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
    if (src != keys.data()) std::copy(src, src + n, keys.data());
}

float Detector::find_peaks(const cv::Rect& box, int label, int frame_sides, long long max_hole) {
    grow_split_buffers();
    const double maxv = distance_map(box, label, frame_sides, max_hole);
    peaks_.clear();
    clear_peaks_ = 0;
    if (maxv <= 0.0) return 0.f;
    flood_peaks(dist_(cv::Rect(0, 0, box.width + 2, box.height + 2)), maxv);
    // The clear ones first (a clear neck, a peak of kPeakFraction), then the
    // others; each the clearest neck first: peaks_[0, clear_peaks_) are the clear ones.
    const float clear_floor = kPeakFraction * static_cast<float>(maxv);
    const auto clear = [clear_floor](const Peak& p) { return p.neck < kNeckFraction && p.value >= clear_floor; };
    std::sort(peaks_.begin(), peaks_.end(), [&clear](const Peak& p, const Peak& q) {
        const bool a = clear(p), b = clear(q);
        return a != b ? a : p.neck < q.neck;
    });
    clear_peaks_ = static_cast<std::size_t>(std::count_if(peaks_.begin(), peaks_.end(), clear));
    return static_cast<float>(maxv);
}

// On the first split (or a larger ROI): 2-D buffers for any component of the
// ROI, so that a larger component does not allocate later.
void Detector::grow_split_buffers() {
    if (dist_.rows >= component_.rows && dist_.cols >= component_.cols) return;
    dist_.create(component_.size(), CV_32F);
    parts_map_.create(component_.size(), CV_8UC1);
    distance_.reserve(component_.size());
    tracer_.reserve(component_.size());
    holes_.reserve(component_.size());
    // And the flooding's per-pixel lists, for the largest component too.
    const std::size_t most = component_.total();
    order_.reserve(most);
    order_low_.reserve(most);
    order_scratch_.reserve(most);
    if (uf_.size() < most) {
        uf_.resize(most);
        uf_peak_.resize(most);
        uf_peak_value_.resize(most);
    }
}

// The distance map of component `label` (dist_, its zero-bordered view's
// size); returns its largest distance.
double Detector::distance_map(const cv::Rect& box, int label, int frame_sides, long long max_hole) {
    const int w = box.width + 2, h = box.height + 2;
    const cv::Rect r(0, 0, w, h);
    cv::Mat bin = component_view(box, label);
    cv::Mat dist = dist_(r);
    last_view_width_ = w;
    // Peaks come from the component with its small holes filled (texture
    // such as chips leaves holes in the mask that would otherwise make false
    // necks). A large hole is belt that objects touching in a ring enclose:
    // filled, it would make one blob of them.
    holes_.fill(bin, max_hole);
    // Where the frame cuts the object, it goes on: its edge row (or column)
    // is repeated into the border, so that the distance transform measures
    // to the object's visible outline only, not to the edge of the view.
    if (frame_sides & kTop) bin.row(1).copyTo(bin.row(0));
    if (frame_sides & kBottom) bin.row(h - 2).copyTo(bin.row(h - 1));
    if (frame_sides & kLeft) bin.col(1).copyTo(bin.col(0));
    if (frame_sides & kRight) bin.col(w - 2).copyTo(bin.col(w - 1));
    distance_.l2_mask5(bin, dist);
    double maxv = 0.0;
    cv::minMaxLoc(dist, nullptr, &maxv);
    return maxv;
}

// Peaks by flooding `dist` (distance_map()'s, largest distance maxv > 0)
// from the top (0-dimensional persistence): pixels enter in decreasing
// distance; when two regions meet at a saddle, the lower one is a separate
// object if the saddle is a real neck (well below its peak) and its peak is
// at least half the maximum. A plateau or a ridge (an ellipse, a notched
// disc) stays one region. Into peaks_, in the order found.
//
// A peak counts only from floor_v up (kAreaPeakFraction of the maximum), so
// once the flood is below floor_v with one region left that reaches it, no
// meeting can count any more (the lower region of every meeting is below
// floor_v): the pixels under floor_v, most of a single object's, are sorted
// and flooded only while two such regions are apart (objects that touch), and
// only until they meet. The peaks are those of the whole flood, in its order.
void Detector::flood_peaks(const cv::Mat& dist, double maxv) {
    const int w = dist.cols, h = dist.rows;
    const float floor_v = kAreaPeakFraction * static_cast<float>(maxv);
    order_.clear();
    order_low_.clear();
    for (int y = 1; y < h - 1; ++y) {
        const float* d = dist.ptr<float>(y);
        for (int x = 1; x < w - 1; ++x) {
            // Positive floats order as their bit patterns do.
            if (d[x] >= floor_v) order_.push_back(flood_key(d[x], y * w + x));
            else if (d[x] > 0.f) order_low_.push_back(flood_key(d[x], y * w + x));
        }
    }
    sort_flood_keys(order_);
    // resize (not assign) grows geometrically: a few larger components, not each one.
    const std::size_t pixels = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
    if (uf_.size() < pixels) {
        uf_.resize(pixels);
        uf_peak_.resize(pixels);
        uf_peak_value_.resize(pixels);
    }
    std::fill(uf_.begin(), uf_.begin() + static_cast<std::ptrdiff_t>(pixels), -1);  // -1: not flooded yet; else parent
    const int apart = flood(order_, w, floor_v, 0);
    if (apart > 1) {
        sort_flood_keys(order_low_);
        flood(order_low_, w, floor_v, apart);
    }
}

// A union-find of the flood's own, not detail::UnionFind (the labeller's and
// the hole filler's): pixels join as the flood reaches them (-1 until then,
// which the neighbour test below reads); a union keeps the region with the
// higher peak as the root, which holds that peak, not the smaller index; and
// i's root is followed through its unions, parents read directly, so that
// most of a pixel's eight neighbours cost no find. Only the find, path
// halving, is the same (flood_root: detail::find_root).
int Detector::flood(const std::vector<std::uint64_t>& keys, int w, float floor_v, int high_regions) {
    // uf_peak_ and uf_peak_value_ are valid at roots: the region's peak pixel and its distance.
    auto find = [this](int i) { return flood_root(i); };
    const int nb[8] = {-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1};
    for (const std::uint64_t key : keys) {
        const int i = flood_index(key);
        const float saddle = flood_value(key);
        if (saddle < floor_v && high_regions <= 1) break;  // nothing below can count (flood_peaks)
        uf_[i] = i;
        uf_peak_[i] = i;
        uf_peak_value_[i] = saddle;
        if (saddle >= floor_v) ++high_regions;
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
            if (vb >= floor_v) {
                --high_regions;  // two regions that reach floor_v meet
                if (saddle < kShallowNeckFraction * vb && vb - saddle >= kNeckMinDrop && peaks_.size() + 1 < kMaxParts)
                    peaks_.push_back({vb, cv::Point(lower % w, lower / w), saddle / vb});
            }
            uf_[b] = a;
            root = a;
        }
    }
    return high_regions;
}

int Detector::flood_root(int i) {
    return detail::find_root(uf_.data(), i);
}

Detector::Peak Detector::highest_peak() {
    const int w = last_view_width_;
    const int root = flood_root(flood_index(order_.front()));
    const int top = uf_peak_[root];
    return {uf_peak_value_[root], cv::Point(top % w, top / w), 0.f};
}

// One object by its shape alone (whatever the typical size): no clear neck,
// or one region under the clear necks holds most of the component (a figure's
// head or a bottle's cap is cut off by a clear neck; two objects side by side
// make two regions of a size). Needs find_peaks() on the same component.
bool Detector::single_by_shape(const cv::Rect& box, int label) {
    last_dominant_ = false;
    if (clear_peaks_ == 0) return true;
    shape_peaks_.assign(peaks_.begin(), peaks_.begin() + static_cast<std::ptrdiff_t>(clear_peaks_));
    shape_peaks_.push_back(highest_peak());
    cv::Mat parts = parts_map_(cv::Rect(0, 0, box.width + 2, box.height + 2));
    assign_pixels(box, label, shape_peaks_, parts);
    double total = 0.0, most = 0.0;
    for (const Part& p : parts_) {
        total += p.area;
        most = std::max(most, p.area);
    }
    last_dominant_ = total > 0.0 && most >= kSingleShare * total;
    return last_dominant_;
}

// Each pixel of the component to its nearest peak: the part map (1-based,
// zero-bordered like the component's view) and each part's figures.
void Detector::assign_pixels(const cv::Rect& box, int label, const std::vector<Peak>& peaks, cv::Mat& parts) {
    const int w = box.width + 2, h = box.height + 2;
    parts_.assign(peaks.size(), Part{0.0, 0.0, 0.0, w, h, -1, -1});
    parts.setTo(0);
    for (int y = 1; y < h - 1; ++y) {
        const int* lab = labeller_.labels().ptr<int>(box.y + y - 1) + box.x;
        std::uint8_t* pm = parts.ptr<std::uint8_t>(y);
        for (int x = 1; x < w - 1; ++x) {
            if (lab[x - 1] != label) continue;  // the component's own pixels, holes excluded
            const std::size_t best = nearest_peak(peaks, x, y);
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
}

// Nearest peak in the power distance |p - c|^2 - r^2: exact cut for
// overlapping discs (their radical axis).
std::size_t Detector::nearest_peak(const std::vector<Peak>& peaks, int x, int y) {
    std::size_t best = 0;
    float best_d = 0.f;
    for (std::size_t k = 0; k < peaks.size(); ++k) {
        const float dx = static_cast<float>(x - peaks[k].pt.x), dy = static_cast<float>(y - peaks[k].pt.y);
        const float dd = dx * dx + dy * dy - peaks[k].value * peaks[k].value;
        if (k == 0 || dd < best_d) {
            best_d = dd;
            best = k;
        }
    }
    return best;
}

bool Detector::split(const cv::Rect& box, int label, double area_px, int frame_sides, const cv::Rect& roi, double scale,
                     std::vector<Detection>& out) {
    const int w = box.width + 2, h = box.height + 2;
    last_single_ = last_dominant_ = false;
    const float typical = last_typical_;
    const long long max_hole =
        typical > 0.f ? static_cast<long long>(HoleFiller::kTextureHoleShare * typical * scale * scale) : kNoHoleLimit;
    if (find_peaks(box, label, frame_sides, max_hole) <= 0.f) return false;
    const cv::Rect r(0, 0, w, h);
    cv::Mat parts = parts_map_(r);
    last_single_ = single_by_shape(box, label);
    // Clear necks always cut; shallow ones only while the component's area
    // says it holds more objects than that (area / typical area, rounded).
    const std::size_t clear = clear_peaks_;
    const std::size_t by_area =
        typical > 0.f ? static_cast<std::size_t>(std::lround(area_px / (typical * scale * scale))) : 0;
    last_by_area_ = static_cast<int>(by_area);
    peaks_.resize(std::max(clear, std::min(peaks_.size(), by_area > 0 ? by_area - 1 : 0)));
    if (!peaks_.empty()) peaks_.push_back(highest_peak());  // the highest peak of all survives every merge
    last_peaks_ = static_cast<int>(peaks_.size());
    if (peaks_.size() < 2) return false;

    // Each pixel to its nearest peak. With no peak past the clear ones, the
    // peaks are single_by_shape()'s, in its order: its assignment stands.
    if (!(clear > 0 && peaks_.size() == clear + 1)) assign_pixels(box, label, peaks_, parts);

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
        const double unit = typical * scale * scale;
        merge_small_parts(parts, params_.split_min_part * unit, std::min(params_.split_min_part, kCutMinPart) * unit,
                          frame_sides, kGroupMax * unit, keep);
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
