// libFuzzer target: the core's entry points (PipelineParams::validate, Pipeline, MaskBuilder,
// Detector) with parameters and frames made from the fuzzer's bytes, under AddressSanitizer
// and UndefinedBehaviorSanitizer. Allowed: ParamError for parameters out of range, InputError
// for frames it cannot take (another size than the first, not 8-bit BGR). Anything else is a
// finding: a crash, a sanitizer report, another exception (libFuzzer reports it as uncaught),
// or a result that breaks an invariant (abort). Built by `make fuzzers` (CMake option
// CQC_BUILD_FUZZERS, clang); run by tests/test_fuzz.py briefly and `make fuzz` for longer.
// A frame that track.downscale makes empty must be an InputError (it was OpenCV's resize
// assertion, an uncaught cv::Exception, until c49021c).
#include "conveyor_qc/pipeline.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant broken: %s\n", what);
        std::abort();
    }
}

// A value for a parameter: mostly near the documented ranges, sometimes anything.
double number(FuzzedDataProvider& in, double lo, double hi) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0:
            return in.ConsumeFloatingPoint<double>();
        case 1:
            return lo;
        case 2:
            return hi;
        case 3:
            return in.ConsumeFloatingPointInRange<double>(lo - 1.0, hi + 1.0);
        default:
            return in.ConsumeFloatingPointInRange<double>(lo, hi);
    }
}

int integer(FuzzedDataProvider& in, int lo, int hi) {
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
        case 0:
            return in.ConsumeIntegral<int>();
        case 1:
            return in.ConsumeIntegralInRange<int>(lo - 2, hi + 2);
        default:
            return in.ConsumeIntegralInRange<int>(lo, hi);
    }
}

cv::Scalar colour(FuzzedDataProvider& in) {
    return cv::Scalar(number(in, 0, 255), number(in, 0, 255), number(in, 0, 255));
}

void fill_params(FuzzedDataProvider& in, cqc::PipelineParams& p) {
    // Each field is left at its default or set, so that most inputs stay near valid settings.
    auto& m = p.mask;
    if (in.ConsumeBool()) m.mode = in.ConsumeBool() ? cqc::MaskMode::Auto : cqc::MaskMode::Threshold;
    if (in.ConsumeBool()) m.object_space = static_cast<cqc::ColorSpace>(in.ConsumeIntegralInRange<int>(0, 2));
    if (in.ConsumeBool()) {
        m.object_lower = colour(in);
        m.object_upper = colour(in);
    }
    if (in.ConsumeBool()) m.shadow_enabled = in.ConsumeBool();
    if (in.ConsumeBool()) {
        m.shadow_lower = colour(in);
        m.shadow_upper = colour(in);
    }
    if (in.ConsumeBool()) m.shadow_min_ratio = number(in, 0, 1);
    if (in.ConsumeBool()) m.shadow_max_ratio = number(in, 0, 1);
    if (in.ConsumeBool()) m.shadow_chroma = number(in, 0, 100);
    if (in.ConsumeBool()) m.edges_enabled = in.ConsumeBool();
    if (in.ConsumeBool()) {
        m.canny_low = number(in, 0, 1000);
        m.canny_high = number(in, 0, 1000);
    }
    if (in.ConsumeBool()) m.edge_dilate = integer(in, 0, 10);
    if (in.ConsumeBool()) m.auto_learn_frames = integer(in, 1, 20);
    if (in.ConsumeBool()) m.auto_learn_stride = integer(in, 1, 10);
    if (in.ConsumeBool()) m.auto_threshold = number(in, 0, 100);
    if (in.ConsumeBool()) m.auto_min_sigma = number(in, 0, 100);
    if (in.ConsumeBool()) m.blur = integer(in, 1, 15);
    if (in.ConsumeBool()) m.kernel_size = integer(in, 1, 31);
    if (in.ConsumeBool()) m.open_iterations = integer(in, 0, 20);
    if (in.ConsumeBool()) m.erode_iterations = integer(in, 0, 20);
    if (in.ConsumeBool()) m.dilate_iterations = integer(in, 0, 20);
    if (in.ConsumeBool()) m.close_iterations = integer(in, 0, 20);
    if (in.ConsumeBool()) m.fill_holes = in.ConsumeBool();
    auto& d = p.detect;
    if (in.ConsumeBool()) d.min_area = number(in, 0, 2000);
    if (in.ConsumeBool()) d.max_area = number(in, 0, 1e9);
    if (in.ConsumeBool()) d.split_solidity = number(in, 0, 1);
    if (in.ConsumeBool()) d.split_min_part = number(in, 0, 1);
    auto& t = p.track;
    if (in.ConsumeBool())
        t.kind = in.ConsumeBool() ? cqc::TrackerKind::None
                                  : static_cast<cqc::TrackerKind>(in.ConsumeIntegralInRange<int>(0, 5));
    if (in.ConsumeBool()) t.downscale = number(in, 0, 1);
    if (in.ConsumeBool()) t.detect_every = integer(in, 1, 30);
    if (in.ConsumeBool()) t.entry_strip = number(in, 0, 1);
    if (in.ConsumeBool()) t.direction = static_cast<cqc::Direction>(in.ConsumeIntegralInRange<int>(0, 4));
    if (in.ConsumeBool()) t.max_distance = number(in, 0, 500);
    if (in.ConsumeBool()) t.max_misses = integer(in, 0, 30);
    if (in.ConsumeBool()) t.min_hits = integer(in, 1, 30);
    if (in.ConsumeBool()) t.grow_ratio = number(in, 1, 3);
    if (in.ConsumeBool()) t.edge_margin = number(in, 0, 50);
    if (in.ConsumeBool()) t.duplicate_iou = number(in, 0, 1);
    if (in.ConsumeBool()) t.parallel = in.ConsumeBool();
    if (in.ConsumeBool()) p.count.line = number(in, 0, 1);
}

