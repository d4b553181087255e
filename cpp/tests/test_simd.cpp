// The SIMD dispatch (conveyor_qc/simd.hpp): the level in force, forced and
// reset; and every level against a reference that does not depend on it.
// Each kernel's own differential test (against the OpenCV call it replaces)
// runs at every level too: TEST_CASE_AT_EVERY_SIMD_LEVEL in test_mask.cpp,
// test_detector.cpp.
#include "check.hpp"
#include "scenes.hpp"
#include "simd_levels.hpp"

#include "conveyor_qc/belt_model.hpp"
#include "conveyor_qc/pipeline.hpp"
#include "conveyor_qc/simd.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace cqc;
using namespace cqc::test;

TEST_CASE("simd: the level in force is the CPU's best, forced down and back; names round-trip") {
    const SimdLevel best = simd_supported();
#if defined(__x86_64__)
    CHECK(best >= SimdLevel::SSE2);  // x86-64's baseline
#endif
    const SimdLevel before = simd_level();
    CHECK(before <= best);
    {
        const ForcedSimdLevel forced(SimdLevel::Scalar);
        const char* env = std::getenv("CQC_SIMD");
        reset_simd_level();  // the CPU's best, unless CQC_SIMD lowers it
        if (!env || !*env) CHECK(simd_level() == best);
        for (const SimdLevel level : {SimdLevel::Scalar, SimdLevel::SSE2, SimdLevel::SSSE3, SimdLevel::AVX2}) {
            force_simd_level(level);
            CHECK(simd_level() == std::min(level, best));  // never above the CPU's
            CHECK(simd_level_from_string(to_string(level)) == level);
        }
    }
    CHECK(simd_level() == before);
    CHECK(simd_level_from_string("AVX2") == SimdLevel::AVX2);
    CHECK_EQ(std::string(to_string(SimdLevel::SSSE3)), std::string("ssse3"));
    CHECK_THROWS(simd_level_from_string("avx512"), ParamError);
}

namespace {
const cv::Scalar kBeltColour(60, 140, 210);  // B and R play different parts
}  // namespace

TEST_CASE_AT_EVERY_SIMD_LEVEL("simd: the belt model's table path reads each pixel's class as colour_class() does") {
    // Widths a vector path leaves a tail of every length on (16 pixels a step).
    for (const int w : {512, 517, 47, 17}) {
        // Any colour on odd rows; on even rows the belt's, 0.3 to 1.1 as
        // bright and noisy: belt, shadow and product, and their boundaries.
        cv::Mat frame(64, w, CV_8UC3);
        cv::RNG rng(47 + w);
        rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
        for (int y = 0; y < frame.rows; y += 2)
            for (int x = 0; x < w; ++x) {
                const double light = rng.uniform(0.3, 1.1);
                cv::Vec3b& px = frame.at<cv::Vec3b>(y, x);
                for (int c = 0; c < 3; ++c)
                    px[c] = cv::saturate_cast<std::uint8_t>(kBeltColour[c] * light + rng.gaussian(4.0));
            }
        for (const bool shadows : {true, false}) {
            MaskParams p;
            p.shadow_enabled = shadows;
            BeltModel model(p);
            model.learn(cv::Mat(64, w, CV_8UC3, kBeltColour));  // even light: frames are read as they are
            cv::Mat object, shadow, mask;
            model.classify(frame, object, shadow, mask);
            int products = 0, shades = 0;
            for (int y = 0; y < frame.rows; ++y)
                for (int x = 0; x < w; ++x) {
                    const cv::Vec3b c = frame.at<cv::Vec3b>(y, x);
                    const int f = model.colour_class(c[0], c[1], c[2]);
                    const int keep = shadows ? 3 : 1;
                    CHECK_EQ(static_cast<int>(object.at<std::uint8_t>(y, x)), f & 1 ? 255 : 0);
                    CHECK_EQ(static_cast<int>(shadow.at<std::uint8_t>(y, x)), f & 2 ? 255 : 0);
                    CHECK_EQ(static_cast<int>(mask.at<std::uint8_t>(y, x)), (f & keep) == 1 ? 255 : 0);
                    products += f & 1;
                    shades += (f & 2) != 0;
                }
            if (w >= 512) {  // every class is met
                CHECK(products > frame.rows * w / 2 && products < frame.rows * w - w);
                CHECK((shades > w) == shadows);
            }
        }
    }
}

