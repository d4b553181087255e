// The whole core from C++: frames in, counted objects out, bad input refused.
#include "check.hpp"
#include "conveyor_qc/pipeline.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

// A 640x360 light belt with dark discs entering from the left at 6 px/frame,
// one every 25 frames, on two lanes.
cv::Mat belt_frame(int f, int n_objects, cv::RNG& rng) {
    cv::Mat img(360, 640, CV_8UC3, cv::Scalar(200, 205, 210));
    cv::Mat noise(img.size(), CV_8UC3);
    rng.fill(noise, cv::RNG::NORMAL, 0, 3);
    img += noise;
    for (int k = 0; k < n_objects; ++k) {
        const int start = k * 25;
        const int cx = -35 + (f - start) * 6;
        const int cy = (k % 2) ? 110 : 250;
        if (f >= start) cv::circle(img, {cx, cy}, 32, cv::Scalar(40, 70, 120), cv::FILLED, cv::LINE_AA);
    }
    return img;
}

int run_count(cqc::TrackerKind kind, int& finished_total) {
    cqc::PipelineParams params;
    params.track.kind = kind;
    cqc::Pipeline pipeline(params);
    cv::RNG rng(7);
    std::vector<cqc::FinishedTrack> done;
    const int n_objects = 6;
    const int frames = 25 * (n_objects - 1) + 130;  // the last object has left
    int count = 0;
    for (int f = 0; f < frames; ++f) {
        count = pipeline.process(belt_frame(f, n_objects, rng)).count;
        pipeline.take_finished(done);
    }
    pipeline.finish();
    pipeline.take_finished(done);
    finished_total = static_cast<int>(done.size());
    for (const auto& t : done) {
        CHECK(t.ever_whole);
        CHECK(std::abs(t.best_box.width - 64.f) <= 6.f);
        CHECK(t.end == cqc::FinishedTrack::End::Exited);
    }
    return count;
}

}  // namespace

TEST_CASE("pipeline counts each disc once without an OpenCV tracker") {
    int finished = 0;
    CHECK_EQ(run_count(cqc::TrackerKind::None, finished), 6);
    CHECK_EQ(finished, 6);
}

TEST_CASE("pipeline counts each disc once with KCF") {
    int finished = 0;
    CHECK_EQ(run_count(cqc::TrackerKind::KCF, finished), 6);
    CHECK_EQ(finished, 6);
}

TEST_CASE("pipeline refuses frames of the wrong type or a changed size") {
    cqc::Pipeline pipeline(cqc::PipelineParams{});
    CHECK_THROWS(pipeline.process(cv::Mat(100, 100, CV_8UC1, cv::Scalar(0))), cqc::InputError);
    CHECK_THROWS(pipeline.process(cv::Mat()), cqc::InputError);
    pipeline.process(cv::Mat(100, 120, CV_8UC3, cv::Scalar(0, 0, 0)));
    CHECK_THROWS(pipeline.process(cv::Mat(100, 100, CV_8UC3, cv::Scalar(0, 0, 0))), cqc::InputError);
}

TEST_CASE("pipeline validates its parameters up front") {
    cqc::PipelineParams params;
    params.track.downscale = 2.0;
    bool named = false;
    try {
        cqc::Pipeline p(params);
    } catch (const cqc::ParamError& e) {
        named = std::string(e.what()).find("track.downscale") != std::string::npos;
    }
    CHECK(named);
}

