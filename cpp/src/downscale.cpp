#include "conveyor_qc/downscale.hpp"

#include "conveyor_qc/simd.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdint>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

namespace cqc {

namespace {

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CQC_DOWNSCALE_SSSE3 1
// 3 channels, 8 output pixels at a time: the two rows' sums as 16-bit lanes,
// lane k plus lane k + 3 (the pixel to the right), rounded, packed, and every
// other pixel's 3 bytes gathered with pshufb. Returns the pixels done. SSSE3
// (every x86-64 CPU since 2006) is taken from SimdLevel::SSSE3: the build's
// baseline is SSE2, where OpenCV's own code is slower than this.
__attribute__((target("ssse3"))) int average_row3_ssse3(const std::uint8_t* a, const std::uint8_t* b, std::uint8_t* d,
                                                        int pixels) {
    const __m128i zero = _mm_setzero_si128(), two = _mm_set1_epi16(2);
    const __m128i take0 = _mm_setr_epi8(0, 1, 2, 6, 7, 8, 12, 13, 14, -1, -1, -1, -1, -1, -1, -1);
    const __m128i take1 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 3, 4, 8, 9, 10, 14);
    const __m128i take1_tail = _mm_setr_epi8(15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i take2 = _mm_setr_epi8(-1, 0, 4, 5, 6, 10, 11, 12, -1, -1, -1, -1, -1, -1, -1, -1);
    int x = 0;
    for (; x + 8 <= pixels; x += 8, a += 48, b += 48, d += 24) {
        __m128i sums[7];
        for (int i = 0; i < 3; ++i) {
            const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16 * i));
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * i));
            sums[2 * i] = _mm_add_epi16(_mm_unpacklo_epi8(p, zero), _mm_unpacklo_epi8(q, zero));
            sums[2 * i + 1] = _mm_add_epi16(_mm_unpackhi_epi8(p, zero), _mm_unpackhi_epi8(q, zero));
        }
        sums[6] = zero;
        __m128i avg[6];
        for (int i = 0; i < 6; ++i) {
            const __m128i pair = _mm_add_epi16(sums[i], _mm_alignr_epi8(sums[i + 1], sums[i], 6));
            avg[i] = _mm_srli_epi16(_mm_add_epi16(pair, two), 2);
        }
        const __m128i p0 = _mm_packus_epi16(avg[0], avg[1]);
        const __m128i p1 = _mm_packus_epi16(avg[2], avg[3]);
        const __m128i p2 = _mm_packus_epi16(avg[4], avg[5]);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d),
                         _mm_or_si128(_mm_shuffle_epi8(p0, take0), _mm_shuffle_epi8(p1, take1)));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 16),
                         _mm_or_si128(_mm_shuffle_epi8(p1, take1_tail), _mm_shuffle_epi8(p2, take2)));
    }
    return x;
}

// The same with AVX2, two blocks of 8 pixels at a time: each 128-bit lane
// does one block exactly as above (every step stays within a lane).
__attribute__((target("avx2"))) int average_row3_avx2(const std::uint8_t* a, const std::uint8_t* b, std::uint8_t* d,
                                                      int pixels) {
    const __m256i zero = _mm256_setzero_si256(), two = _mm256_set1_epi16(2);
    const __m256i take0 = _mm256_setr_epi8(0, 1, 2, 6, 7, 8, 12, 13, 14, -1, -1, -1, -1, -1, -1, -1,  //
                                           0, 1, 2, 6, 7, 8, 12, 13, 14, -1, -1, -1, -1, -1, -1, -1);
    const __m256i take1 = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 3, 4, 8, 9, 10, 14,  //
                                           -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 3, 4, 8, 9, 10, 14);
    const __m256i take1_tail = _mm256_setr_epi8(15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                                15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i take2 = _mm256_setr_epi8(-1, 0, 4, 5, 6, 10, 11, 12, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                           -1, 0, 4, 5, 6, 10, 11, 12, -1, -1, -1, -1, -1, -1, -1, -1);
    int x = 0;
    for (; x + 16 <= pixels; x += 16, a += 96, b += 96, d += 48) {
        __m256i sums[7];
        for (int i = 0; i < 3; ++i) {
            // Bytes [16 i, 16 i + 16) of each block: the first block's in the low lane.
            const __m128i* pa = reinterpret_cast<const __m128i*>(a + 16 * i);
            const __m128i* pb = reinterpret_cast<const __m128i*>(b + 16 * i);
            const __m256i p =
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(pa)), _mm_loadu_si128(pa + 3), 1);
            const __m256i q =
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(pb)), _mm_loadu_si128(pb + 3), 1);
            sums[2 * i] = _mm256_add_epi16(_mm256_unpacklo_epi8(p, zero), _mm256_unpacklo_epi8(q, zero));
            sums[2 * i + 1] = _mm256_add_epi16(_mm256_unpackhi_epi8(p, zero), _mm256_unpackhi_epi8(q, zero));
        }
        sums[6] = zero;
        __m256i avg[6];
        for (int i = 0; i < 6; ++i) {
            const __m256i pair = _mm256_add_epi16(sums[i], _mm256_alignr_epi8(sums[i + 1], sums[i], 6));
            avg[i] = _mm256_srli_epi16(_mm256_add_epi16(pair, two), 2);
        }
        const __m256i p0 = _mm256_packus_epi16(avg[0], avg[1]);
        const __m256i p1 = _mm256_packus_epi16(avg[2], avg[3]);
        const __m256i p2 = _mm256_packus_epi16(avg[4], avg[5]);
        const __m256i lo = _mm256_or_si256(_mm256_shuffle_epi8(p0, take0), _mm256_shuffle_epi8(p1, take1));
        const __m256i hi = _mm256_or_si256(_mm256_shuffle_epi8(p1, take1_tail), _mm256_shuffle_epi8(p2, take2));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm256_castsi256_si128(lo));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 16), _mm256_castsi256_si128(hi));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 24), _mm256_extracti128_si256(lo, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 40), _mm256_extracti128_si256(hi, 1));
    }
    return x;
}
#endif

}  // namespace

