// Tests of the assignment and of MultiTracker, driven by synthetic detections
// computed from frames drawn here: a light belt with dark discs moving along it.
#include "check.hpp"

#include "conveyor_qc/assignment.hpp"
#include "conveyor_qc/tracker.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace cqc;

namespace {

// ---------------------------------------------------------------------------
// Scene

struct Disc {
    cv::Point2f start;  // centre at frame 0 (may be outside the frame)
    cv::Point2f vel;    // px per frame
    int radius = 25;
    cv::Point2f at(int f) const { return start + vel * static_cast<float>(f); }
};

const cv::Size kFrame(640, 360);

// The tracker needs a real direction (auto is the Pipeline's job); these
// scenes move left to right unless they say otherwise.
TrackParams ltr_params() {
    TrackParams p;
    p.direction = Direction::LeftToRight;
    return p;
}

void draw(const std::vector<Disc>& discs, int f, cv::Size size, cv::Mat& img) {
    img.create(size, CV_8UC3);
    img.setTo(cv::Scalar(200, 200, 200));
    for (const auto& d : discs) {
        const cv::Point2f cf = d.at(f);
        const cv::Point c(cvRound(cf.x), cvRound(cf.y));
        const int r = d.radius;
        cv::circle(img, c, r, cv::Scalar(40, 40, 40), cv::FILLED, cv::LINE_8);
        // Some texture for the trackers, still darker than the threshold: the
        // mask stays a full disc.
        cv::circle(img, c + cv::Point(r / 3, -r / 4), r / 3, cv::Scalar(95, 95, 95), cv::FILLED, cv::LINE_8);
        cv::line(img, c + cv::Point(-r * 2 / 3, r / 3), c + cv::Point(r / 4, r * 2 / 3), cv::Scalar(90, 90, 90), 3);
    }
}

// Connected components of the dark pixels, like the core's detector: inside
// `roi` when it is not empty, dropping components cut by a ROI side that is not
// the frame border.
void detect(const cv::Mat& img, const cv::Rect& roi, std::vector<Detection>& out) {
    out.clear();
    cv::Mat gray, mask, labels, stats, centroids;
    cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
    mask = gray < 100;
    const cv::Rect r = roi.empty() ? cv::Rect(0, 0, img.cols, img.rows) : roi;
    cv::Mat sub = mask(r);
    const int n = cv::connectedComponentsWithStats(sub, labels, stats, centroids, 8, CV_32S);
    for (int i = 1; i < n; ++i) {
        const int x = stats.at<int>(i, cv::CC_STAT_LEFT) + r.x, y = stats.at<int>(i, cv::CC_STAT_TOP) + r.y;
        const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
        if ((x == r.x && r.x > 0) || (y == r.y && r.y > 0) || (x + w == r.br().x && r.br().x < img.cols) ||
            (y + h == r.br().y && r.br().y < img.rows))
            continue;  // cut by the strip's inner side
        Detection d;
        d.box = cv::Rect2f(static_cast<float>(x), static_cast<float>(y), static_cast<float>(w), static_cast<float>(h));
        d.centroid = cv::Point2f(static_cast<float>(centroids.at<double>(i, 0) + r.x),
                                 static_cast<float>(centroids.at<double>(i, 1) + r.y));
        d.area = static_cast<float>(stats.at<int>(i, cv::CC_STAT_AREA));
        d.solidity = 1.f;
        d.circularity = 1.f;
        out.push_back(d);
    }
}

// ---------------------------------------------------------------------------
// Running a tracker over a scene

struct Run {
    std::vector<FinishedTrack> finished;
    int confirmed = 0;
    int live_after_exit = 0;        // live tracks once every disc has left
    std::map<int, int> id_to_disc;  // confirmed id -> disc it followed
    std::string error;              // first inconsistency found while running
};

struct Scene {
    std::vector<Disc> discs;
    TrackParams params = ltr_params();
    cv::Size size = kFrame;
    int frames = 0;
    // Detections of disc `k` on frame `f` are withheld when this says so.
    std::function<bool(int f, int k)> withhold;

    int nearest_disc(int f, cv::Point2f p) const {
        int best = -1;
        float bd = 1e9f;
        for (size_t k = 0; k < discs.size(); ++k) {
            const cv::Point2f d = discs[k].at(f) - p;
            const float dist = std::sqrt(d.x * d.x + d.y * d.y);
            if (dist < bd) {
                bd = dist;
                best = static_cast<int>(k);
            }
        }
        return best;
    }

