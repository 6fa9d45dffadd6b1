#include "common/evals/data/safe_regex.h"

#include <re2/re2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/evals/data/text.h"

namespace assay::evals {

absl::StatusOr<SafeRegex> SafeRegex::Compile(std::string_view pattern) {
  if (pattern.size() > kMaxPatternBytes) {
    return absl::InvalidArgumentError(absl::StrCat("regex of ", pattern.size(),
                                                   " bytes is longer than the limit of ",
                                                   kMaxPatternBytes, " bytes"));
  }
  RE2::Options opt;
  opt.set_encoding(RE2::Options::EncodingUTF8);
  opt.set_max_mem(kMaxMem);
  opt.set_log_errors(false);
  opt.set_case_sensitive(true);
  auto re = std::make_shared<const RE2>(re2::StringPiece(pattern.data(), pattern.size()), opt);
  if (!re->ok()) {
    std::string msg = absl::StrCat("regex \"", Abbreviate(pattern, 120), "\": ", re->error());
    const std::string& arg = re->error_arg();
    if (re->error_code() == RE2::ErrorBadPerlOp && arg.size() >= 3 &&
        (arg[2] == '=' || arg[2] == '!')) {
      absl::StrAppend(&msg, " (RE2 has no lookaround)");
    }
    if (re->error_code() == RE2::ErrorBadPerlOp && arg.size() >= 3 && arg[2] == '<') {
      absl::StrAppend(&msg, " (RE2 has no lookbehind; a named group is written (?P<name>...))");
    }
    if (re->error_code() == RE2::ErrorBadEscape && arg.size() >= 2 && arg[1] >= '1' &&
        arg[1] <= '9') {
      absl::StrAppend(&msg, " (RE2 has no backreferences)");
    }
    if (re->error_code() == RE2::ErrorPatternTooLarge) {
      absl::StrAppend(&msg, " (over the ", kMaxMem >> 20, " MiB a compiled regex may use)");
    }
    return absl::InvalidArgumentError(msg);
  }
  return SafeRegex(std::move(re));
}

bool SafeRegex::PartialMatch(std::string_view text) const {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

const std::string& SafeRegex::pattern() const { return re_->pattern(); }

}  // namespace assay::evals