void resize_area(const cv::Mat& src, cv::Mat& dst, cv::Size size) {
    const int cn = src.channels();
    const bool half = src.depth() == CV_8U && (cn == 1 || cn == 3 || cn == 4) && size.width > 0 && size.height > 0 &&
                      2 * size.width == src.cols && 2 * size.height == src.rows && dst.data != src.data;
    if (!half) {
        cv::resize(src, dst, size, 0, 0, cv::INTER_AREA);
        return;
    }
    dst.create(size, src.type());
    const int n = size.width * cn;
#ifdef CQC_DOWNSCALE_SSSE3
    const SimdLevel level = simd_level();
    const bool ssse3 = level >= SimdLevel::SSSE3, avx2 = level >= SimdLevel::AVX2;
#endif
    for (int y = 0; y < size.height; ++y) {
        const std::uint8_t* __restrict a = src.ptr<std::uint8_t>(2 * y);
        const std::uint8_t* __restrict b = src.ptr<std::uint8_t>(2 * y + 1);
        std::uint8_t* __restrict d = dst.ptr<std::uint8_t>(y);
        if (cn == 3) {
            int x = 0;
#ifdef CQC_DOWNSCALE_SSSE3
            int done = avx2 ? average_row3_avx2(a, b, d, size.width) : 0;
            if (ssse3) done += average_row3_ssse3(a + 6 * done, b + 6 * done, d + 3 * done, size.width - done);
            x = 3 * done;
            a += 6 * done;
            b += 6 * done;
#endif
            for (; x < n; x += 3, a += 6, b += 6) {
                d[x] = static_cast<std::uint8_t>((a[0] + a[3] + b[0] + b[3] + 2) >> 2);
                d[x + 1] = static_cast<std::uint8_t>((a[1] + a[4] + b[1] + b[4] + 2) >> 2);
                d[x + 2] = static_cast<std::uint8_t>((a[2] + a[5] + b[2] + b[5] + 2) >> 2);
            }
        } else {
            for (int x = 0; x < n; ++x) {
                const int i = (x / cn) * 2 * cn + x % cn;
                d[x] = static_cast<std::uint8_t>((a[i] + a[i + cn] + b[i] + b[i + cn] + 2) >> 2);
            }
        }
    }
}

cv::Size downscaled_size(cv::Size frame, double r) {
    if (r >= 1.0) return frame;
    return {cvRound(frame.width * r), cvRound(frame.height * r)};
}

void downscale_frame(const cv::Mat& src, double r, cv::Mat& dst, cv::Mat& scratch) {
    if (r >= 1.0) {
        dst = src;  // header only, no copy
        return;
    }
    const cv::Size size = downscaled_size(src.size(), r);
    const double inverse = 1.0 / r;
    const int k = static_cast<int>(std::floor(inverse + 1e-9));
    if (std::abs(inverse - k) < 1e-9) {
        resize_area(src, dst, size);  // 1/k: INTER_AREA's exact, fast path (no allocation at 1/2)
    } else if (k >= 2) {
        cv::resize(src, scratch, cv::Size(), 1.0 / k, 1.0 / k, cv::INTER_AREA);
        cv::resize(scratch, dst, size, 0, 0, cv::INTER_LINEAR);
    } else {
        cv::resize(src, dst, size, 0, 0, cv::INTER_LINEAR);
    }
}

}  // namespace cqc
