// Multi-object tracker: OpenCV single-object trackers (or none) per object,
// Hungarian association with detections, motion along the belt for the parts
// the OpenCV trackers cannot see (entering and leaving the frame).
//
// Choices beyond tracker.hpp's contract:
//  - With an OpenCV tracker, a track's box keeps the size of the detection it
//    was last set from (full-resolution precision); the tracker only supplies
//    the displacement (centre of its box, downscaled px -> full resolution).
//  - KCF gets one update on its init frame: OpenCV's KCF learns its model on
//    its first update, and would otherwise learn it one frame's motion late and
//    lag behind the object for good.
//  - A box set from a detection cut by the entry edge is "partial" until a
//    detection clear of that edge replaces it (always, whatever grow_ratio):
//    a partial box is never whole, even once a tracker has moved it off the
//    edge. While partial (or touching the entry edge), a failed tracker update
//    still counts as a miss but the tracker is re-initialised on the predicted
//    box: an entering object changes its look as more of it comes into view.
//  - A track without an OpenCV tracker (box under 4 downscaled px, or init
//    failed) moves like in None mode and gets a miss on every detection frame
//    it is not matched on; a matched detection re-initialises the tracker.
//  - Leaving boxes (coasting) move at >= 1 px/frame so that they always leave.
//  - Velocities are clamped to >= 0 along the belt for prediction.
//  - A detection touching both the entry and the exit edge starts no track:
//    it is a fixed structure (rail, belt edge), not an object passing by.
//  - An unmatched detection mostly (> 50 %) inside a live track's box starts
//    no track.
//  - Duplicates: a confirmed track beats an unconfirmed one, between confirmed
//    tracks the lower id stays, otherwise more hits then older. A confirmed
//    track dropped as a duplicate is finished as Lost, so every confirmed id
//    gets exactly one FinishedTrack.
//  - update() with detections == nullptr in None mode: tracks move, nobody is
//    matched, nobody gets a miss.
//  - Order within a frame: move, match, hits/misses/velocity/confirmation, end
//    (Exited, Lost), new tracks, duplicates, history. A track's history ends
//    with the last frame it was still live (not the frame it was found gone).
#include "conveyor_qc/tracker.hpp"

#include "conveyor_qc/assignment.hpp"
#include "conveyor_qc/crossing.hpp"
#include "params_check.hpp"

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/tracking.hpp>
#include <opencv2/tracking/tracking_legacy.hpp>
#include <opencv2/video/tracking.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <sstream>