namespace {

// Runs the disc belt for `frames` frames with the counting line at `line`;
// returns the line's count, checking that every crossed id counts once and is
// among the finished tracks handed over (each exactly once).
int run_line(double line, int frames, std::vector<int>& crossed_at) {
    cqc::PipelineParams params;
    params.count.line = line;
    cqc::Pipeline pipeline(params);
    cv::RNG rng(7);
    std::vector<cqc::FinishedTrack> done;
    std::vector<int> crossed;
    crossed_at.clear();
    for (int f = 0; f < frames; ++f) {
        const cqc::FrameResult& r = pipeline.process(belt_frame(f, 6, rng));
        for (int id : r.crossed) {
            crossed.push_back(id);
            crossed_at.push_back(f);
        }
        CHECK_EQ(r.counted, static_cast<int>(crossed.size()));
        pipeline.take_finished(done);
    }
    const cqc::FrameResult& end = pipeline.finish();
    CHECK(end.tracks.empty());
    for (int id : end.crossed) {
        crossed.push_back(id);
        crossed_at.push_back(frames);
    }
    CHECK_EQ(end.counted, static_cast<int>(crossed.size()));
    CHECK(pipeline.finish().crossed.empty());  // a second finish adds nothing
    pipeline.take_finished(done);
    std::vector<int> sorted = crossed;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    std::vector<int> finished_ids;
    for (const auto& t : done) finished_ids.push_back(t.id);
    std::sort(finished_ids.begin(), finished_ids.end());
    CHECK(std::adjacent_find(finished_ids.begin(), finished_ids.end()) == finished_ids.end());
    for (int id : sorted) CHECK(std::binary_search(finished_ids.begin(), finished_ids.end(), id));
    return end.counted;
}

}  // namespace

TEST_CASE("pipeline counts at the exit edge when objects leave, and at a mid line when centres pass it") {
    std::vector<int> at;
    // All six discs have left: six at the exit edge, each on the frame it left.
    const int all = 25 * 5 + 130;
    CHECK_EQ(run_line(1.0, all, at), 6);
    for (int f : at) CHECK(f < all);
    // Stopped early, at frame 100: discs k start at 25k, centre at -35 + 6 (f - 25k).
    // Centre past x = 320 from f = 25k + 59.2 on: k = 0 (f 60) and k = 1 (f 85).
    // The exit edge (centre reaches 672 px, box leaves, from f = 25k + 118): none.
    CHECK_EQ(run_line(1.0, 100, at), 0);
    CHECK_EQ(run_line(0.5, 100, at), 2);
    CHECK(at.size() == 2 && std::abs(at[0] - 60) <= 1 && std::abs(at[1] - 85) <= 1);
    // At the stream end, tracks past the line but not yet confirmed live do not exist
    // here; a line near the entry counts the discs once wholly in view (confirmed).
    CHECK_EQ(run_line(0.05, 100, at), 4);
}

TEST_CASE("pipeline validates count.line") {
    cqc::PipelineParams params;
    params.count.line = 0.0;
    CHECK_THROWS(cqc::Pipeline p(params), cqc::ParamError);
}

// ---------------------------------------------------------------------------
// track.direction = auto

#include "conveyor_qc/direction.hpp"

namespace {

// `n` detections on a grid, moved by `step` px per call, plus `clutter`
// standing ones that jitter by up to 1 px.
std::vector<cqc::Detection> grid_detections(int call, cv::Point2f step, int n, int clutter, cv::RNG& rng) {
    std::vector<cqc::Detection> out;
    for (int k = 0; k < n; ++k) {
        cqc::Detection d;
        d.centroid = cv::Point2f(200.f + 150.f * (k % 4), 100.f + 150.f * (k / 4)) + step * static_cast<float>(call);
        d.box = cv::Rect2f(d.centroid.x - 20, d.centroid.y - 20, 40, 40);
        out.push_back(d);
    }
    for (int k = 0; k < clutter; ++k) {
        cqc::Detection d;
        d.centroid =
            cv::Point2f(130.f + 170.f * k, 620.f) + cv::Point2f(rng.uniform(-1.f, 1.f), rng.uniform(-1.f, 1.f));
        d.box = cv::Rect2f(d.centroid.x - 10, d.centroid.y - 10, 20, 20);
        out.push_back(d);
    }
    return out;
}

}  // namespace

