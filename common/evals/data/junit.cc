// JUnit XML (ingest.h): the element tree of xml_reader.h mapped to cases.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/evals/data/ingest.h"
#include "common/evals/data/text.h"
#include "common/evals/data/xml_reader.h"

namespace assay::evals {
namespace {

class JunitMapper {
 public:
  JunitMapper(std::string_view file_name, const JunitLimits& limits, JunitReport* out)
      : file_name_(file_name), limits_(limits), out_(out) {}

  absl::Status Suite(const XmlElement& suite) {
    const std::string* name = suite.Attribute("name");
    for (const XmlElement& child : suite.children) {
      if (child.name == "testsuite") {
        if (absl::Status s = Suite(child); !s.ok()) return s;
      } else if (child.name == "testcase") {
        if (absl::Status s = Case(child, name == nullptr ? "" : *name); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Error(const XmlElement& at, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(file_name_), ":", at.line, ":", at.column, ": ", Av(what)));
  }

 private:
  absl::Status Case(const XmlElement& tc, const std::string& suite) {
    if (out_->cases.size() >= limits_.max_cases) {
      return Error(tc, absl::StrCat("more than ", limits_.max_cases, " test cases (max_cases)"));
    }
    JunitCase c;
    c.suite = suite;
    const std::string* name = tc.Attribute("name");
    if (name == nullptr) return Error(tc, "<testcase> without a name attribute");
    c.name = *name;
    if (const std::string* cls = tc.Attribute("classname")) c.classname = *cls;
    if (const std::string* time = tc.Attribute("time"); time != nullptr && !time->empty()) {
      double t;
      // Why drop commas: Maven Surefire wrote times of 1000 s and more as "1,234.5".
      std::string digits = *time;
      digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
      if (!absl::SimpleAtod(digits, &t) || !std::isfinite(t) || t < 0) {
        return Error(tc,
                     absl::StrCat("<testcase> time \"", *time, "\" is not a number of seconds"));
      }
      c.time_s = t;
    }
    const XmlElement* outcome = nullptr;
    int rank = 0;  // error 3 > failure 2 > skipped 1 > passed 0
    for (const XmlElement& child : tc.children) {
      int r = child.name == "error" ? 3 : child.name == "failure" ? 2 : child.name == "skipped";
      if (r > rank) {
        rank = r;
        outcome = &child;
      }
    }
    static constexpr const char* kStatus[] = {"passed", "skipped", "failed", "error"};
    c.status = kStatus[rank];
    if (outcome != nullptr) {
      if (const std::string* m = outcome->Attribute("message")) c.message = *m;
      c.details = outcome->text;
    }
    ++out_->tests;
    out_->failures += rank == 2;
    out_->errors += rank == 3;
    out_->skipped += rank == 1;
    out_->cases.push_back(std::move(c));
    return absl::OkStatus();
  }

  std::string_view file_name_;
  const JunitLimits& limits_;
  JunitReport* out_;
};

}  // namespace

absl::StatusOr<JunitReport> ParseJunitXml(std::string_view xml, std::string_view file_name,
                                          const JunitLimits& limits) {
  XmlLimits xl;
  xl.max_bytes = limits.max_bytes;
  xl.max_depth = limits.max_depth;
  xl.max_elements = limits.max_elements;
  xl.max_attributes = limits.max_attributes;
  absl::StatusOr<XmlElement> root = ParseXml(xml, xl);
  if (!root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(file_name), ":", root.status().message()));
  }
  JunitReport report;
  JunitMapper mapper(file_name, limits, &report);
  if (root->name != "testsuites" && root->name != "testsuite") {
    return mapper.Error(*root, absl::StrCat("the root element is <", root->name,
                                            ">, not <testsuites> or <testsuite>"));
  }
  // <testsuites> is read as a suite too: a <testcase> directly inside it (some runners write
  // one) is a case of a suite named as the root.
  if (absl::Status s = mapper.Suite(*root); !s.ok()) return s;
  return report;
}

}  // namespace assay::evals
