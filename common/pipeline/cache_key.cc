#include "common/pipeline/cache_key.h"

#include "absl/strings/str_cat.h"
#include "common/pipeline/glob.h"

namespace assay {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr char kArgsHelp[] =
    "hashFiles needs one or more quoted globs, e.g. hashFiles('requirements.txt')";

// The arguments of `hashFiles(ARGS)`: 'glob' (, 'glob')*.
absl::StatusOr<std::vector<std::string>> ParseArgs(std::string_view args) {
  std::vector<std::string> out;
  args = Trim(args);
  while (true) {
    if (args.empty() || args.front() != '\'') return absl::InvalidArgumentError(kArgsHelp);
    const size_t close = args.find('\'', 1);
    if (close == std::string_view::npos) return absl::InvalidArgumentError(kArgsHelp);
    std::string glob(args.substr(1, close - 1));
    if (absl::Status s = CheckWorkspaceGlob(glob); !s.ok() || glob[0] == '!') {
      return absl::InvalidArgumentError(absl::StrCat(
          "hashFiles glob '", glob,
          "': ", s.ok() ? "must not be an exclusion ('!')" : std::string(s.message())));
    }
    out.push_back(std::move(glob));
    if (out.size() > kMaxHashFilesArgs) {
      return absl::InvalidArgumentError(
          absl::StrCat("hashFiles has more than ", kMaxHashFilesArgs, " globs"));
    }
    args = Trim(args.substr(close + 1));
    if (args.empty()) return out;
    if (args.front() != ',') return absl::InvalidArgumentError(kArgsHelp);
    args = Trim(args.substr(1));
  }
}

}  // namespace

absl::Status CheckWorkspaceGlob(std::string_view glob) {
  std::string_view body = glob;
  if (!body.empty() && body[0] == '!') body.remove_prefix(1);
  if (absl::Status s = ValidateGlob(body); !s.ok()) return s;
  if (body.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("must not contain NUL");
  }
  if (body[0] == '/') return absl::InvalidArgumentError("must be relative to the workspace");
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('/', start);
    if (end == std::string_view::npos) end = body.size();
    if (body.substr(start, end - start) == "..") {
      return absl::InvalidArgumentError("must not leave the workspace ('..')");
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CacheKeyPart>> ParseCacheKey(std::string_view text) {
  std::vector<CacheKeyPart> parts;
  auto literal = [&](std::string_view s) {
    if (s.empty()) return;
    if (!parts.empty() && !parts.back().call) {
      parts.back().text += std::string(s);
    } else {
      parts.push_back({false, std::string(s), {}});
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("${{", pos);
    if (open == std::string_view::npos) break;
    const size_t close = text.find("}}", open + 3);
    if (close == std::string_view::npos) break;  // the placeholder check reports it
    literal(text.substr(pos, open - pos));
    const std::string_view whole = text.substr(open, close + 2 - open);
    const std::string_view inside = Trim(text.substr(open + 3, close - open - 3));
    const size_t paren = inside.find('(');
    if (paren == std::string_view::npos) {
      literal(whole);
    } else {
      const std::string_view name = Trim(inside.substr(0, paren));
      if (name != "hashFiles") {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown function '", std::string(name), "'"));
      }
      if (inside.back() != ')') return absl::InvalidArgumentError(kArgsHelp);
      absl::StatusOr<std::vector<std::string>> globs =
          ParseArgs(inside.substr(paren + 1, inside.size() - paren - 2));
      if (!globs.ok()) return globs.status();
      parts.push_back({true, std::string(whole), *std::move(globs)});
    }
    pos = close + 2;
  }
  literal(text.substr(std::min(pos, text.size())));
  return parts;
}

std::string CacheKeyWithoutCalls(const std::vector<CacheKeyPart>& parts) {
  std::string out;
  for (const CacheKeyPart& p : parts) {
    if (!p.call) out += p.text;
  }
  return out;
}

absl::Status CheckCacheKeyText(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("a cache key must not be empty");
  if (key.size() > kMaxCacheKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a cache key is at most ", kMaxCacheKeyBytes,
                                                   " bytes, this one has ", key.size()));
  }
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("a cache key must not contain control characters");
    }
    if (c == ',') return absl::InvalidArgumentError("a cache key must not contain ','");
  }
  return absl::OkStatus();
}

}  // namespace assay