TEST_CASE("direction finder: every direction, from a few detection frames") {
    const std::pair<cv::Point2f, cqc::Direction> cases[] = {
        {{12.f, 0.5f}, cqc::Direction::LeftToRight},
        {{-12.f, -0.5f}, cqc::Direction::RightToLeft},
        {{0.3f, 12.f}, cqc::Direction::TopToBottom},
        {{0.f, -12.f}, cqc::Direction::BottomToTop},
    };
    for (const auto& [step, expected] : cases) {
        cv::RNG rng(3);
        cqc::DirectionFinder finder;
        int calls = 0;
        while (!finder.add(grid_detections(calls, step, 8, 0, rng)) && calls < 20) ++calls;
        CHECK(finder.decided());
        CHECK(finder.direction() == expected);
        CHECK(calls <= 2);  // 8 objects vote on the second frame already
    }
}

TEST_CASE("direction finder: standing clutter never votes; a slow belt is read in time") {
    cv::RNG rng(5);
    cqc::DirectionFinder still;
    for (int call = 0; call < 200; ++call) still.add(grid_detections(call, {0.f, 0.f}, 0, 6, rng));
    CHECK(!still.decided());
    int votes = 0;
    for (int v : still.votes()) votes += v;
    CHECK_EQ(votes, 0);

    // Two objects at 1.5 px a detection frame among six jittering stains.
    cqc::DirectionFinder slow;
    int calls = 0;
    while (!slow.add(grid_detections(calls, {0.f, 1.5f}, 2, 6, rng)) && calls < 200) ++calls;
    CHECK(slow.decided());
    CHECK(slow.direction() == cqc::Direction::TopToBottom);
    CHECK(calls < 20);  // a vote per object every 3 frames: 3 votes each by frame 9

    cqc::DirectionFinderParams bad;
    bad.agreement = 0.5;
    CHECK_THROWS(cqc::DirectionFinder f(bad), cqc::ParamError);
}

namespace {

// The disc belt of belt_frame, turned so that it moves in `dir`.
cv::Mat turned_belt_frame(int f, int n_objects, cv::RNG& rng, cqc::Direction dir) {
    cv::Mat img = belt_frame(f, n_objects, rng), out;
    switch (dir) {
        case cqc::Direction::LeftToRight:
            return img;
        case cqc::Direction::RightToLeft:
            cv::flip(img, out, 1);
            return out;
        case cqc::Direction::TopToBottom:
            cv::transpose(img, out);
            return out;
        case cqc::Direction::BottomToTop:
            cv::transpose(img, out);
            cv::flip(out, out, 0);
            return out;
        case cqc::Direction::Auto:
            break;
    }
    return img;
}

}  // namespace

TEST_CASE("pipeline with direction auto reads the belt's direction and counts each disc once, every direction") {
    for (cqc::Direction dir : {cqc::Direction::LeftToRight, cqc::Direction::RightToLeft, cqc::Direction::TopToBottom,
                               cqc::Direction::BottomToTop}) {
        for (cqc::TrackerKind kind : {cqc::TrackerKind::None, cqc::TrackerKind::KCF}) {
            cqc::PipelineParams params;
            params.track.kind = kind;
            CHECK(params.track.direction == cqc::Direction::Auto);  // the default
            cqc::Pipeline pipeline(params);
            CHECK(pipeline.direction() == cqc::Direction::Auto);
            cv::RNG rng(7);
            std::vector<cqc::FinishedTrack> done;
            const int frames = 25 * 5 + 130;
            int known_at = -1;
            for (int f = 0; f < frames; ++f) {
                const cqc::FrameResult& r = pipeline.process(turned_belt_frame(f, 6, rng, dir));
                if (pipeline.direction() == cqc::Direction::Auto) {
                    CHECK_EQ(r.count, 0);  // nothing is counted before the direction is known
                    for (const auto& t : r.tracks) CHECK(!t.confirmed);
                } else if (known_at < 0) {
                    known_at = f;
                }
                pipeline.take_finished(done);
            }
            pipeline.finish();
            pipeline.take_finished(done);
            CHECK(pipeline.direction() == dir);
            // One disc at a time, 12 px a detection frame: a vote each detection frame.
            CHECK(known_at >= 0 && known_at <= 20);
            CHECK_EQ(pipeline.counter().count(), 6);
            CHECK_EQ(static_cast<int>(done.size()), 6);
            for (const auto& t : done) {
                CHECK(t.end == cqc::FinishedTrack::End::Exited);
                CHECK_EQ(t.history.front().frame, t.first_frame);
            }
            // The first disc's track started before the direction was known and kept its history.
            CHECK(!done.empty() && done.front().first_frame < known_at);
        }
    }
}