// A belt with a few blobs that move along it by `shift` pixels a frame.
cv::Mat make_frame(FuzzedDataProvider& in, int w, int h, int index, const std::vector<cv::Vec4i>& blobs,
                   const cv::Scalar& belt, const std::vector<cv::Scalar>& colours, int shift, bool vertical) {
    cv::Mat frame(h, w, CV_8UC3, belt);
    for (size_t i = 0; i < blobs.size(); ++i) {
        const auto& b = blobs[i];
        const int along = b[0] + shift * index;
        const cv::Point centre = vertical ? cv::Point(b[1], along) : cv::Point(along, b[1]);
        cv::ellipse(frame, centre, cv::Size(b[2], b[3]), 0, 0, 360, colours[i], cv::FILLED);
    }
    if (in.ConsumeBool()) {  // a few bytes of noise straight from the input
        const std::string noise = in.ConsumeBytesAsString(in.ConsumeIntegralInRange<size_t>(0, 64));
        for (size_t i = 0; i < noise.size() && frame.total() > 0; ++i)
            frame.data[(i * 7919u) % (frame.total() * 3)] = static_cast<uint8_t>(noise[i]);
    }
    return frame;
}

void check_finished(const std::vector<cqc::FinishedTrack>& done) {
    for (const auto& t : done) {
        check(t.id > 0, "a finished track has an id");
        check(t.first_frame <= t.last_frame, "first_frame <= last_frame");
        check(!t.history.empty(), "a finished track has a path");
        for (size_t i = 1; i < t.history.size(); ++i)
            check(t.history[i - 1].frame < t.history[i].frame, "a path's frames increase");
        for (const auto& p : t.history)
            check(std::isfinite(p.box.x) && std::isfinite(p.box.y) && std::isfinite(p.box.width) &&
                      std::isfinite(p.box.height),
                  "boxes are finite");
    }
}

