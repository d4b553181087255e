// When a finished object crosses a line downstream of the view (crossing.hpp):
// the geometry by hand in every direction, and the whole core on moving discs
// whose true crossing frame is known.
#include "check.hpp"
#include "conveyor_qc/crossing.hpp"
#include "conveyor_qc/pipeline.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <vector>

using namespace cqc;

namespace {

const cv::Size kFrame(640, 360);

// A box spanning [near, far] along the belt (from the entry edge), 40 px across it.
cv::Rect2f span_box(Direction d, float near_edge, float far_edge) {
    const float len = far_edge - near_edge;
    switch (d) {
        case Direction::LeftToRight:
            return {near_edge, 100.f, len, 40.f};
        case Direction::RightToLeft:
            return {kFrame.width - far_edge, 100.f, len, 40.f};
        case Direction::TopToBottom:
            return {100.f, near_edge, 40.f, len};
        case Direction::BottomToTop:
            return {100.f, kFrame.height - far_edge, 40.f, len};
        case Direction::Auto:
            break;
    }
    return {};
}

}  // namespace

TEST_CASE("crossing: the fitted centre moves on to the line; edges half a length around it") {
    for (Direction d :
         {Direction::LeftToRight, Direction::RightToLeft, Direction::TopToBottom, Direction::BottomToTop}) {
        const BeltAxis axis{d, kFrame};
        const float exit = axis.length();
        const cv::Rect2f whole = span_box(d, 10.f, 70.f);  // 60 px long
        // Its centre 10 px past the exit edge, at 5 px a frame, a gate 200 px past the exit edge.
        Crossing c = predict_crossing(BeltMotion{5.f, exit + 10.f}, whole, axis, 200.0);
        CHECK(c.known);
        CHECK(std::abs(c.centre - 38.0) < 1e-4);
        CHECK(std::abs(c.front - 32.0) < 1e-4);
        CHECK(std::abs(c.back - 44.0) < 1e-4);
        CHECK(!predict_crossing(BeltMotion{0.f, exit}, whole, axis, 200.0).known);
    }
}

TEST_CASE(
    "crossing: motion is fitted on whole boxes, leans on the belt's when short; a cut box uses its trailing edge") {
    for (Direction d :
         {Direction::LeftToRight, Direction::RightToLeft, Direction::TopToBottom, Direction::BottomToTop}) {
        const BeltAxis axis{d, kFrame};
        const float exit = axis.length();
        // 60 px long, centre at 100 + 4 f, drawn 8 px too long on both sides (a shadow), leaving at the end.
        std::vector<TrackPoint> path;
        for (int f = 0; 100 + 4 * f - 30 < exit; ++f) {
            const float c = 100.f + 4.f * static_cast<float>(f);
            const float near_edge = c - 38.f, far_edge = std::min(c + 38.f, exit);
            path.push_back({f, span_box(d, near_edge, far_edge)});
        }
        const cv::Rect2f whole = span_box(d, 10.f, 86.f);
        const BeltMotion m = measure_motion(path, whole, axis, 2.f, 99.f);
        CHECK(std::abs(m.speed - 4.f) < 1e-3f);
        CHECK(std::abs(m.centre - (100.f + 4.f * static_cast<float>(path.back().frame))) < 1e-2f);
        // Two points only: the fallback speed, the centre from the trailing edge and the length.
        const std::vector<TrackPoint> short_path(path.end() - 2, path.end());
        const BeltMotion f = measure_motion(short_path, whole, axis, 2.f, 3.5f);
        CHECK(f.speed == 3.5f);
        float near_edge = 0.f, far_edge = 0.f;
        axis.span(short_path.back().box, near_edge, far_edge);
        CHECK(std::abs(f.centre - (near_edge + 38.f)) < 1e-3f);
        // Whole over 10 frames only: half its own speed (4), half the belt's (6).
        const std::vector<TrackPoint> ten(path.begin() + 10, path.begin() + 21);
        CHECK(std::abs(measure_motion(ten, whole, axis, 2.f, 6.f).speed - 5.f) < 1e-3f);
    }
}

TEST_CASE("crossing: the core's measured speed predicts when discs reach a gate past the exit edge") {
    // Discs of radius 32 enter from the left at 6 px/frame, one every 25 frames:
    // disc k's centre is at -35 + 6 (f - 25k), so it reaches x = 640 + 300 at
    // f = 25k + 975 / 6.
    for (TrackerKind kind : {TrackerKind::None, TrackerKind::KCF}) {
        PipelineParams params;
        params.track.kind = kind;
        Pipeline pipeline(params);
        cv::RNG rng(11);
        std::vector<FinishedTrack> done;
        const int n = 5;
        for (int f = 0; f < 25 * (n - 1) + 130; ++f) {
            cv::Mat img(kFrame, CV_8UC3, cv::Scalar(200, 205, 210));
            cv::Mat noise(img.size(), CV_8UC3);
            rng.fill(noise, cv::RNG::NORMAL, 0, 3);
            img += noise;
            for (int k = 0; k < n; ++k)
                if (f >= 25 * k)
                    cv::circle(img, {-35 + (f - 25 * k) * 6, k % 2 ? 110 : 250}, 32, cv::Scalar(40, 70, 120),
                               cv::FILLED, cv::LINE_AA);
            pipeline.process(img);
            pipeline.take_finished(done);
        }
        CHECK_EQ(static_cast<int>(done.size()), n);
        if (static_cast<int>(done.size()) != n) continue;
        const BeltAxis axis{pipeline.direction(), kFrame};
        for (const auto& t : done) {
            CHECK(std::abs(t.motion.speed - 6.f) < 0.05f);
            const int k = (t.id - 1);  // numbered in order of entry
            const double truth = 25.0 * k + 975.0 / 6.0;
            const Crossing c = predict_crossing(t.motion, t.best_box, axis, 300.0);
            CHECK(c.known);
            CHECK(std::abs(t.last_frame + c.centre - truth) < 0.5);
        }
    }
}
