#include "conveyor_qc/pipeline.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <string>

namespace cqc {

void PipelineParams::validate() const {
    mask.validate();
    detect.validate();
    track.validate();
    count.validate();
}

Pipeline::Pipeline(const PipelineParams& params)
    : params_(params),
      mask_((params.validate(), params.mask)),
      detector_(params.detect),
      tracker_(MultiTracker::create(params.track)),
      counter_(params.count, params.track.direction, static_cast<float>(params.track.edge_margin)) {
    result_.crossed.reserve(16);
    ended_.reserve(16);
    finished_.reserve(16);
}

// The counting line sees the tracks that ended on this frame before the caller
// takes them: they move from the tracker to ended_, past the counter, then to
// finished_ (handed over by take_finished).
void Pipeline::count_frame(bool stream_end) {
    ended_.clear();
    tracker_->take_finished(ended_);
    counter_.update(std::max(next_frame_ - 1, 0), frame_size_, tracker_->tracks(), ended_, stream_end);
    for (auto& f : ended_) finished_.push_back(std::move(f));
    ended_.clear();
    const auto& crossed = counter_.crossed();
    result_.crossed.assign(crossed.begin(), crossed.end());
    result_.counted = counter_.count();
}

const FrameResult& Pipeline::process(const cv::Mat& bgr) {
    if (bgr.empty() || bgr.type() != CV_8UC3) {
        throw InputError("frame must be a non-empty 8-bit BGR image (CV_8UC3), got type " +
                         std::to_string(bgr.type()) + " of size " + std::to_string(bgr.cols) + "x" +
                         std::to_string(bgr.rows));
    }
    if (next_frame_ == 0) {
        frame_size_ = bgr.size();
    } else if (bgr.size() != frame_size_) {
        throw InputError("frame size changed mid-stream: " + std::to_string(bgr.cols) + "x" +
                         std::to_string(bgr.rows) + " after " + std::to_string(frame_size_.width) + "x" +
                         std::to_string(frame_size_.height));
    }

    // One downscale per frame: tracking and detection both work on it.
    const double r = params_.track.downscale;
    if (r < 1.0) {
        cv::resize(bgr, small_, cv::Size(), r, r, cv::INTER_AREA);
    } else {
        small_ = bgr;  // header only, no copy
    }

    const int index = next_frame_++;
    result_.frame_index = index;
    result_.detection_frame = tracker_->is_detection_frame(index);
    result_.detections.clear();

    // Auto mode must see the belt on its learning frames even when detection
    // does not run on them.
    const bool learning = !mask_.ready() && params_.mask.mode == MaskMode::Auto;
    if (result_.detection_frame || learning) {
        mask_.build(small_, mask_img_);
    }
    if (result_.detection_frame) {
        const cv::Rect roi = tracker_->detection_roi(small_.size());
        detector_.detect(mask_img_, roi, r, result_.detections);
    }
    tracker_->update(index, small_, frame_size_, result_.detection_frame ? &result_.detections : nullptr);

    const auto& live = tracker_->tracks();
    result_.tracks.assign(live.begin(), live.end());
    result_.count = tracker_->confirmed_count();
    count_frame(false);
    return result_;
}

void Pipeline::take_finished(std::vector<FinishedTrack>& out) {
    for (auto& f : finished_) out.push_back(std::move(f));
    finished_.clear();
}

const FrameResult& Pipeline::finish() {
    tracker_->finish_all();
    result_.detection_frame = false;
    result_.tracks.clear();
    result_.detections.clear();
    result_.count = tracker_->confirmed_count();
    count_frame(true);
    return result_;
}

}  // namespace cqc
