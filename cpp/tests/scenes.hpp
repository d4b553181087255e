// Synthetic frames with exactly known objects, shared by the mask and belt
// model tests: a light grey belt with sensor noise, brown "cookies" with dark
// chips, shadows.
#pragma once

#include "conveyor_qc/mask.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>

namespace cqc::test {

const cv::Size kFrame(640, 360);
const cv::Scalar kBelt(200, 200, 195);
const cv::Scalar kCookie(40, 70, 120);
const cv::Scalar kChip(15, 25, 45);
const cv::Scalar kBiscuit(90, 150, 200);  // lighter than the cookie, still darker than the belt

// Auto-mode settings that learn from `frames` frames, one in `stride`.
inline MaskParams learning(int frames, int stride) {
    MaskParams p;
    p.auto_learn_frames = frames;
    p.auto_learn_stride = stride;
    return p;
}

inline cv::Mat belt(const cv::Scalar& colour = kBelt) {
    return cv::Mat(kFrame, CV_8UC3, colour);
}

// A disc with dark chips inside (texture that Canny picks up). `rim` > 0 draws a
// darker baked edge of that width, as the shading between touching cookies.
inline void cookie(cv::Mat& img, cv::Point c, int r, const cv::Scalar& body = kCookie, int rim = 0) {
    if (rim > 0) {
        cv::circle(img, c, r, kChip, cv::FILLED, cv::LINE_8);
        cv::circle(img, c, r - rim, body, cv::FILLED, cv::LINE_8);
    } else {
        cv::circle(img, c, r, body, cv::FILLED, cv::LINE_8);
    }
    const double off[5][2] = {{0.4, 0.2}, {-0.35, 0.3}, {0.1, -0.45}, {-0.2, -0.1}, {0.5, -0.3}};
    for (const auto& o : off) {
        cv::circle(img, c + cv::Point(cvRound(o[0] * r), cvRound(o[1] * r)), std::max(3, r / 8), kChip, cv::FILLED);
    }
}

// A shadow: the belt, darker (same chroma).
inline void shadow(cv::Mat& img, cv::Point c, cv::Size axes, double factor = 0.6, const cv::Scalar& colour = kBelt) {
    cv::ellipse(img, c, axes, 0, 0, 360, colour * factor, cv::FILLED);
}

// Gaussian sensor noise with a fixed seed.
inline cv::Mat noisy(const cv::Mat& clean, double sigma = 4.0, std::uint64_t seed = 12345) {
    cv::RNG rng(seed);
    cv::Mat noise(clean.size(), CV_16SC3), wide, out;
    rng.fill(noise, cv::RNG::NORMAL, 0, sigma);
    clean.convertTo(wide, CV_16SC3);
    wide += noise;
    wide.convertTo(out, CV_8UC3);
    return out;
}

}  // namespace cqc::test
