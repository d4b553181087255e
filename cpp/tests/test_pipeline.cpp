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
