// The whole core from C++: frames in, counted objects out, bad input refused.
#include "check.hpp"
#include "conveyor_qc/pipeline.hpp"

#include <opencv2/imgproc.hpp>

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
