#include "conveyor_qc/mot.hpp"

#include <charconv>
#include <system_error>

namespace cqc {

void append_decimal2(std::string& out, double v) {
    // std::to_chars with a precision is printf("%.*f") in the "C" locale,
    // correctly rounded; 1e308 to two decimals fits in 320 characters.
    char buf[320];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 2);
    const char* last = ec == std::errc() ? end : buf;
    const char* point = std::char_traits<char>::find(buf, static_cast<std::size_t>(last - buf), '.');
    if (point != nullptr) {
        while (last > point + 1 && last[-1] == '0') --last;
        if (last == point + 1) last = point;
    }
    out.append(buf, static_cast<std::size_t>(last - buf));
}

std::string format_decimal2(double v) {
    std::string s;
    append_decimal2(s, v);
    return s;
}

namespace {

template <typename Value>
void append_lines(std::string& out, int track_id, const int* frames, const Value* boxes, std::size_t n) {
    char number[16];
    const std::string id(number, std::to_chars(number, number + sizeof number, track_id).ptr);
    for (std::size_t i = 0; i < n; ++i) {
        out.append(number, std::to_chars(number, number + sizeof number, frames[i] + 1LL).ptr);
        out += ',';
        out += id;
        for (std::size_t k = 0; k < 4; ++k) {
            out += ',';
            append_decimal2(out, static_cast<double>(boxes[4 * i + k]));
        }
        out += ",1,-1,-1,-1\n";
    }
}

}  // namespace

void append_mot_lines(std::string& out, int track_id, const int* frames, const float* boxes, std::size_t n) {
    append_lines(out, track_id, frames, boxes, n);
}

void append_mot_lines(std::string& out, int track_id, const int* frames, const double* boxes, std::size_t n) {
    append_lines(out, track_id, frames, boxes, n);
}

}  // namespace cqc
