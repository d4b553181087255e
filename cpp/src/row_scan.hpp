// Scanning a row of an 8-bit mask for runs, a word at a time where it can.
#pragma once

#include <cstdint>
#include <cstring>

namespace cqc::detail {

// Index of the first zero byte at or after x (w if none).
inline int skip_nonzero(const std::uint8_t* row, int x, int w) {
    for (std::uint64_t v; x + 8 <= w; x += 8) {  // 0/255 masks: eight 255s at a time
        std::memcpy(&v, row + x, 8);
        if (v != ~std::uint64_t{0}) break;
    }
    while (x < w && row[x]) ++x;
    return x;
}

// Index of the first nonzero byte at or after x (w if none).
inline int skip_zero(const std::uint8_t* row, int x, int w) {
    for (std::uint64_t v; x + 8 <= w; x += 8) {
        std::memcpy(&v, row + x, 8);
        if (v != 0) break;
    }
    while (x < w && !row[x]) ++x;
    return x;
}

}  // namespace cqc::detail
