#include "conveyor_qc/types.hpp"

#include "params_check.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace cqc {

namespace detail {

std::string format_number(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

void param_error(const char* section, const std::string& field, const std::string& range, double got) {
    throw ParamError(std::string(section) + "." + field + " must be " + range + ", got " + format_number(got));
}

std::string normalise_name(const std::string& s) {
    std::string v(s);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    std::replace(v.begin(), v.end(), '-', '_');
    return v;
}

}  // namespace detail

const char* to_string(Direction d) {
    switch (d) {
        case Direction::LeftToRight:
            return "left_to_right";
        case Direction::RightToLeft:
            return "right_to_left";
        case Direction::TopToBottom:
            return "top_to_bottom";
        case Direction::BottomToTop:
            return "bottom_to_top";
        case Direction::Auto:
            return "auto";
    }
    return "left_to_right";
}

Direction direction_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (Direction d : kDirections) {
        if (v == to_string(d)) return d;
    }
    throw ParamError("track.direction must be one of " + enum_names(kDirections) + ", got '" + s + "'");
}

}  // namespace cqc