namespace cqc {

// ---------------------------------------------------------------------------
// Parameters

namespace {}  // namespace

const char* to_string(TrackerKind k) {
    switch (k) {
        case TrackerKind::None:
            return "none";
        case TrackerKind::KCF:
            return "kcf";
        case TrackerKind::CSRT:
            return "csrt";
        case TrackerKind::MOSSE:
            return "mosse";
        case TrackerKind::MedianFlow:
            return "medianflow";
        case TrackerKind::MIL:
            return "mil";
    }
    return "none";
}

TrackerKind tracker_kind_from_string(const std::string& s) {
    std::string v;
    v.reserve(s.size());
    for (unsigned char c : s) {
        if (std::isspace(c) || c == '_' || c == '-') continue;  // "median_flow", " KCF "
        v.push_back(static_cast<char>(std::tolower(c)));
    }
    for (TrackerKind k : kTrackerKinds) {
        if (v == to_string(k)) return k;
    }
    throw ParamError("track.kind must be one of " + enum_names(kTrackerKinds) + ", got '" + s + "'");
}

void TrackParams::validate() const {
    // The enums before the ranges: no config can set one out of range (they are parsed from names).
    switch (kind) {
        case TrackerKind::None:
        case TrackerKind::KCF:
        case TrackerKind::CSRT:
        case TrackerKind::MOSSE:
        case TrackerKind::MedianFlow:
        case TrackerKind::MIL:
            break;
        default:
            throw ParamError("track.kind must be one of " + enum_names(kTrackerKinds) + ", got " +
                             std::to_string(static_cast<int>(kind)));
    }
    switch (direction) {
        case Direction::LeftToRight:
        case Direction::RightToLeft:
        case Direction::TopToBottom:
        case Direction::BottomToTop:
        case Direction::Auto:
            break;
        default:
            throw ParamError(
                "track.direction must be one of auto, left_to_right, right_to_left, top_to_bottom, "
                "bottom_to_top, got " +
                std::to_string(static_cast<int>(direction)));
    }
    for (const ParamRange& r : ranges()) r.check("track");
}

// ---------------------------------------------------------------------------
// Implementation

namespace {

constexpr float kVelocityAlpha = 0.4f;    // EMA weight of a new velocity sample
constexpr int kMinVelocitySamples = 2;    // below this, a track moves at the belt velocity
constexpr float kMinCoastVelocity = 1.f;  // px/frame: a leaving box always makes progress
constexpr int kMinTrackerSide = 4;        // smallest box side (downscaled px) an OpenCV tracker gets
// MIL draws random Haar features inside the box until one is valid: in a box
// of 4x4 px none is, and OpenCV 4.6's loop never ends (rand() forever, found by
// the bad-input tests). Below this side MIL objects move like in None mode.
constexpr int kMinMilSide = 8;
constexpr float kCoveredFraction = 0.5f;  // a detection this much inside a live box starts no track
constexpr size_t kHistoryReserve = 256;   // history points reserved when a track starts
// Histories kept for reuse (recycle()): more than the tracks a frame holds at
// once; beyond that a returned history is freed.
constexpr size_t kSpareHistories = 64;

cv::Point2f centre(const cv::Rect2f& b) {
    return {b.x + 0.5f * b.width, b.y + 0.5f * b.height};
}

float area(const cv::Rect2f& b) {
    return b.width > 0 && b.height > 0 ? b.width * b.height : 0.f;
}

float iou(const cv::Rect2f& a, const cv::Rect2f& b) {
    const float i = area(a & b);
    const float u = area(a) + area(b) - i;
    return u > 0 ? i / u : 0.f;
}

cv::Ptr<cv::Tracker> make_opencv_tracker(TrackerKind kind) {
    switch (kind) {
        case TrackerKind::KCF: {
            // Grey features only: OpenCV's default adds colour names (CN)
            // compressed by PCA, which costs about 3x per update, and products
            // differ from the belt by brightness far more than by hue. (Other
            // grey-only settings crash in OpenCV 4.6 and 5.0: without a PCA
            // descriptor, or with compressed_size above the 1 channel of GRAY.)
            cv::TrackerKCF::Params p;
            p.desc_npca = cv::TrackerKCF::GRAY;
            p.desc_pca = cv::TrackerKCF::GRAY;
            p.compress_feature = false;
            p.compressed_size = 1;
            return cv::TrackerKCF::create(p);
        }
        case TrackerKind::CSRT:
            return cv::TrackerCSRT::create();
        case TrackerKind::MIL:
            return cv::TrackerMIL::create();
        case TrackerKind::MOSSE:
            return cv::legacy::upgradeTrackingAPI(cv::legacy::TrackerMOSSE::create());
        case TrackerKind::MedianFlow:
            return cv::legacy::upgradeTrackingAPI(cv::legacy::TrackerMedianFlow::create());
        case TrackerKind::None:
            break;
    }
    return {};
}

class MultiTrackerImpl final : public MultiTracker {
  public:
    explicit MultiTrackerImpl(const TrackParams& p) : params_(p) {
        live_.reserve(32);
        states_.reserve(32);
        finished_.reserve(16);
        spare_histories_.reserve(kSpareHistories);
        row_to_col_.reserve(32);
        det_boxes_.reserve(64);
        det_matched_.reserve(64);
        work_.reserve(32);
        work_ok_.reserve(32);
        work_rect_.reserve(32);
        vel_scratch_.reserve(32);
        cost_buf_.create(32, 64);
    }

    void update(int frame_index, const cv::Mat& small, cv::Size full_size,
                const std::vector<Detection>* detections) override;

