// Scanning a row of an 8-bit mask for runs, 16 or 8 bytes at a time where it can.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define CQC_ROW_SCAN_SSE2 1
#endif

namespace cqc::detail {

// `sse2`: simd_level() >= SimdLevel::SSE2, asked once per mask by the caller
// (these run once per run of a row). Without it, plain C++ eight bytes at a
// time: what builds for other CPUs run.

// Index of the first zero byte at or after x (w if none).
inline int skip_nonzero(const std::uint8_t* row, int x, int w, bool sse2) {
#ifdef CQC_ROW_SCAN_SSE2
    // 16 bytes a step; the first zero of a block found from its bit mask.
    for (const __m128i zero = _mm_setzero_si128(); sse2 && x + 16 <= w; x += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x));
        const unsigned zeros = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)));
        if (zeros) return x + __builtin_ctz(zeros);
    }
#endif
    (void)sse2;
    for (std::uint64_t v; x + 8 <= w; x += 8) {  // 0/255 masks: eight 255s at a time
        std::memcpy(&v, row + x, 8);
        if (v != ~std::uint64_t{0}) break;
    }
    while (x < w && row[x]) ++x;
    return x;
}

// Index of the first nonzero byte at or after x (w if none).
inline int skip_zero(const std::uint8_t* row, int x, int w, bool sse2) {
#ifdef CQC_ROW_SCAN_SSE2
    for (const __m128i zero = _mm_setzero_si128(); sse2 && x + 16 <= w; x += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x));
        const unsigned set = ~static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero))) & 0xffffu;
        if (set) return x + __builtin_ctz(set);
    }
#endif
    (void)sse2;
    for (std::uint64_t v; x + 8 <= w; x += 8) {
        std::memcpy(&v, row + x, 8);
        if (v != 0) break;
    }
    while (x < w && !row[x]) ++x;
    return x;
}

}  // namespace cqc::detail
