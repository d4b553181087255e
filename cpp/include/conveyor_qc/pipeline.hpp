// The whole per-frame job of the core: downscale, build the mask, find
// components, track. Usable from C++ with no Python at all:
//
//     cqc::Pipeline pipeline(cqc::PipelineParams{});
//     cv::Mat frame;
//     while (video.read(frame)) {
//         const cqc::FrameResult& r = pipeline.process(frame);
//         for (const auto& t : r.tracks) if (t.confirmed) draw(t.id, t.box);
//         std::vector<cqc::FinishedTrack> done;
//         pipeline.take_finished(done);
//     }
//     pipeline.finish();
#pragma once

#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/mask.hpp"
#include "conveyor_qc/tracker.hpp"
#include "conveyor_qc/types.hpp"

#include <memory>
#include <vector>

namespace cqc {

struct PipelineParams {
    MaskParams mask;
    DetectParams detect;
    TrackParams track;
    void validate() const;
};

struct FrameResult {
    int frame_index = 0;                 // 0-based
    bool detection_frame = false;        // detection ran on this frame
    std::vector<TrackState> tracks;      // live tracks (confirmed and not)
    std::vector<Detection> detections;   // this frame's detections (empty when none ran)
    int count = 0;                       // confirmed objects so far
};

class Pipeline {
public:
    explicit Pipeline(const PipelineParams& params);  // validates; throws ParamError

    // Process the next frame (BGR, CV_8UC3, same size as the first frame;
    // otherwise InputError). The result stays valid until the next call.
    const FrameResult& process(const cv::Mat& bgr);

    // Tracks that ended since the last call, moved into `out` (appended).
    void take_finished(std::vector<FinishedTrack>& out);

    // End of stream: every live confirmed track becomes finished.
    void finish();

    const PipelineParams& params() const { return params_; }
    const MaskBuilder& mask_builder() const { return mask_; }
    // The mask of the last detection frame (downscaled frame size).
    const cv::Mat& last_mask() const { return mask_img_; }
    int frames_processed() const { return next_frame_; }

private:
    PipelineParams params_;
    MaskBuilder mask_;
    Detector detector_;
    std::unique_ptr<MultiTracker> tracker_;
    cv::Size frame_size_;
    int next_frame_ = 0;
    cv::Mat small_, mask_img_;
    FrameResult result_;
};

}  // namespace cqc