    bool is_detection_frame(int frame_index) const override { return frame_index % params_.detect_every == 0; }
    const std::vector<TrackState>& tracks() const override { return states_; }
    void take_finished(std::vector<FinishedTrack>& out) override {
        for (auto& f : finished_) out.push_back(std::move(f));
        finished_.clear();
    }
    void recycle(std::vector<FinishedTrack>& done) override {
        for (auto& f : done) give_back(f.history);
        done.clear();
    }
    void finish_all() override {
        for (auto& t : live_) finish(t, FinishedTrack::End::StreamEnd);
        live_.clear();
        states_.clear();
    }
    cv::Rect detection_roi(cv::Size size) const override {
        if (params_.kind == TrackerKind::None || !had_detection_frame_) return cv::Rect();
        const cv::Rect frame_rect(0, 0, size.width, size.height);
        BeltAxis small_axis{params_.direction, size};
        cv::Rect roi = small_axis.entry_strip(params_.entry_strip) & frame_rect;
        if (frame_.width <= 0) return roi;
        const float fx = static_cast<float>(size.width) / frame_.width;
        const float fy = static_cast<float>(size.height) / frame_.height;
        for (const auto& t : live_) {
            if (!t.partial_entry) continue;
            // Half a box of slack on every side: it moved since the last frame.
            const cv::Rect2f& b = t.box;
            const cv::Rect grown(cvFloor((b.x - 0.5f * b.width) * fx), cvFloor((b.y - 0.5f * b.height) * fy),
                                 cvCeil(2.f * b.width * fx) + 1, cvCeil(2.f * b.height * fy) + 1);
            roi |= grown & frame_rect;
        }
        return roi;
    }
    int confirmed_count() const override { return next_id_; }
    void hold_confirmation(bool held) override { held_ = held; }
    const TrackParams& params() const override { return params_; }

  private:
    struct Track {
        int uid = 0;  // creation order (age on ties)
        int id = 0;   // 0 until confirmed
        bool confirmed = false;
        cv::Rect2f box;  // clipped to the frame, full resolution
        // The box came from a detection cut by the entry edge and has not been
        // replaced by a complete one since: its hidden part is unknown, so it
        // is never "whole" even after an OpenCV tracker moved it off the edge.
        bool partial_entry = false;
        int hits = 0, misses = 0;
        int first_frame = 0;
        // per-frame flags
        bool seen = false, missed = false, detected = false, dead = false;
        bool best_updated = false;
        // motion along the belt (full-res px per frame)
        float vel = 0.f;
        int vel_samples = 0;
        bool vel_from_belt = false;  // vel started from the global belt velocity
        cv::Rect2f obs_box;          // last observed box and its frame (velocity samples)
        int obs_frame = -1;
        // OpenCV tracker (tracker modes)
        cv::Ptr<cv::Tracker> tracker;
        cv::Rect trk_rect;      // tracker's last box, downscaled px
        bool coasting = false;  // touched the exit edge: moved by velocity until it has left
        // output
        std::vector<TrackPoint> history;
        cv::Rect2f best_box;
        float best_area = -1.f;
        int best_frame = 0;
        bool ever_whole = false;
        Detection shape;
        bool has_shape = false;
    };