TEST_CASE_AT_EVERY_SIMD_LEVEL(
    "simd: the light is divided out as (sample * gain + 128) >> 8, saturated, at every level") {
    // A belt lit from one side (0.55 of the light at the left edge): its gain
    // reaches ~1.8, so bright colours saturate. Widths leave a tail of every
    // length on a 32-sample step (three samples a pixel).
    for (const int w : {517, 47, 11}) {
        cv::Mat lit(64, w, CV_8UC3);
        for (int x = 0; x < w; ++x) lit.col(x).setTo(kBelt * (0.55 + 0.45 * x / std::max(w - 1, 1)));
        BeltModel model{MaskParams()};
        model.learn(noisy(lit));
        const cv::Mat& gain = model.light_gain();
        CHECK(model.stats().light_range > 1.5f);  // the light is uneven: frames are divided
        cv::Mat frame(64, w, CV_8UC3);
        cv::RNG rng(91 + w);
        rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
        cv::Mat object, shadow, mask;
        model.classify(frame, object, shadow, mask);
        const cv::Mat& even = model.normalised();
        CHECK_EQ(even.size(), frame.size());
        int saturated = 0;
        for (int y = 0; y < frame.rows; ++y)
            for (int x = 0; x < w; ++x) {
                const auto q =
                    static_cast<std::uint32_t>(std::clamp(std::lround(gain.at<float>(y, x) * 256.0f), 0L, 65535L));
                for (int c = 0; c < 3; ++c) {
                    const std::uint32_t v = (frame.at<cv::Vec3b>(y, x)[c] * q + 128u) >> 8;
                    CHECK_EQ(static_cast<int>(even.at<cv::Vec3b>(y, x)[c]), static_cast<int>(std::min(v, 255u)));
                    saturated += v > 255u;
                }
            }
        CHECK(saturated > 0);
    }
}

namespace {

// Cookies crossing a belt whose frame is not a multiple of any vector width
// (1282x722, 641x361 after the default downscale): the pipeline's masks,
// detections and tracks on each frame.
struct Run {
    std::vector<cv::Mat> masks;
    std::vector<std::vector<Detection>> detections;
    std::vector<std::vector<TrackState>> tracks;
    int counted = 0;
};

// The frames, drawn once.
const std::vector<cv::Mat>& crossing_frames() {
    static const std::vector<cv::Mat> frames = [] {
        std::vector<cv::Mat> v;
        for (int f = 0; f < 30; ++f) {
            cv::Mat clean(722, 1282, CV_8UC3, kBelt);
            for (int k = 0; k < 6; ++k) {
                const cv::Point c(-90 + 24 * f + 210 * k, k % 2 ? 230 : 470);
                cookie(clean, c, 70, k % 3 ? kCookie : kBiscuit, k % 2 ? 8 : 0);
                cookie(clean, c + cv::Point(120, 60), 64);  // touching the first: split
                shadow(clean, c + cv::Point(40, 100), cv::Size(90, 25));
            }
            v.push_back(noisy(clean, 4.0, static_cast<std::uint64_t>(f + 1)));
        }
        return v;
    }();
    return frames;
}

Run run_pipeline() {
    PipelineParams params;
    params.mask.edges_enabled = true;  // Canny and the edge dilation too
    params.mask.auto_learn_frames = 2;
    params.mask.auto_learn_stride = 2;
    params.track.direction = Direction::LeftToRight;
    Pipeline pipeline(params);
    Run run;
    for (const cv::Mat& frame : crossing_frames()) {
        const FrameResult& r = pipeline.process(frame);
        run.masks.push_back(pipeline.last_mask().clone());
        run.detections.push_back(r.detections);
        run.tracks.push_back(r.tracks);
    }
    run.counted = pipeline.finish().counted;
    return run;
}

bool same_bytes(const void* a, const void* b, std::size_t n) {
    return n == 0 || std::memcmp(a, b, n) == 0;
}

}  // namespace

TEST_CASE("simd: the pipeline's masks, detections and tracks are the same bytes at every level") {
    Run reference;
    {
        const ForcedSimdLevel scalar(SimdLevel::Scalar);
        reference = run_pipeline();
    }
    std::size_t detections = 0;
    for (const auto& d : reference.detections) detections += d.size();
    CHECK(reference.counted > 4 && detections > 200);
    at_every_simd_level([&](SimdLevel) {
        const Run run = run_pipeline();
        CHECK_EQ(run.counted, reference.counted);
        for (std::size_t f = 0; f < reference.masks.size(); ++f) {
            CHECK(cv::norm(run.masks[f], reference.masks[f], cv::NORM_INF) == 0.0);
            const auto& d = run.detections[f];
            const auto& e = reference.detections[f];
            CHECK(d.size() == e.size() && same_bytes(d.data(), e.data(), d.size() * sizeof(Detection)));
            const auto& t = run.tracks[f];
            const auto& u = reference.tracks[f];
            CHECK_EQ(t.size(), u.size());
            for (std::size_t k = 0; k < t.size(); ++k)
                CHECK(t[k].id == u[k].id && t[k].box == u[k].box && t[k].confirmed == u[k].confirmed);
        }
    });
}
