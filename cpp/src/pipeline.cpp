#include "conveyor_qc/pipeline.hpp"

#include "params_check.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace cqc {

void PipelineParams::validate() const {
    mask.validate();
    detect.validate();
    track.validate();
    count.validate();
}

namespace {

// The counting line needs a real direction; with auto, a placeholder until the
// direction is read (nothing is counted meanwhile).
Direction known_or_placeholder(Direction d) {
    return d == Direction::Auto ? Direction::LeftToRight : d;
}

}  // namespace

Pipeline::Pipeline(const PipelineParams& params)
    : params_(params),
      mask_((params.validate(), params.mask)),
      detector_(params.detect),
      direction_(params.track.direction),
      counter_(params.count, known_or_placeholder(params.track.direction),
               static_cast<float>(params.track.edge_margin)) {
    if (direction_ == Direction::Auto) {
        DirectionFinderParams fp;
        fp.max_distance = params.track.max_distance;
        finder_ = std::make_unique<DirectionFinder>(fp);
        for (Direction d :
             {Direction::LeftToRight, Direction::RightToLeft, Direction::TopToBottom, Direction::BottomToTop}) {
            TrackParams tp = params.track;
            tp.direction = d;
            candidates_.push_back(MultiTracker::create(tp));
            candidates_.back()->hold_confirmation(true);
        }
    } else {
        tracker_ = MultiTracker::create(params.track);
    }
    result_.crossed.reserve(16);
    ended_.reserve(16);
    finished_.reserve(16);
}

// The direction is known: its candidate tracker goes on alone, free to confirm.
void Pipeline::adopt(Direction d) {
    tracker_ = std::move(candidates_[static_cast<size_t>(d)]);
    candidates_.clear();
    finder_.reset();
    tracker_->hold_confirmation(false);
    counter_ = LineCounter(params_.count, d, static_cast<float>(params_.track.edge_margin));
    direction_ = d;
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
        throw InputError("frame must be a non-empty 8-bit BGR image (CV_8UC3), got type " + std::to_string(bgr.type()) +
                         " of size " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows));
    }
    if (next_frame_ == 0) {
        frame_size_ = bgr.size();
    } else if (bgr.size() != frame_size_) {
        throw InputError("frame size changed mid-stream: " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows) +
                         " after " + std::to_string(frame_size_.width) + "x" + std::to_string(frame_size_.height));
    }

    // One downscale per frame: tracking and detection both work on it.
    const double r = params_.track.downscale;
    if (cqc::downscaled_size(bgr.size(), r).empty()) {
        throw InputError("frame " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows) +
                         " is too small for track.downscale " + detail::format_number(r) +
                         ": the downscaled frame would be empty");
    }

    const int index = next_frame_++;
    const MultiTracker& any = tracker_ ? *tracker_ : *candidates_.front();
    result_.frame_index = index;
    result_.detection_frame = any.is_detection_frame(index);
    result_.detections.clear();

    // Auto mode must see the belt on its learning frames even when detection
    // does not run on them.
    const bool learning = !mask_.ready() && params_.mask.mode == MaskMode::Auto;
    // While the direction is read, detection runs on every frame: the finder
    // follows objects from frame to frame, which X frames apart (the seed's
    // X = 20 with KCF) may move farther than any gate can match.
    const bool reading = finder_ != nullptr;
    // The downscaled frame feeds the mask and OpenCV's trackers. Without a
    // tracker (the default), frames between detections need none: skipping
    // its downscale saved ~15 % of the core's time at X = 2.
    const bool mask_needed = result_.detection_frame || learning || reading;
    const bool small_needed = mask_needed || params_.track.kind != TrackerKind::None;
    if (small_needed) {
        downscale_frame(bgr, r, small_, downscale_scratch_);
        small_frame_ = index;
    }
    const cv::Mat& small = small_needed ? small_ : no_frame_;
    if (mask_needed) {
        mask_.build(small_, mask_img_);
    }
    if (result_.detection_frame) {
        // While the direction is unknown, so is the entry strip: everywhere.
        const cv::Rect roi = tracker_ ? tracker_->detection_roi(small_.size()) : cv::Rect();
        detector_.detect(mask_img_, roi, r, result_.detections);
        if (reading && finder_->add(result_.detections)) adopt(finder_->direction());
    } else if (reading) {
        detector_.detect(mask_img_, cv::Rect(), r, reading_dets_);
        if (finder_->add(reading_dets_)) adopt(finder_->direction());
    }
    const std::vector<Detection>* dets = result_.detection_frame ? &result_.detections : nullptr;

    if (!tracker_) {
        // Still reading the direction: every candidate follows the same
        // detections; the caller sees the leading one's (unconfirmed) tracks.
        for (auto& c : candidates_) c->update(index, small, frame_size_, dets);
        const auto& live = candidates_[static_cast<size_t>(finder_->direction())]->tracks();
        result_.tracks.assign(live.begin(), live.end());
        result_.count = 0;
        result_.crossed.clear();
        result_.counted = 0;
        return result_;
    }
    tracker_->update(index, small, frame_size_, dets);

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

void Pipeline::recycle(std::vector<FinishedTrack>& done) {
    // Before the direction is known nothing is confirmed, so nothing finishes.
    if (tracker_) tracker_->recycle(done);
    done.clear();
}

const FrameResult& Pipeline::finish() {
    result_.detection_frame = false;
    result_.tracks.clear();
    result_.detections.clear();
    if (!tracker_) {
        // The stream ended before the belt was seen moving: nothing passed the
        // line, and no track was confirmed.
        for (auto& c : candidates_) c->finish_all();
        result_.count = 0;
        result_.crossed.clear();
        result_.counted = 0;
        return result_;
    }
    tracker_->finish_all();
    result_.count = tracker_->confirmed_count();
    count_frame(true);
    return result_;
}

void Pipeline::downscaled(const cv::Mat& bgr, cv::Mat& dst) {
    if (next_frame_ == 0) throw InputError("no frame processed yet: nothing to downscale");
    if (bgr.type() != CV_8UC3 || bgr.size() != frame_size_) {
        throw InputError("the frame to downscale must be the last one processed (" + std::to_string(frame_size_.width) +
                         "x" + std::to_string(frame_size_.height) + " BGR), got type " + std::to_string(bgr.type()) +
                         " of size " + std::to_string(bgr.cols) + "x" + std::to_string(bgr.rows));
    }
    if (small_frame_ == next_frame_ - 1) {
        small_.copyTo(dst);
        return;
    }
    downscale_frame(bgr, params_.track.downscale, small_, downscale_scratch_);
    small_frame_ = next_frame_ - 1;
    small_.copyTo(dst);
}

cv::Size Pipeline::downscaled_size() const {
    return next_frame_ == 0 ? cv::Size() : cqc::downscaled_size(frame_size_, params_.track.downscale);
}

}  // namespace cqc