    // --- geometry along the belt -------------------------------------------
    float near_of(const cv::Rect2f& b) const {
        float n = 0.f, f = 0.f;
        axis_.span(b, n, f);
        return n;
    }
    float far_of(const cv::Rect2f& b) const {
        float n = 0.f, f = 0.f;
        axis_.span(b, n, f);
        return f;
    }
    float margin() const { return static_cast<float>(params_.edge_margin); }
    bool touches_entry(const cv::Rect2f& b) const { return near_of(b) <= margin(); }
    bool touches_exit(const cv::Rect2f& b) const { return far_of(b) >= axis_.length() - margin(); }
    bool touches_any_edge(const cv::Rect2f& b) const {
        const float m = margin();
        return b.x <= m || b.y <= m || b.x + b.width >= frame_.width - m || b.y + b.height >= frame_.height - m;
    }
    // Position of a point along the belt, from the entry edge.
    float belt_pos(const cv::Point2f& p) const {
        switch (axis_.direction) {
            case Direction::LeftToRight:
                return p.x;
            case Direction::RightToLeft:
                return frame_.width - p.x;
            case Direction::TopToBottom:
                return p.y;
            case Direction::BottomToTop:
                return frame_.height - p.y;

            case Direction::Auto:
                break;  // refused by create()
        }
        return p.x;
    }
    bool in_entry_strip(const cv::Point2f& p) const {
        return belt_pos(p) <= static_cast<float>(params_.entry_strip) * axis_.length();
    }
    // `b` with its interval along the belt replaced by [n, f].
    cv::Rect2f with_span(const cv::Rect2f& b, float n, float f) const {
        cv::Rect2f r = b;
        const float len = std::max(0.f, f - n);
        switch (axis_.direction) {
            case Direction::LeftToRight:
                r.x = n;
                r.width = len;
                break;
            case Direction::RightToLeft:
                r.x = frame_.width - f;
                r.width = len;
                break;
            case Direction::TopToBottom:
                r.y = n;
                r.height = len;
                break;
            case Direction::BottomToTop:
                r.y = frame_.height - f;
                r.height = len;
                break;

            case Direction::Auto:
                break;  // refused by create()
        }
        return r;
    }
    cv::Rect2f clip(const cv::Rect2f& b) const {
        const cv::Rect2f r =
            b & cv::Rect2f(0.f, 0.f, static_cast<float>(frame_.width), static_cast<float>(frame_.height));
        return (r.width > 0 && r.height > 0) ? r : cv::Rect2f();
    }
    // Box moved `d` px along the belt. An edge cut by the entry border stays on
    // it (only the leading edge moves while the object enters); an edge cut by
    // the exit border stays on it (only the trailing edge moves while it leaves).
    cv::Rect2f predict(const cv::Rect2f& b, float d) const {
        if (area(b) <= 0.f) return b;
        float n = 0.f, f = 0.f;
        axis_.span(b, n, f);
        const float len = axis_.length();
        if (f >= len - margin()) {
            n += d;
        } else if (n <= margin()) {
            f += d;
        } else {
            n += d;
            f += d;
        }
        return clip(with_span(b, std::max(n, 0.f), std::min(f, len)));
    }
    // Whether the box has left through the exit edge.
    bool exited(const cv::Rect2f& b) const { return area(b) <= 0.f || near_of(b) >= axis_.length() - margin(); }
    // Displacement along the belt between two observed boxes, from an edge not
    // cut by the frame border in either (centre when neither is cut).
    bool belt_shift(const cv::Rect2f& a, const cv::Rect2f& b, float& shift) const {
        if (area(a) <= 0.f || area(b) <= 0.f) return false;
        float an = 0.f, af = 0.f, bn = 0.f, bf = 0.f;
        axis_.span(a, an, af);
        axis_.span(b, bn, bf);
        const float m = margin(), len = axis_.length();
        const bool near_free = an > m && bn > m;
        const bool far_free = af < len - m && bf < len - m;
        // Same length: the centre. A box that changed length along the belt (a
        // partial view replaced by a complete one) keeps its leading edge.
        const bool same_length = std::abs((bf - bn) - (af - an)) <= 2.f * std::max(1.f, m);
        if (near_free && far_free && same_length) shift = 0.5f * ((bn + bf) - (an + af));
        else if (far_free) shift = bf - af;   // entering: leading edge
        else if (near_free) shift = bn - an;  // leaving: trailing edge
        else return false;
        return true;
    }
    float velocity(const Track& t) const {
        const float v = (t.vel_samples >= kMinVelocitySamples || !belt_known_) ? t.vel : belt_vel_;
        return std::max(v, 0.f);  // objects only move along the belt
    }

    // --- OpenCV trackers ------------------------------------------------------
    bool init_tracker(Track& t, const cv::Mat& small) {
        t.tracker.release();
        const cv::Rect2f& b = t.box;
        const cv::Rect r = cv::Rect(cv::Point(cvFloor(b.x * sx_), cvFloor(b.y * sy_)),
                                    cv::Point(cvCeil((b.x + b.width) * sx_), cvCeil((b.y + b.height) * sy_))) &
                           cv::Rect(0, 0, small.cols, small.rows);
        const int min_side = params_.kind == TrackerKind::MIL ? kMinMilSide : kMinTrackerSide;
        if (r.width < min_side || r.height < min_side) return false;
        cv::Ptr<cv::Tracker> trk = make_opencv_tracker(params_.kind);
        try {
            trk->init(small, r);
            // OpenCV's KCF learns its model on the first update, at the box it
            // was given: without this update on the init frame it would learn
            // it on the next frame, one frame's motion behind, and lag forever.
            if (params_.kind == TrackerKind::KCF) {
                cv::Rect warm = r;
                trk->update(small, warm);
            }
        } catch (const std::exception&) {  // cv::Exception: e.g. a box OpenCV cannot use
            return false;
        }
        t.tracker = trk;
        t.trk_rect = r;
        return true;
    }
    void run_tracker(size_t k) {
        Track& t = live_[static_cast<size_t>(work_[k])];
        cv::Rect r = t.trk_rect;
        bool ok = false;
        try {
            ok = t.tracker->update(*small_, r);
        } catch (const std::exception&) {  // never let it out of a parallel body
            ok = false;
        }
        work_ok_[k] = ok && r.width > 0 && r.height > 0;
        work_rect_[k] = r;
    }

