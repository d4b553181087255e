// The allowed values of a numeric setting, stated once. Each Params struct
// lists its fields' ranges in ranges(): validate() checks them in that order
// (the first one out of range is the one reported) and words its error from
// them, and the Python module hands them to docs/settings.md
// (tools/settings_doc.py), so that a range cannot say one thing in the check
// and another in the docs.
#pragma once

#include <string>

namespace cqc {

class ParamRange {
  public:
    // `value`: the field's value in the struct whose ranges() made this.
    ParamRange(const char* field, double value) : field_(field), value_(value) {}

    // Bounds, inclusive (at_least, at_most) or exclusive (above, below). A
    // bound may be another field's value: `bound_field` names it, for the
    // message ("in [0, canny_high=160]") and the docs ("[0, canny_high]").
    ParamRange at_least(double lo, const char* bound_field = nullptr) const { return lower(lo, false, bound_field); }
    ParamRange above(double lo, const char* bound_field = nullptr) const { return lower(lo, true, bound_field); }
    ParamRange at_most(double hi, const char* bound_field = nullptr) const { return upper(hi, false, bound_field); }
    ParamRange below(double hi, const char* bound_field = nullptr) const { return upper(hi, true, bound_field); }
    // Odd integers only (median blur and kernel apertures).
    ParamRange odd() const {
        ParamRange r = *this;
        r.odd_ = true;
        return r;
    }

    const char* field() const { return field_; }
    double value() const { return value_; }
    // Whether the value is allowed (NaN never is).
    bool holds() const;
    // What the value must be, as the error message words it: "in (0, 1]",
    // "odd in [1, 15]", "in [0, canny_high=160]". With `values` false a bound
    // that is another field is named only: "in [0, canny_high]".
    std::string requirement(bool values = true) const;
    // Throws ParamError "<section>.<field> must be <requirement>, got <value>" unless holds().
    void check(const char* section) const;

  private:
    ParamRange lower(double lo, bool open, const char* bound_field) const {
        ParamRange r = *this;
        r.lo_ = lo;
        r.lo_open_ = open;
        r.lo_field_ = bound_field;
        return r;
    }
    ParamRange upper(double hi, bool open, const char* bound_field) const {
        ParamRange r = *this;
        r.hi_ = hi;
        r.hi_open_ = open;
        r.hi_field_ = bound_field;
        return r;
    }

    const char* field_;
    double value_;
    double lo_ = 0, hi_ = 0;
    bool lo_open_ = false, hi_open_ = false, odd_ = false;
    const char* lo_field_ = nullptr;
    const char* hi_field_ = nullptr;
};

}  // namespace cqc