TEST_CASE("a tracker or counting line on its own refuses direction auto") {
    cqc::TrackParams p;
    CHECK_THROWS(cqc::MultiTracker::create(p), cqc::ParamError);
    CHECK_THROWS(cqc::LineCounter(cqc::CountParams{}, cqc::Direction::Auto), cqc::ParamError);
    CHECK(cqc::direction_from_string("auto") == cqc::Direction::Auto);
    CHECK(std::string(cqc::to_string(cqc::Direction::Auto)) == "auto");
}

TEST_CASE("pipeline refuses a frame too small for the downscale, naming it") {
    cqc::PipelineParams params;
    params.track.downscale = 0.5;
    cqc::Pipeline pipeline(params);
    std::string what;
    try {
        pipeline.process(cv::Mat(1, 1, CV_8UC3, cv::Scalar(0, 0, 0)));
    } catch (const cqc::InputError& e) {
        what = e.what();
    }
    CHECK(what.find("1x1") != std::string::npos && what.find("track.downscale 0.5") != std::string::npos);
}

TEST_CASE("MIL on specks of a few pixels returns from every frame") {
    // OpenCV 4.6's MIL looped forever (rand() in its Haar feature sampler) on a
    // 4x4 px box: such boxes now move without an OpenCV tracker.
    cqc::PipelineParams params;
    params.track.kind = cqc::TrackerKind::MIL;
    params.track.downscale = 1.0;
    params.track.min_hits = 1;
    params.track.direction = cqc::Direction::LeftToRight;
    params.detect.min_area = 0.5;
    params.mask.kernel_size = 1;
    params.mask.blur = 1;
    cqc::Pipeline pipeline(params);
    cv::RNG rng(0);
    for (int f = 0; f < 30; ++f) {
        cv::Mat frame(36, 48, CV_8UC3, cv::Scalar(200, 200, 200));
        for (int y = 0; y < frame.rows; ++y)
            for (int x = 0; x < frame.cols; ++x)
                if (rng.uniform(0.f, 1.f) < 0.05f) frame.at<cv::Vec3b>(y, x) = cv::Vec3b(0, 0, 0);
        // and a 4x4 dark square, the box MIL could not sample
        frame(cv::Rect(10 + f % 20, 16, 4, 4)).setTo(cv::Scalar(0, 0, 0));
        pipeline.process(frame);
    }
    CHECK_EQ(pipeline.frames_processed(), 30);
}

TEST_CASE("downscale_frame: INTER_AREA's pixels at 1/k, close to them in between, sizes round(w r)") {
    cv::Mat frame(721, 1283, CV_8UC3);
    cv::RNG rng(11);
    rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
    cv::GaussianBlur(frame, frame, cv::Size(0, 0), 3.0);  // texture at the scale of real footage
    cv::Mat small, scratch, area;
    for (double r : {1.0, 0.5, 0.25, 0.4, 0.3, 0.6, 0.75}) {
        cqc::downscale_frame(frame, r, small, scratch);
        CHECK_EQ(small.cols, cvRound(frame.cols * r));
        CHECK_EQ(small.rows, cvRound(frame.rows * r));
        if (r == 1.0) {
            CHECK(small.data == frame.data);  // no copy
            continue;
        }
        cv::resize(frame, area, small.size(), 0, 0, cv::INTER_AREA);
        const double diff = cv::norm(small, area, cv::NORM_L1) / static_cast<double>(area.total() * 3);
        if (r == 0.5 || r == 0.25) CHECK_EQ(diff, 0.0);
        else CHECK(diff < 1.5);  // grey levels, mean absolute difference
    }
}