    // --- bookkeeping ----------------------------------------------------------
    void finish(Track& t, FinishedTrack::End end) {
        t.dead = true;
        if (end != FinishedTrack::End::Lost) confirm(t, true);
        if (!t.confirmed) {  // never reported: dropped silently
            give_back(t.history);
            return;
        }
        FinishedTrack f;
        f.key = t.uid;
        f.id = t.id;
        f.first_frame = t.first_frame;
        f.last_frame = t.history.empty() ? t.first_frame : t.history.back().frame;
        f.history = std::move(t.history);
        f.best_box = t.best_box;
        f.best_frame = t.best_frame;
        f.ever_whole = t.ever_whole;
        f.shape = t.shape;
        f.motion = measure_motion(f.history, f.best_box, axis_, margin(), belt_known_ ? belt_vel_ : velocity(t));
        f.end = end;
        finished_.push_back(std::move(f));
    }
    void remove_dead() {
        live_.erase(std::remove_if(live_.begin(), live_.end(), [](const Track& t) { return t.dead; }), live_.end());
    }
    // Counted once seen on min_hits frames and wholly in view: pieces of an
    // object that enters in fragments never become whole, merge into one
    // detection and are lost, uncounted. An object that is never whole (wider
    // than the view, riding along a side edge, or in view when the stream
    // ends) is counted when it leaves or the stream ends.
    void confirm(Track& t, bool ending = false) {
        if (held_) return;
        if (!t.confirmed && t.hits >= params_.min_hits && (t.ever_whole || ending)) {
            t.confirmed = true;
            t.id = ++next_id_;
        }
    }
    void take_shape(Track& t, const Detection& d) {
        if (!t.has_shape || d.area > t.shape.area) {
            t.shape = d;
            t.has_shape = true;
        }
    }
    void add_velocity_sample(Track& t, float s) {
        if (t.vel_samples == 0 && !t.vel_from_belt) t.vel = s;
        else t.vel += kVelocityAlpha * (s - t.vel);
        ++t.vel_samples;
    }
    void update_belt_velocity() {
        vel_scratch_.clear();
        for (const auto& t : live_)
            if (t.confirmed && t.vel_samples >= kMinVelocitySamples) vel_scratch_.push_back(t.vel);
        if (vel_scratch_.empty()) return;  // keep the last estimate
        const size_t mid = vel_scratch_.size() / 2;
        std::nth_element(vel_scratch_.begin(), vel_scratch_.begin() + static_cast<std::ptrdiff_t>(mid),
                         vel_scratch_.end());
        float med = vel_scratch_[mid];
        if (vel_scratch_.size() % 2 == 0) {
            const float lower =
                *std::max_element(vel_scratch_.begin(), vel_scratch_.begin() + static_cast<std::ptrdiff_t>(mid));
            med = 0.5f * (med + lower);
        }
        belt_vel_ = med;
        belt_known_ = true;
    }

    void move_tracks(const cv::Mat& small, int gap);
    void associate(const std::vector<Detection>& dets, const cv::Mat& small);
    void start_tracks(int frame_index, const std::vector<Detection>& dets, const cv::Mat& small);
    void drop_duplicates();
    void record(int frame_index);

    TrackParams params_;
    BeltAxis axis_;
    cv::Size frame_;
    double sx_ = 1.0, sy_ = 1.0;  // downscaled px per full-resolution px
    const cv::Mat* small_ = nullptr;
    int last_frame_ = -1;
    bool had_detection_frame_ = false;
    bool held_ = false;  // hold_confirmation()
    int next_id_ = 0;
    int next_uid_ = 0;
    float belt_vel_ = 0.f;
    bool belt_known_ = false;

    std::vector<Track> live_;
    std::vector<TrackState> states_;
    std::vector<FinishedTrack> finished_;
    std::vector<std::vector<TrackPoint>> spare_histories_;  // given back by recycle(), emptied

