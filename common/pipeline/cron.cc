#include "common/pipeline/cron.h"

#include <array>
#include <cctype>
#include <vector>

#include "absl/strings/str_cat.h"

namespace assay {
namespace {

struct FieldInfo {
  const char* name;
  int min;
  int max;
  const char* const* names;  // Names for min, min+1, ...; null when none.
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

constexpr FieldInfo kFields[] = {
    {"minute", 0, 59, nullptr},       {"hour", 0, 23, nullptr},
    {"day-of-month", 1, 31, nullptr}, {"month", 1, 12, kMonthNames},
    {"day-of-week", 0, 7, kDayNames},
};

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

class FieldParser {
 public:
  FieldParser(int index, const FieldInfo& info) : index_(index), info_(info) {}

  absl::Status Error(std::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat("cron field ", index_ + 1, " (", info_.name, "): ", std::string(message)));
  }

  // A number or (where allowed) a name, checked against the field's range.
  absl::StatusOr<int> Value(std::string_view text) const {
    if (text.empty()) return Error("missing number");
    if (info_.names != nullptr && std::isalpha(static_cast<unsigned char>(text[0]))) {
      std::string upper;
      for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const int count = info_.max - info_.min + 1 - (info_.max == 7 ? 1 : 0);
      for (int i = 0; i < count; ++i) {
        if (upper == info_.names[i]) return info_.min + i;
      }
      return Error(absl::StrCat("'", std::string(text), "' is not a known name"));
    }
    int value = 0;
    for (char c : text) {
      if (c < '0' || c > '9') {
        return Error(absl::StrCat("'", std::string(text), "' is not a number"));
      }
      value = value * 10 + (c - '0');
      if (value > 1000) break;
    }
    if (value < info_.min || value > info_.max) {
      return Error(absl::StrCat(std::string(text), " is out of range ", info_.min, "-", info_.max));
    }
    return value;
  }

  // Sets the bits of every value the field allows (indices are the values themselves).
  absl::Status Parse(std::string_view field, std::vector<bool>& out) const {
    out.assign(info_.max + 1, false);
    for (std::string_view item : Split(field, ',')) {
      if (item.empty()) return Error("empty list item");
      int step = 1;
      const size_t slash = item.find('/');
      std::string_view base = item.substr(0, slash);
      if (slash != std::string_view::npos) {
        std::string_view step_text = item.substr(slash + 1);
        if (step_text.empty()) return Error("missing step after '/'");
        step = 0;
        for (char c : step_text) {
          if (c < '0' || c > '9') {
            return Error(absl::StrCat("step '", std::string(step_text), "' is not a number"));
          }
          step = std::min(step * 10 + (c - '0'), 1000);
        }
        if (step < 1) return Error(absl::StrCat("step must be at least 1, got ", step));
      }
      int lo = info_.min;
      int hi = info_.max;
      if (base != "*") {
        const size_t dash = base.find('-');
        absl::StatusOr<int> first = Value(base.substr(0, dash));
        if (!first.ok()) return first.status();
        lo = *first;
        if (dash != std::string_view::npos) {
          absl::StatusOr<int> last = Value(base.substr(dash + 1));
          if (!last.ok()) return last.status();
          hi = *last;
          if (hi < lo) return Error(absl::StrCat("range ", lo, "-", hi, " is reversed"));
        } else if (slash == std::string_view::npos) {
          hi = lo;
        }
      }
      for (int v = lo; v <= hi; v += step) out[v] = true;
    }
    return absl::OkStatus();
  }

 private:
  int index_;
  const FieldInfo& info_;
};

constexpr int kMaxDays[] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(std::string_view five_fields) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < five_fields.size()) {
    while (i < five_fields.size() && std::isspace(static_cast<unsigned char>(five_fields[i]))) ++i;
    const size_t start = i;
    while (i < five_fields.size() && !std::isspace(static_cast<unsigned char>(five_fields[i]))) {
      ++i;
    }
    if (i > start) fields.push_back(five_fields.substr(start, i - start));
  }
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("cron: expected 5 fields (minute hour day-of-month month day-of-week), got ",
                     fields.size()));
  }
  CronSchedule schedule;
  std::array<std::vector<bool>, 5> bits;
  for (int f = 0; f < 5; ++f) {
    absl::Status status = FieldParser(f, kFields[f]).Parse(fields[f], bits[f]);
    if (!status.ok()) return status;
    if (f > 0) schedule.text_ += ' ';
    schedule.text_ += std::string(fields[f]);
  }
  for (int v = 0; v < 60; ++v) schedule.minutes_[v] = bits[0][v];
  for (int v = 0; v < 24; ++v) schedule.hours_[v] = bits[1][v];
  for (int v = 1; v <= 31; ++v) schedule.days_[v] = bits[2][v];
  for (int v = 1; v <= 12; ++v) schedule.months_[v] = bits[3][v];
  for (int v = 0; v <= 7; ++v) {
    if (bits[4][v]) schedule.weekdays_[v % 7] = true;
  }
  schedule.days_star_ = fields[2][0] == '*';
  schedule.weekdays_star_ = fields[4][0] == '*';
  // With day-of-week unrestricted only day-of-month decides: it must exist in a month.
  if (schedule.weekdays_star_ || schedule.days_star_) {
    bool possible = false;
    int first_day = 0;
    for (int d = 31; d >= 1; --d) {
      if (!schedule.days_[d]) continue;
      first_day = d;
      for (int m = 1; m <= 12; ++m)
        possible = possible || (schedule.months_[m] && d <= kMaxDays[m]);
    }
    if (!possible) {
      return FieldParser(2, kFields[2])
          .Error(absl::StrCat("day ", first_day, " never occurs in the months of field 4"));
    }
  }
  return schedule;
}

bool CronSchedule::DayMatches(int day, int weekday) const {
  const bool dom = days_[day];
  const bool dow = weekdays_[weekday];
  if (!days_star_ && !weekdays_star_) return dom || dow;
  return dom && dow;
}

absl::Time CronSchedule::Next(absl::Time after) const {
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::CivilMinute m = absl::ToCivilMinute(after, utc) + 1;
  // Feb 29 on a given weekday recurs within 28 years; allow a margin.
  const absl::CivilYear limit = absl::CivilYear(m) + 60;
  while (absl::CivilYear(m) < limit) {
    if (!months_[m.month()]) {
      m = absl::CivilMinute(absl::CivilMonth(m) + 1);
      continue;
    }
    const absl::CivilDay day(m);
    const int weekday = static_cast<int>(absl::GetWeekday(day));  // Monday = 0 in Abseil.
    if (!DayMatches(m.day(), (weekday + 1) % 7)) {
      m = absl::CivilMinute(day + 1);
      continue;
    }
    if (!hours_[m.hour()]) {
      m = absl::CivilMinute(absl::CivilHour(m) + 1);
      continue;
    }
    if (!minutes_[m.minute()]) {
      m += 1;
      continue;
    }
    return absl::FromCivil(m, utc);
  }
  return absl::InfiniteFuture();
}

}  // namespace assay