    Run run() const {
        Run out;
        auto tracker = MultiTracker::create(params);
        const BeltAxis axis{params.direction, size};
        const bool opencv = params.kind != TrackerKind::None;
        cv::Mat img, small;
        std::vector<Detection> dets, all;
        std::map<int, int> disc_to_id;
        for (int f = 0; f < frames; ++f) {
            const bool det_frame = tracker->is_detection_frame(f);
            draw(discs, f, size, img);
            if (opencv) {
                cv::resize(img, small, cv::Size(), params.downscale, params.downscale, cv::INTER_AREA);
            }
            if (det_frame) {
                detect(img, tracker->detection_roi(size), all);  // full-res size: a full-res ROI
                dets.clear();
                for (const auto& d : all) {
                    const int k = nearest_disc(f, d.centroid);
                    if (!withhold || !withhold(f, k)) dets.push_back(d);
                }
            }
            tracker->update(f, small, size, det_frame ? &dets : nullptr);
            if (std::getenv("CQC_TEST_TRACE")) {  // one line per frame, to diagnose a failure
                std::cout << "f" << f << (det_frame ? " D" : "  ") << " gt";
                for (const auto& d : discs) std::cout << " (" << d.at(f).x << "," << d.at(f).y << ")";
                std::cout << " det";
                if (det_frame)
                    for (const auto& d : dets) std::cout << " [" << d.box << "]";
                std::cout << " trk";
                for (const auto& t : tracker->tracks())
                    std::cout << " {" << t.id << " " << t.box << (t.whole ? " W" : "") << (t.detected ? " d" : "")
                              << "}";
                std::cout << "\n";
            }
            for (const auto& t : tracker->tracks()) {
                if (!t.confirmed) continue;
                if (t.id <= 0 && out.error.empty()) out.error = "confirmed track without id";
                const int k = nearest_disc(f, cv::Point2f(t.box.x + t.box.width / 2, t.box.y + t.box.height / 2));
                auto it = out.id_to_disc.find(t.id);
                if (it == out.id_to_disc.end()) {
                    out.id_to_disc[t.id] = k;
                    if (disc_to_id.count(k) && out.error.empty())
                        out.error = "disc " + std::to_string(k) + " got a second id " + std::to_string(t.id) +
                                    " at frame " + std::to_string(f);
                    disc_to_id[k] = t.id;
                } else if (it->second != k && out.error.empty()) {
                    out.error = "id " + std::to_string(t.id) + " jumped from disc " + std::to_string(it->second) +
                                " to " + std::to_string(k) + " at frame " + std::to_string(f);
                }
            }
            tracker->take_finished(out.finished);
        }
        out.live_after_exit = static_cast<int>(tracker->tracks().size());
        tracker->finish_all();
        tracker->take_finished(out.finished);
        out.confirmed = tracker->confirmed_count();
        return out;
    }
};

// Checks shared by the scenario tests: one id per disc, every disc left
// through the exit edge, best box of the whole disc.
void check_run(const Scene& s, const Run& r, bool check_best = true) {
    if (!r.error.empty()) std::cout << "     " << r.error << "\n";
    CHECK(r.error.empty());
    CHECK_EQ(r.confirmed, static_cast<int>(s.discs.size()));
    CHECK_EQ(r.finished.size(), s.discs.size());
    CHECK_EQ(r.live_after_exit, 0);
    std::set<int> discs_seen;
    for (const auto& f : r.finished) {
        CHECK(f.end == FinishedTrack::End::Exited);
        CHECK(r.id_to_disc.count(f.id) == 1);
        discs_seen.insert(r.id_to_disc.at(f.id));
        CHECK(!f.history.empty());
        CHECK_EQ(f.history.front().frame, f.first_frame);
        CHECK_EQ(f.history.back().frame, f.last_frame);
        CHECK_EQ(static_cast<int>(f.history.size()), f.last_frame - f.first_frame + 1);
        if (check_best) {
            const Disc& d = s.discs[static_cast<size_t>(r.id_to_disc.at(f.id))];
            const float full = 2.f * d.radius + 1.f;
            CHECK(f.ever_whole);
            CHECK(std::abs(f.best_box.width - full) <= 2.f);
            CHECK(std::abs(f.best_box.height - full) <= 2.f);
            CHECK(f.shape.area > 0.9f * 3.14159f * d.radius * d.radius);
        }
    }
    CHECK_EQ(discs_seen.size(), s.discs.size());
}

// Discs entering one after another from the entry edge of `dir`, on two lanes.
Scene entering_scene(Direction dir, int n, float speed, cv::Size size = kFrame, int radius = 25) {
    Scene s;
    s.size = size;
    s.params.direction = dir;
    const BeltAxis axis{dir, size};
    const cv::Point2f u = axis.unit();
    const float len = axis.length();
    const bool horizontal = u.y == 0.f;
    const float cross = horizontal ? static_cast<float>(size.height) : static_cast<float>(size.width);
    for (int k = 0; k < n; ++k) {
        // Along the belt: the first disc is already partly in view on frame 0.
        const float along = -5.f - 110.f * k;  // centre, from the entry edge
        const float lane = cross * (k % 2 == 0 ? 0.35f : 0.65f);
        Disc d;
        d.radius = radius;
        const float pos = u.x + u.y > 0 ? along : len - along;  // image coordinate along the axis
        d.start = horizontal ? cv::Point2f(pos, lane) : cv::Point2f(lane, pos);
        d.vel = u * speed;
        s.discs.push_back(d);
    }
    const float travel = 110.f * (n - 1) + len + 1.2f * radius + 10.f;
    s.frames = static_cast<int>(std::ceil(travel / speed)) + 5;
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// Assignment

TEST_CASE("assignment: optimal, not greedy") {
    cv::Mat_<float> c = (cv::Mat_<float>(2, 2) << 1.f, 2.f, 2.f, 100.f);
    std::vector<int> r2c;
    AssignmentWorkspace ws;
    assign(c, 1000.f, r2c, ws);
    CHECK_EQ(r2c.size(), size_t(2));
    CHECK_EQ(r2c[0], 1);
    CHECK_EQ(r2c[1], 0);
}

TEST_CASE("assignment: rectangular both ways") {
    AssignmentWorkspace ws;
    std::vector<int> r2c;
    cv::Mat_<float> wide = (cv::Mat_<float>(2, 4) << 9, 1, 8, 7,  //
                            2, 3, 9, 9);
    assign(wide, 100.f, r2c, ws);
    CHECK_EQ(r2c[0], 1);
    CHECK_EQ(r2c[1], 0);
    cv::Mat_<float> tall = wide.t();
    assign(tall, 100.f, r2c, ws);
    CHECK_EQ(r2c.size(), size_t(4));
    CHECK_EQ(r2c[0], 1);
    CHECK_EQ(r2c[1], 0);
    CHECK_EQ(r2c[2], -1);
    CHECK_EQ(r2c[3], -1);
}

TEST_CASE("assignment: gating keeps the most admissible pairs") {
    AssignmentWorkspace ws;
    std::vector<int> r2c;
    // Row 0 may take either column, row 1 only column 0: both are matched,
    // although row 0 -> column 0 alone would be cheaper.
    cv::Mat_<float> c = (cv::Mat_<float>(2, 2) << 1, 5, 4, 50);
    assign(c, 10.f, r2c, ws);
    CHECK_EQ(r2c[0], 1);
    CHECK_EQ(r2c[1], 0);
    // Nothing admissible.
    cv::Mat_<float> far = (cv::Mat_<float>(2, 3) << 20, 30, 40, 50, 60, 70);
    assign(far, 10.f, r2c, ws);
    CHECK_EQ(r2c[0], -1);
    CHECK_EQ(r2c[1], -1);
    // NaN and infinity are never matched.
    cv::Mat_<float> bad = (cv::Mat_<float>(1, 2) << std::nanf(""), std::numeric_limits<float>::infinity());
    assign(bad, std::numeric_limits<float>::infinity(), r2c, ws);
    CHECK_EQ(r2c[0], -1);
    // Empty.
    assign(cv::Mat_<float>(0, 3), 10.f, r2c, ws);
    CHECK(r2c.empty());
    assign(cv::Mat_<float>(3, 0), 10.f, r2c, ws);
    CHECK_EQ(r2c.size(), size_t(3));
    CHECK_EQ(r2c[2], -1);
}

TEST_CASE("assignment: matches brute force on random matrices") {
    cv::RNG rng(7);
    AssignmentWorkspace ws;
    std::vector<int> r2c;
    for (int trial = 0; trial < 300; ++trial) {
        const int rows = rng.uniform(1, 6), cols = rng.uniform(1, 6);
        cv::Mat_<float> c(rows, cols);
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) c(i, j) = static_cast<float>(rng.uniform(0, 20));
        const float gate = 12.f;
        assign(c, gate, r2c, ws);
        // Score: (pairs, -cost); brute force over all partial matchings.
        int got_pairs = 0;
        float got_cost = 0.f;
        std::vector<char> col_used(static_cast<size_t>(cols), 0);
        for (int i = 0; i < rows; ++i) {
            const int j = r2c[static_cast<size_t>(i)];
            if (j < 0) continue;
            CHECK(c(i, j) <= gate);
            CHECK(!col_used[static_cast<size_t>(j)]);
            col_used[static_cast<size_t>(j)] = 1;
            ++got_pairs;
            got_cost += c(i, j);
        }
        int best_pairs = 0;
        float best_cost = 0.f;
        std::vector<char> used(static_cast<size_t>(cols), 0);
        std::function<void(int, int, float)> rec = [&](int i, int pairs, float cost) {
            if (i == rows) {
                if (pairs > best_pairs || (pairs == best_pairs && cost < best_cost)) {
                    best_pairs = pairs;
                    best_cost = cost;
                }
                return;
            }
            rec(i + 1, pairs, cost);
            for (int j = 0; j < cols; ++j) {
                if (used[static_cast<size_t>(j)] || c(i, j) > gate) continue;
                used[static_cast<size_t>(j)] = 1;
                rec(i + 1, pairs + 1, cost + c(i, j));
                used[static_cast<size_t>(j)] = 0;
            }
        };
        rec(0, 0, 0.f);
        CHECK_EQ(got_pairs, best_pairs);
        CHECK(std::abs(got_cost - best_cost) < 1e-3f);
    }
}

// ---------------------------------------------------------------------------
// Parameters

TEST_CASE("tracker params: validate names the field, range and value") {
    auto message = [](const TrackParams& p) -> std::string {
        try {
            p.validate();
        } catch (const ParamError& e) {
            return e.what();
        }
        return "";
    };
    TrackParams ok = ltr_params();
    CHECK(message(ok).empty());
    TrackParams p = ltr_params();
    p.downscale = 1.5;
    CHECK_EQ(message(p), std::string("track.downscale must be in (0, 1], got 1.5"));
    p = ok;
    p.downscale = 0.0;
    CHECK(message(p).rfind("track.downscale ", 0) == 0);
    p = ok;
    p.detect_every = 0;
    CHECK(message(p).rfind("track.detect_every must be in [1, 1000], got 0", 0) == 0);
    p = ok;
    p.entry_strip = 1.2;
    CHECK(message(p).rfind("track.entry_strip ", 0) == 0);
    p = ok;
    p.max_distance = -1;
    CHECK(message(p).rfind("track.max_distance ", 0) == 0);
    p = ok;
    p.max_misses = -1;
    CHECK(message(p).rfind("track.max_misses ", 0) == 0);
    p = ok;
    p.min_hits = 0;
    CHECK(message(p).rfind("track.min_hits ", 0) == 0);
    p = ok;
    p.grow_ratio = 0.5;
    CHECK(message(p).rfind("track.grow_ratio ", 0) == 0);
    p = ok;
    p.edge_margin = 101;
    CHECK(message(p).rfind("track.edge_margin ", 0) == 0);
    p = ok;
    p.duplicate_iou = 0;
    CHECK(message(p).rfind("track.duplicate_iou ", 0) == 0);
    p = ok;
    p.downscale = std::nan("");
    CHECK(message(p).rfind("track.downscale ", 0) == 0);
    p = ok;
    p.grow_ratio = 11;
    CHECK_THROWS(MultiTracker::create(p), ParamError);
}

TEST_CASE("tracker kind strings") {
    for (TrackerKind k : {TrackerKind::None, TrackerKind::KCF, TrackerKind::CSRT, TrackerKind::MOSSE,
                          TrackerKind::MedianFlow, TrackerKind::MIL})
        CHECK(tracker_kind_from_string(to_string(k)) == k);
    CHECK(tracker_kind_from_string("KCF") == TrackerKind::KCF);
    CHECK(tracker_kind_from_string("MedianFlow") == TrackerKind::MedianFlow);
    CHECK_EQ(std::string(to_string(TrackerKind::MedianFlow)), std::string("medianflow"));
    CHECK_THROWS(tracker_kind_from_string("boosting"), ParamError);
    try {
        tracker_kind_from_string("boosting");
    } catch (const ParamError& e) {
        const std::string m = e.what();
        CHECK(m.rfind("track.kind", 0) == 0);
        CHECK(m.find("none, kcf, csrt, mosse, medianflow, mil") != std::string::npos);
        CHECK(m.find("boosting") != std::string::npos);
    }
}

// ---------------------------------------------------------------------------
// None mode (detections on every frame)

TEST_CASE("none mode, left to right: one id per disc, entering discs get their full box") {
    Scene s = entering_scene(Direction::LeftToRight, 4, 6.f);
    const Run r = s.run();
    check_run(s, r);
    // Ids in order of arrival.
    for (const auto& kv : r.id_to_disc) CHECK_EQ(kv.first, kv.second + 1);
    // The history starts where the disc entered: frame 0 for the first disc
    // (half in view), later for the others, and the first box is clipped.
    for (const auto& f : r.finished) {
        const int k = r.id_to_disc.at(f.id);
        const Disc& d = s.discs[static_cast<size_t>(k)];
        const int enter = static_cast<int>(std::ceil((-25.f - d.start.x) / 6.f));
        CHECK(std::abs(f.first_frame - std::max(0, enter)) <= 1);
        CHECK(f.history.front().box.x <= 0.5f);
        CHECK(f.history.front().box.width < 51.f);
    }
}

TEST_CASE("none mode, right to left") {
    Scene s = entering_scene(Direction::RightToLeft, 3, 6.f);
    check_run(s, s.run());
}

TEST_CASE("none mode, top to bottom") {
    Scene s = entering_scene(Direction::TopToBottom, 3, 6.f);
    check_run(s, s.run());
}

TEST_CASE("none mode, bottom to top") {
    Scene s = entering_scene(Direction::BottomToTop, 3, 5.f);
    check_run(s, s.run());
}

TEST_CASE("none mode: objects on the belt at the start are tracked anywhere, later ones only from the strip") {
    Scene s;
    s.params.direction = Direction::LeftToRight;
    Disc mid;  // in the middle of the belt on frame 0
    mid.start = {400.f, 180.f};
    mid.vel = {6.f, 0.f};
    s.discs.push_back(mid);
    s.frames = 50;
    const Run r = s.run();
    check_run(s, r);

    // A disc that appears in the middle later (not through the entry strip)
    // starts no track.
    auto t = MultiTracker::create(s.params);
    std::vector<Detection> none, one(1);
    one[0].box = cv::Rect2f(375, 155, 51, 51);
    one[0].centroid = {400, 180};
    one[0].area = 2000;
    t->update(0, cv::Mat(), kFrame, &none);
    for (int f = 1; f < 10; ++f) t->update(f, cv::Mat(), kFrame, &one);
    CHECK(t->tracks().empty());
    CHECK_EQ(t->confirmed_count(), 0);
}

TEST_CASE("none mode: a detection missed for 2 frames keeps the id") {
    Scene s = entering_scene(Direction::LeftToRight, 3, 6.f);
    // Disc 1 vanishes from the detections while entering, in the middle and
    // while leaving.
    s.withhold = [](int f, int k) {
        return k == 1 && (f == 22 || f == 23 || f == 60 || f == 61 || f == 127 || f == 128);
    };
    const Run r = s.run();
    check_run(s, r);

    // The track coasted on the missing frames: detected is false, the box moved on.
    auto t = MultiTracker::create(s.params);
    std::vector<Detection> dets(1);
    for (int f = 0; f < 20; ++f) {
        Detection& d = dets[0];
        d.box = cv::Rect2f(100.f + 6.f * f, 100.f, 51.f, 51.f);
        d.centroid = {125.f + 6.f * f, 125.f};
        d.area = 2000.f;
        const bool missing = f == 10 || f == 11;
        std::vector<Detection> empty;
        t->update(f, cv::Mat(), kFrame, missing ? &empty : &dets);
        CHECK_EQ(t->tracks().size(), size_t(1));
        const TrackState& st = t->tracks()[0];
        CHECK_EQ(st.id, f >= 2 ? 1 : 0);
        CHECK_EQ(st.detected, !missing);
        if (missing) CHECK(std::abs(st.box.x - (100.f + 6.f * f)) < 1.5f);
    }
    CHECK_EQ(t->confirmed_count(), 1);
}

TEST_CASE("none mode: lost after max_misses, unconfirmed tracks vanish silently") {
    TrackParams p = ltr_params();
    p.max_misses = 2;
    auto t = MultiTracker::create(p);
    std::vector<Detection> dets(1), empty;
    dets[0].box = cv::Rect2f(50, 100, 40, 40);
    dets[0].centroid = {70, 120};
    dets[0].area = 1200;
    for (int f = 0; f < 3; ++f) t->update(f, cv::Mat(), kFrame, &dets);
    CHECK_EQ(t->confirmed_count(), 1);
    for (int f = 3; f < 5; ++f) t->update(f, cv::Mat(), kFrame, &empty);
    CHECK_EQ(t->tracks().size(), size_t(1));  // 2 misses: still live
    t->update(5, cv::Mat(), kFrame, &empty);
    CHECK(t->tracks().empty());  // 3 misses: lost
    std::vector<FinishedTrack> done;
    t->take_finished(done);
    CHECK_EQ(done.size(), size_t(1));
    CHECK(done[0].end == FinishedTrack::End::Lost);
    CHECK_EQ(done[0].first_frame, 0);
    CHECK_EQ(done[0].last_frame, 4);
    done.clear();
    t->take_finished(done);
    CHECK(done.empty());

    // Seen once, then gone: never confirmed, never reported.
    t->update(6, cv::Mat(), kFrame, &dets);
    for (int f = 7; f < 12; ++f) t->update(f, cv::Mat(), kFrame, &empty);
    t->finish_all();
    t->take_finished(done);
    CHECK(done.empty());
    CHECK_EQ(t->confirmed_count(), 1);
}

// An object that rides along the frame's top edge is never wholly in view, so
// it is counted only as it leaves. At 2 px a frame its last 20 px are too
// small to be detected for longer than max_misses: lost there, it is leaving.
// Lost anywhere else it is a fragment and vanishes.
TEST_CASE("none mode: an object cut by a side edge, lost as it leaves, is counted; lost elsewhere, not") {
    for (const bool at_exit : {true, false}) {
        auto t = MultiTracker::create(ltr_params());
        const float width = static_cast<float>(kFrame.width), gone = at_exit ? width - 20.f : 420.f;
        std::vector<Detection> dets(1), empty;
        int f = 0;
        for (float x = 300.f; x < width; x += 2.f, ++f) {
            const float right = std::min(x + 60.f, width);
            dets[0].box = cv::Rect2f(x, 0.f, right - x, 30.f);
            dets[0].centroid = {(x + right) / 2.f, 15.f};
            dets[0].area = dets[0].box.area();
            t->update(f, cv::Mat(), kFrame, x < gone ? &dets : &empty);
        }
        std::vector<FinishedTrack> done;
        t->take_finished(done);
        CHECK(t->tracks().empty());
        CHECK_EQ(done.size(), size_t(at_exit ? 1 : 0));
        CHECK_EQ(t->confirmed_count(), at_exit ? 1 : 0);
        if (at_exit) {
            CHECK(!done[0].ever_whole);
            CHECK(done[0].end == FinishedTrack::End::Lost);
        }
    }
}

TEST_CASE("none mode: finish_all ends live confirmed tracks as StreamEnd") {
    auto t = MultiTracker::create(ltr_params());
    std::vector<Detection> dets(2);
    dets[0].box = cv::Rect2f(50, 50, 40, 40);
    dets[0].centroid = {70, 70};
    dets[1].box = cv::Rect2f(50, 200, 40, 40);
    dets[1].centroid = {70, 220};
    t->update(0, cv::Mat(), kFrame, &dets);
    t->update(1, cv::Mat(), kFrame, &dets);
    t->update(2, cv::Mat(), kFrame, &dets);
    CHECK_EQ(t->confirmed_count(), 2);
    dets.pop_back();
    t->update(3, cv::Mat(), kFrame, &dets);
    t->finish_all();
    CHECK(t->tracks().empty());
    std::vector<FinishedTrack> done;
    t->take_finished(done);
    CHECK_EQ(done.size(), size_t(2));
    for (const auto& f : done) {
        CHECK(f.end == FinishedTrack::End::StreamEnd);
        CHECK_EQ(f.last_frame, 3);
        CHECK(f.ever_whole);
    }
}

TEST_CASE("none mode: duplicate detections of one object give one track") {
    auto t = MultiTracker::create(ltr_params());
    std::vector<Detection> dets(2);
    dets[0].box = cv::Rect2f(50, 50, 40, 40);
    dets[0].centroid = {70, 70};
    dets[1].box = cv::Rect2f(52, 50, 40, 40);
    dets[1].centroid = {72, 70};
    for (int f = 0; f < 5; ++f) t->update(f, cv::Mat(), kFrame, &dets);
    CHECK_EQ(t->tracks().size(), size_t(1));
    CHECK_EQ(t->confirmed_count(), 1);
}

TEST_CASE("none mode: two discs passing each other in lanes 60 px apart keep their ids") {
    Scene s;
    s.params.max_distance = 80;  // wider than the lane spacing
    Disc a, b;
    a.start = {-10.f, 150.f};  // fast, behind
    a.vel = {8.f, 0.f};
    b.start = {60.f, 210.f};  // slow, ahead
    b.vel = {5.f, 0.f};
    s.discs = {a, b};
    s.frames = 150;
    // The slow one also blinks out for two frames while they are side by side.
    s.withhold = [](int f, int k) { return k == 1 && (f == 23 || f == 24); };
    const Run r = s.run();
    check_run(s, r);
}

TEST_CASE("none mode: whole, best_updated and detected flags while entering") {
    TrackParams p = ltr_params();
    p.min_hits = 1;
    auto t = MultiTracker::create(p);
    std::vector<Detection> dets(1), empty;
    auto at = [&](float x0, float x1) {  // visible part [x0, x1) of a 51 px disc
        dets[0].box = cv::Rect2f(x0, 100.f, x1 - x0, 51.f);
        dets[0].centroid = {0.5f * (x0 + x1), 125.f};
        dets[0].area = 0.78f * dets[0].box.area();
    };
    at(0, 20);
    t->update(0, cv::Mat(), kFrame, &dets);
    CHECK_EQ(t->tracks().size(), size_t(1));
    CHECK(!t->tracks()[0].whole);
    CHECK(t->tracks()[0].best_updated);
    CHECK(t->tracks()[0].detected);
    CHECK_EQ(t->tracks()[0].id, 0);  // counted only once wholly in view
    at(0, 26);
    t->update(1, cv::Mat(), kFrame, &dets);
    CHECK(!t->tracks()[0].whole);
    CHECK(t->tracks()[0].best_updated);  // larger, and never whole yet
    t->update(2, cv::Mat(), kFrame, &empty);
    const TrackState& coast = t->tracks()[0];
    CHECK(!coast.detected);
    CHECK_EQ(coast.box.x, 0.f);                      // still entering: the cut edge stays
    CHECK(std::abs(coast.box.width - 32.f) < 0.5f);  // the leading edge moved on
    at(10, 61);
    t->update(3, cv::Mat(), kFrame, &dets);
    CHECK(t->tracks()[0].whole);
    CHECK_EQ(t->tracks()[0].id, 1);
    CHECK(t->tracks()[0].best_updated);
    at(16, 67);
    t->update(4, cv::Mat(), kFrame, &dets);
    CHECK(t->tracks()[0].whole);
    CHECK(!t->tracks()[0].best_updated);  // same size
    t->finish_all();
    std::vector<FinishedTrack> done;
    t->take_finished(done);
    CHECK_EQ(done.size(), size_t(1));
    CHECK(done[0].ever_whole);
    CHECK_EQ(done[0].best_frame, 3);
    CHECK_EQ(done[0].best_box.width, 51.f);
    CHECK_EQ(done[0].history.size(), size_t(5));
    CHECK(done[0].end == FinishedTrack::End::StreamEnd);
}

TEST_CASE("none mode: association is one-to-one and global, not first come") {
    TrackParams p = ltr_params();  // max_distance 60
    auto t = MultiTracker::create(p);
    auto det = [](float x, float y) {
        Detection d;
        d.box = cv::Rect2f(x - 20.f, y - 20.f, 40.f, 40.f);
        d.centroid = {x, y};
        d.area = 1200.f;
        return d;
    };
    std::vector<Detection> dets;
    for (int f = 0; f < 6; ++f) {
        dets = {det(60.f + 6.f * f, 150.f), det(60.f + 6.f * f, 210.f)};
        t->update(f, cv::Mat(), kFrame, &dets);
    }
    CHECK_EQ(t->confirmed_count(), 2);
    // Track 1 (lane 150) is nearer to lane 210's detection (30 px) than to its
    // own (35 px); track 2 can only take lane 210's detection (the other is 95 px
    // away). Taking the nearest first would leave track 2 without a match.
    dets = {det(96.f, 115.f), det(96.f, 180.f)};
    t->update(6, cv::Mat(), kFrame, &dets);
    CHECK_EQ(t->tracks().size(), size_t(2));
    for (const auto& st : t->tracks()) {
        CHECK(st.detected);
        const float cy = st.box.y + st.box.height / 2;
        CHECK_EQ(st.id, cy < 150.f ? 1 : 2);
    }
    for (int f = 7; f < 10; ++f) {
        dets = {det(60.f + 6.f * f, 150.f), det(60.f + 6.f * f, 210.f)};
        t->update(f, cv::Mat(), kFrame, &dets);
    }
    CHECK_EQ(t->confirmed_count(), 2);
    for (const auto& st : t->tracks()) {
        const float cy = st.box.y + st.box.height / 2;
        CHECK_EQ(st.id, cy < 180.f ? 1 : 2);
    }
}

// ---------------------------------------------------------------------------
// OpenCV tracker modes (drawn frames)

TEST_CASE("kcf: tracks end Exited although KCF still says found, one id per disc") {
    Scene s = entering_scene(Direction::LeftToRight, 3, 6.f);
    s.params.kind = TrackerKind::KCF;
    s.params.detect_every = 5;
    s.params.downscale = 0.5;
    const Run r = s.run();
    check_run(s, r);
    for (const auto& f : r.finished) {
        // The history covers the disc's way across the frame, and the track
        // ended as soon as the disc had left.
        const Disc& d = s.discs[static_cast<size_t>(r.id_to_disc.at(f.id))];
        const int gone = static_cast<int>(std::ceil((640.f + 25.f - d.start.x) / 6.f));
        CHECK(f.history.back().box.x + f.history.back().box.width >= 638.f);
        CHECK(f.last_frame - f.first_frame >= 100);
        CHECK(std::abs(f.last_frame - gone) <= 3);
    }
}

TEST_CASE("kcf: detection every 20 frames, top to bottom, serial updates") {
    Scene s = entering_scene(Direction::TopToBottom, 3, 6.f);
    s.params.kind = TrackerKind::KCF;
    s.params.parallel = false;
    const Run r = s.run();
    check_run(s, r, false);
}

TEST_CASE("mosse and medianflow follow a disc across the belt") {
    for (TrackerKind k : {TrackerKind::MOSSE, TrackerKind::MedianFlow}) {
        Scene s = entering_scene(Direction::RightToLeft, 1, 8.f, cv::Size(400, 160), 28);
        s.params.kind = k;
        s.params.detect_every = 5;
        // MOSSE rejects its own answers (peak-to-sidelobe ratio) for boxes
        // smaller than about 40 px: full resolution for it.
        s.params.downscale = k == TrackerKind::MOSSE ? 1.0 : 0.5;
        const Run r = s.run();
        if (!r.error.empty()) std::cout << "     " << to_string(k) << ": " << r.error << "\n";
        check_run(s, r, false);
    }
}

TEST_CASE("csrt and mil follow a disc (short: tens of ms per update)") {
    for (TrackerKind k : {TrackerKind::CSRT, TrackerKind::MIL}) {
        TrackParams p = ltr_params();
        p.kind = k;
        p.detect_every = 10;
        p.downscale = 1.0;  // MIL drifts off an 11 px disc
        const cv::Size size(320, 160);
        Disc d;
        d.start = {120.f, 80.f};
        d.vel = {6.f, 0.f};
        d.radius = 22;
        auto t = MultiTracker::create(p);
        cv::Mat img, small;
        std::vector<Detection> dets;
        for (int f = 0; f < 12; ++f) {
            draw({d}, f, size, img);
            cv::resize(img, small, cv::Size(), p.downscale, p.downscale, cv::INTER_AREA);
            if (t->is_detection_frame(f)) detect(img, cv::Rect(), dets);
            t->update(f, small, size, t->is_detection_frame(f) ? &dets : nullptr);
        }
        CHECK_EQ(t->tracks().size(), size_t(1));
        const TrackState& st = t->tracks()[0];
        CHECK_EQ(st.id, 1);
        const cv::Point2f c(st.box.x + st.box.width / 2, st.box.y + st.box.height / 2);
        CHECK(std::abs(c.x - d.at(11).x) <= 6.f);
        CHECK(std::abs(c.y - d.at(11).y) <= 6.f);
        CHECK(std::abs(st.box.width - 45.f) <= 2.f);
    }
}