    void give_back(std::vector<TrackPoint>& history) {
        if (history.capacity() == 0 || spare_histories_.size() >= kSpareHistories) return;
        history.clear();
        spare_histories_.push_back(std::move(history));
    }
    // per-frame buffers
    cv::Mat_<float> cost_buf_;
    AssignmentWorkspace assign_ws_;
    std::vector<int> row_to_col_;
    std::vector<cv::Rect2f> det_boxes_;
    std::vector<char> det_matched_;
    std::vector<int> work_;
    std::vector<char> work_ok_;
    std::vector<cv::Rect> work_rect_;
    std::vector<float> vel_scratch_;
};

void MultiTrackerImpl::update(int frame_index, const cv::Mat& small, cv::Size full_size,
                              const std::vector<Detection>* detections) {
    if (full_size.width <= 0 || full_size.height <= 0)
        throw InputError("tracker: full-resolution frame size must be positive");
    if (frame_.width > 0 && full_size != frame_)
        throw InputError("tracker: frame size changed mid-stream: " + std::to_string(full_size.width) + "x" +
                         std::to_string(full_size.height) + " after " + std::to_string(frame_.width) + "x" +
                         std::to_string(frame_.height));
    const bool opencv = params_.kind != TrackerKind::None;
    if (opencv && small.empty()) throw InputError("tracker: the downscaled frame is empty");
    frame_ = full_size;
    axis_ = BeltAxis{params_.direction, full_size};
    if (opencv) {
        sx_ = static_cast<double>(small.cols) / full_size.width;
        sy_ = static_cast<double>(small.rows) / full_size.height;
    }
    const int gap = last_frame_ < 0 ? 1 : std::max(1, frame_index - last_frame_);
    last_frame_ = frame_index;

    for (auto& t : live_) t.seen = t.missed = t.detected = false;

    // 1. Move every live track.
    move_tracks(small, gap);

    // 2. Match detections.
    if (detections) associate(*detections, small);

    // 3. Hits, misses, velocity, confirmation.
    for (auto& t : live_) {
        if (t.seen) {
            ++t.hits;
            t.misses = 0;
            float s = 0.f;
            if (t.obs_frame >= 0 && belt_shift(t.obs_box, t.box, s))
                add_velocity_sample(t, s / static_cast<float>(std::max(1, frame_index - t.obs_frame)));
            t.obs_box = t.box;
            t.obs_frame = frame_index;
        } else if (t.missed) {
            ++t.misses;
        }
        confirm(t);
    }
    update_belt_velocity();

    // 4. End the tracks that left or were lost.
    for (auto& t : live_) {
        if (exited(t.box)) {
            finish(t, FinishedTrack::End::Exited);
        } else if (t.misses > params_.max_misses) {
            // Lost at the exit edge, it was leaving: the last sliver of an
            // object is smaller than any detection, and at 1-2 px a frame it
            // takes longer than max_misses to go. One never wholly in view
            // (cut along a side edge) is counted as it leaves, like one that
            // is seen to leave.
            if (touches_exit(t.box)) confirm(t, true);
            finish(t, FinishedTrack::End::Lost);
        }
    }
    remove_dead();

    // 5. New tracks from unmatched detections.
    if (detections) {
        start_tracks(frame_index, *detections, small);
        had_detection_frame_ = true;
    }

    // 6. Duplicates.
    drop_duplicates();

    // 7. History, best box, caller's view.
    record(frame_index);
}

void MultiTrackerImpl::move_tracks(const cv::Mat& small, int gap) {
    if (params_.kind == TrackerKind::None) {
        for (auto& t : live_) t.box = predict(t.box, velocity(t) * static_cast<float>(gap));
        return;
    }

    // OpenCV trackers, independent of each other: update them in parallel.
    work_.clear();
    for (size_t i = 0; i < live_.size(); ++i)
        if (live_[i].tracker && !live_[i].coasting) work_.push_back(static_cast<int>(i));
    work_ok_.resize(work_.size());
    work_rect_.resize(work_.size());
    small_ = &small;
    if (params_.parallel && work_.size() > 1) {
        cv::parallel_for_(cv::Range(0, static_cast<int>(work_.size())), [this](const cv::Range& r) {
            for (int k = r.start; k < r.end; ++k) run_tracker(static_cast<size_t>(k));
        });
    } else {
        for (size_t k = 0; k < work_.size(); ++k) run_tracker(k);
    }
    small_ = nullptr;

    size_t k = 0;
    for (size_t i = 0; i < live_.size(); ++i) {
        Track& t = live_[i];
        const bool updated = k < work_.size() && work_[k] == static_cast<int>(i);
        if (updated && work_ok_[k]) {
            const cv::Rect& r = work_rect_[k];
            const cv::Rect& p = t.trk_rect;
            const float dx = static_cast<float>(((r.x - p.x) + 0.5 * (r.width - p.width)) / sx_);
            const float dy = static_cast<float>(((r.y - p.y) + 0.5 * (r.height - p.height)) / sy_);
            t.trk_rect = r;
            // The box keeps the detection's size (full-resolution precision); the
            // tracker only says how far it moved.
            t.box = clip(cv::Rect2f(t.box.x + dx, t.box.y + dy, t.box.width, t.box.height));
            t.seen = true;
        } else {
            // Failed update (a miss), no tracker yet (box too small to follow),
            // or leaving: move along the belt.
            float v = velocity(t);
            if (t.coasting) v = std::max(v, kMinCoastVelocity);
            t.box = predict(t.box, v * static_cast<float>(gap));
            if (updated) {
                t.missed = true;
                // An object still entering changes its look from frame to frame
                // (more of it comes into view) and the tracker's model of its
                // first, partial view stops matching: start again from where
                // the belt has carried it.
                if (t.partial_entry || touches_entry(t.box)) init_tracker(t, small);
            }
        }
        if (updated) ++k;
        // OpenCV trackers keep saying "found" after the object has gone: from
        // the exit edge on, the box only follows the belt.
        if (!t.coasting && area(t.box) > 0.f && touches_exit(t.box)) {
            t.coasting = true;
            t.tracker.release();
        }
    }
}

void MultiTrackerImpl::associate(const std::vector<Detection>& dets, const cv::Mat& small) {
    const bool opencv = params_.kind != TrackerKind::None;
    const size_t nd = dets.size(), nt = live_.size();
    det_boxes_.clear();
    for (const auto& d : dets) det_boxes_.push_back(clip(d.box));
    det_matched_.assign(nd, 0);
    row_to_col_.assign(nt, -1);

    if (nd > 0 && nt > 0) {
        if (cost_buf_.rows < static_cast<int>(nt) || cost_buf_.cols < static_cast<int>(nd))
            cost_buf_.create(std::max(cost_buf_.rows, static_cast<int>(nt) * 2),
                             std::max(cost_buf_.cols, static_cast<int>(nd) * 2));
        cv::Mat_<float> cost = cost_buf_(cv::Rect(0, 0, static_cast<int>(nd), static_cast<int>(nt)));
        for (size_t i = 0; i < nt; ++i) {
            float* row = cost[static_cast<int>(i)];
            const bool has_box = area(live_[i].box) > 0.f;
            const cv::Point2f c = centre(live_[i].box);
            for (size_t j = 0; j < nd; ++j) {
                const cv::Point2f dc = dets[j].centroid - c;
                row[j] = has_box ? std::sqrt(dc.x * dc.x + dc.y * dc.y) : std::numeric_limits<float>::infinity();
            }
        }
        assign(cost, static_cast<float>(params_.max_distance), row_to_col_, assign_ws_);
    }

    const float len = static_cast<float>(params_.entry_strip) * axis_.length();
    for (size_t i = 0; i < nt; ++i) {
        Track& t = live_[i];
        const int j = row_to_col_[i];
        if (j < 0) {
            // With OpenCV trackers, only the entry strip is searched: a track is
            // missed there only when it has no tracker to see it with.
            if (!opencv || (!t.tracker && !t.coasting)) t.missed = true;
            continue;
        }
        det_matched_[static_cast<size_t>(j)] = 1;
        const Detection& d = dets[static_cast<size_t>(j)];
        const cv::Rect2f& db = det_boxes_[static_cast<size_t>(j)];
        const bool tracker_failed = t.missed;  // failed OpenCV update this frame
        t.seen = t.detected = true;
        t.missed = false;
        take_shape(t, d);
        if (!opencv || t.coasting) {
            t.box = db;
            t.partial_entry = touches_entry(db);
            continue;
        }
        const bool entering = t.partial_entry || touches_entry(t.box) || belt_pos(centre(t.box)) <= len;
        const float box_area = area(t.box), det_area = area(db);
        const bool larger = det_area > static_cast<float>(params_.grow_ratio) * box_area;
        // The first complete view of an object known only in part so far.
        const bool completes = t.partial_entry && !touches_entry(db);
        const bool tracker_lost = !t.tracker || tracker_failed;
        if (tracker_lost || completes || (entering && larger)) {
            t.box = db;
            t.partial_entry = touches_entry(db);
            init_tracker(t, small);
            if (touches_exit(t.box)) {
                t.coasting = true;
                t.tracker.release();
            }
        }
    }
    // A failed OpenCV update stays a miss only when no detection saw the object.
}

void MultiTrackerImpl::start_tracks(int frame_index, const std::vector<Detection>& dets, const cv::Mat& small) {
    const bool opencv = params_.kind != TrackerKind::None;
    for (size_t j = 0; j < dets.size(); ++j) {
        if (det_matched_[j]) continue;
        const Detection& d = dets[j];
        const cv::Rect2f& db = det_boxes_[j];
        if (area(db) <= 0.f || exited(db)) continue;
        // Something that spans the frame from the entry edge to the exit edge
        // (a rail, the belt's own edge) can neither enter nor leave: not an object.
        if (touches_entry(db) && touches_exit(db)) continue;
        // Objects already on the belt when the stream starts are taken
        // anywhere; afterwards objects appear in the entry strip only.
        if (had_detection_frame_ && !in_entry_strip(d.centroid)) continue;
        // A piece of an object a live track already follows.
        bool covered = false;
        for (const auto& t : live_)
            if (area(t.box & db) > kCoveredFraction * area(db)) {
                covered = true;
                break;
            }
        if (covered) continue;

        live_.emplace_back();
        Track& t = live_.back();
        t.uid = next_uid_++;
        t.box = db;
        t.partial_entry = touches_entry(db);
        t.first_frame = frame_index;
        t.hits = 1;
        t.seen = t.detected = true;
        t.vel = belt_known_ ? belt_vel_ : 0.f;
        t.vel_from_belt = belt_known_;
        t.obs_box = db;
        t.obs_frame = frame_index;
        t.shape = d;
        t.has_shape = true;
        // The history leaves with the finished track (the caller's) and
        // comes back with recycle(): a spare one if there is one, else one
        // allocation, sized for a whole crossing of the frame (1280 px at
        // 8 px a frame is 160 frames) so that it rarely grows.
        if (!spare_histories_.empty()) {
            t.history = std::move(spare_histories_.back());
            spare_histories_.pop_back();
        } else {
            t.history.reserve(kHistoryReserve);
        }
        if (opencv) {
            if (touches_exit(db)) t.coasting = true;
            else init_tracker(t, small);
        }
        confirm(t);
    }
}

void MultiTrackerImpl::drop_duplicates() {
    const float thr = static_cast<float>(params_.duplicate_iou);
    bool any = false;
    for (size_t a = 0; a < live_.size(); ++a) {
        if (live_[a].dead) continue;
        for (size_t b = a + 1; b < live_.size(); ++b) {
            Track& ta = live_[a];
            Track& tb = live_[b];
            if (tb.dead || iou(ta.box, tb.box) <= thr) continue;
            // Keep: a confirmed track over an unconfirmed one; between confirmed
            // tracks the older (lower id); otherwise more hits, then older.
            bool keep_a;
            if (ta.confirmed != tb.confirmed) keep_a = ta.confirmed;
            else if (ta.confirmed) keep_a = ta.id < tb.id;
            else if (ta.hits != tb.hits) keep_a = ta.hits > tb.hits;
            else keep_a = ta.uid < tb.uid;
            Track& keep = keep_a ? ta : tb;
            Track& drop = keep_a ? tb : ta;
            keep.detected = keep.detected || drop.detected;
            if (drop.has_shape) take_shape(keep, drop.shape);
            // A confirmed duplicate was already counted: it ends (Lost) so that
            // every confirmed id gets exactly one finished track.
            finish(drop, FinishedTrack::End::Lost);
            any = true;
            if (!keep_a) break;  // `a` is gone
        }
    }
    if (any) remove_dead();
}

void MultiTrackerImpl::record(int frame_index) {
    states_.clear();
    for (auto& t : live_) {
        t.history.push_back({frame_index, t.box, t.seen});
        const bool whole = area(t.box) > 0.f && !touches_any_edge(t.box) && !t.partial_entry;
        const float a = area(t.box);
        t.best_updated = false;
        if ((whole && (!t.ever_whole || a > t.best_area)) || (!whole && !t.ever_whole && a > t.best_area)) {
            t.best_box = t.box;
            t.best_area = a;
            t.best_frame = frame_index;
            t.ever_whole = t.ever_whole || whole;
            t.best_updated = true;
        }
        confirm(t);
        TrackState s;
        s.key = t.uid;
        s.id = t.id;
        s.box = t.box;
        s.confirmed = t.confirmed;
        s.whole = whole;
        s.best_updated = t.best_updated;
        s.detected = t.detected;
        s.entering = t.partial_entry;
        states_.push_back(s);
    }
}

}  // namespace

std::unique_ptr<MultiTracker> MultiTracker::create(const TrackParams& params) {
    params.validate();
    if (params.direction == Direction::Auto)
        throw ParamError(
            "track.direction = auto is read from the footage by the Pipeline; a MultiTracker on its "
            "own needs one of left_to_right, right_to_left, top_to_bottom, bottom_to_top");
    return std::make_unique<MultiTrackerImpl>(params);
}

}  // namespace cqc