bool too_small(const cqc::PipelineParams& p, int w, int h) {
    const double r = p.track.downscale;
    return r < 1.0 && (cvRound(w * r) < 1 || cvRound(h * r) < 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    cqc::PipelineParams params;
    fill_params(in, params);
    bool valid = true;
    try {
        params.validate();
    } catch (const cqc::ParamError&) {
        valid = false;
    }
    const int w = in.ConsumeIntegralInRange<int>(1, 96), h = in.ConsumeIntegralInRange<int>(1, 96);
    const int frames = in.ConsumeIntegralInRange<int>(1, 16);
    const int shift = in.ConsumeIntegralInRange<int>(-12, 12);
    const bool vertical = in.ConsumeBool();
    const cv::Scalar belt = colour(in);
    std::vector<cv::Vec4i> blobs;
    std::vector<cv::Scalar> colours;
    for (int i = in.ConsumeIntegralInRange<int>(0, 6); i > 0; --i) {
        blobs.emplace_back(in.ConsumeIntegralInRange<int>(-40, 130), in.ConsumeIntegralInRange<int>(-10, 100),
                           in.ConsumeIntegralInRange<int>(1, 30), in.ConsumeIntegralInRange<int>(1, 30));
        colours.push_back(colour(in));
    }

    // The mask builder and the detector on their own, with whatever settings.
    if (in.ConsumeBool()) {
        try {
            cqc::MaskBuilder builder(params.mask);
            cv::Mat mask;
            for (int i = 0; i < frames; ++i) {
                const int fw = in.ConsumeBool() ? w : in.ConsumeIntegralInRange<int>(1, 96);
                builder.build(make_frame(in, fw, h, i, blobs, belt, colours, shift, vertical), mask);
                check(mask.rows == h && mask.cols == fw && mask.type() == CV_8UC1, "mask of the frame's size");
            }
            cqc::Detector detector(params.detect);
            std::vector<cqc::Detection> found;
            cv::Rect roi(in.ConsumeIntegralInRange<int>(-20, 100), in.ConsumeIntegralInRange<int>(-20, 100),
                         in.ConsumeIntegralInRange<int>(-5, 120), in.ConsumeIntegralInRange<int>(-5, 120));
            const double scale = in.ConsumeBool() ? 1.0 : in.ConsumeFloatingPoint<double>();
            try {
                detector.detect(mask, in.ConsumeBool() ? cv::Rect() : roi, scale, found);
            } catch (const cqc::InputError&) {
            }
            for (const auto& det : found) check(det.area >= 0 && std::isfinite(det.box.x), "detections are sane");
        } catch (const cqc::ParamError&) {
            check(!valid, "MaskBuilder/Detector refused parameters that validate() accepts");
        }
        return 0;
    }

    if (!valid) {
        try {
            cqc::Pipeline pipeline(params);
        } catch (const cqc::ParamError&) {
            return 0;
        }
        check(false, "Pipeline took parameters that validate() refuses");
    }
    cqc::Pipeline pipeline(params);
    std::vector<cqc::FinishedTrack> done;
    int first_w = -1;  // the width of the first frame taken: every later frame must have it
    for (int i = 0; i < frames; ++i) {
        const bool other_size = in.ConsumeIntegralInRange<int>(0, 15) == 0;
        const int fw = other_size ? in.ConsumeIntegralInRange<int>(1, 96) : w;
        cv::Mat frame = make_frame(in, fw, h, i, blobs, belt, colours, shift, vertical);
        try {
            const cqc::FrameResult& r = pipeline.process(frame);
            check(first_w < 0 || fw == first_w, "a frame of another size was taken");
            check(!too_small(params, fw, h), "a frame that downscale empties was taken");
            first_w = fw;
            check(r.count >= 0 && r.counted >= 0, "counts are not negative");
            for (const auto& t : r.tracks) check(!t.confirmed || t.id > 0, "confirmed tracks have ids");
        } catch (const cqc::InputError&) {
            check((first_w >= 0 && fw != first_w) || too_small(params, fw, h),
                  "a frame of the first frame's size was refused");
        }
        done.clear();
        pipeline.take_finished(done);
        check_finished(done);
    }
    const cqc::FrameResult& end = pipeline.finish();
    check(end.counted >= 0, "final count is not negative");
    done.clear();
    pipeline.take_finished(done);
    check_finished(done);
    return 0;
}
