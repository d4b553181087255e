// Tests of tracks.txt's lines (mot.hpp): the numbers as printf("%.2f")
// rounds them, trailing zeros dropped, and whole lines.
#include "check.hpp"

#include "conveyor_qc/mot.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace cqc;

namespace {

std::string printf_decimal2(double v) {
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    std::string s(buf);
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    return s;
}

}  // namespace

TEST_CASE("mot: two decimals as printf rounds them, without trailing zeros") {
    CHECK_EQ(format_decimal2(12.0), std::string("12"));
    CHECK_EQ(format_decimal2(12.5), std::string("12.5"));
    CHECK_EQ(format_decimal2(12.25), std::string("12.25"));
    CHECK_EQ(format_decimal2(0.125), std::string("0.12"));  // half to even, on the exact value
    CHECK_EQ(format_decimal2(2.675), std::string("2.67"));  // 2.67499999... in binary
    CHECK_EQ(format_decimal2(-0.0), std::string("-0"));
    CHECK_EQ(format_decimal2(-0.004), std::string("-0"));
    CHECK_EQ(format_decimal2(100.0), std::string("100"));  // zeros before the point stay
    CHECK_EQ(format_decimal2(1e300).size(), std::size_t(301));
    unsigned seed = 7;
    for (int i = 0; i < 100000; ++i) {
        seed = seed * 1103515245u + 12345u;
        const double v = (static_cast<double>(seed % 4000000u) - 100000.0) / 1000.0 + (i % 3) * 0.0005;
        if (format_decimal2(v) != printf_decimal2(v)) {
            CHECK_EQ(format_decimal2(v), printf_decimal2(v));
            break;
        }
    }
}

TEST_CASE("mot: a track's lines, frames 1-based, each ending with a newline") {
    const int frames[] = {0, 1, 41};
    const float boxes[] = {10.f, 20.f, 30.f, 40.f, 10.5f, 20.25f, 30.f, 40.f, -1.5f, 0.f, 7.125f, 1e6f};
    std::string out = "kept\n";
    append_mot_lines(out, 7, frames, boxes, 3);
    CHECK_EQ(out, std::string("kept\n"
                              "1,7,10,20,30,40,1,-1,-1,-1\n"
                              "2,7,10.5,20.25,30,40,1,-1,-1,-1\n"
                              "42,7,-1.5,0,7.12,1000000,1,-1,-1,-1\n"));
    const std::size_t before = out.size();
    append_mot_lines(out, 8, frames, boxes, 0);  // no frames: nothing
    CHECK_EQ(out.size(), before);
}
