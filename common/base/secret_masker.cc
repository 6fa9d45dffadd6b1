#include "common/base/secret_masker.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace assay {
namespace {

bool Unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// RFC 3986 percent-encoding of everything but the unreserved characters; `form`: a space
// becomes '+' (application/x-www-form-urlencoded).
std::string PercentEncode(std::string_view in, bool lower, bool form) {
  const char* hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (Unreserved(c)) {
      out += static_cast<char>(c);
    } else if (form && c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view in, bool url_safe) {
  const char* alphabet = url_safe
                             ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

SecretMasker::SecretMasker(const std::vector<std::string>& values) {
  std::set<std::string> set;
  for (const std::string& v : values) {
    if (v.empty()) continue;
    set.insert(v);
    if (v.find('\n') != std::string::npos) {
      size_t start = 0;
      while (start <= v.size()) {
        size_t end = v.find('\n', start);
        if (end == std::string::npos) end = v.size();
        std::string line = v.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        set.insert(std::move(line));
        start = end + 1;
      }
    }
    for (bool url : {false, true}) {
      set.insert(Base64Encode(v, url));
      // Inside a longer base64 text V starts at byte offset 0, 1 or 2 of a 3-byte group: encode
      // it behind that many filler bytes and keep only the characters made of V's bits alone.
      for (size_t align = 0; align < 3; ++align) {
        std::string enc = Base64Encode(std::string(align, '\0') + v, url);
        while (!enc.empty() && enc.back() == '=') enc.pop_back();
        if ((align + v.size()) % 3 != 0 && !enc.empty()) enc.pop_back();
        const size_t drop = align == 0 ? 0 : align + 1;
        if (enc.size() > drop) set.insert(enc.substr(drop));
      }
    }
    for (bool lower : {false, true}) {
      for (bool form : {false, true}) set.insert(PercentEncode(v, lower, form));
    }
  }
  for (const std::string& p : set) {
    if (p.size() >= kMinPatternBytes) patterns_.push_back(p);
  }
  std::stable_sort(patterns_.begin(), patterns_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  Index();
}

namespace {

uint32_t Load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uint32_t FilterBit(uint32_t prefix) { return (prefix * 2654435761u) >> 16; }

}  // namespace

void SecretMasker::Index() {
  prefix_filter_.assign(1024, 0);
  by_prefix_.clear();
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const std::string& p = patterns_[i];
    first_byte_[static_cast<unsigned char>(p[0])] = true;
    const uint32_t prefix = Load4(p.data());
    const uint32_t bit = FilterBit(prefix);
    prefix_filter_[bit >> 6] |= uint64_t{1} << (bit & 63);
    by_prefix_[prefix].push_back(i);
  }
}

std::string SecretMasker::Mask(std::string_view chunk) { return Run(chunk, false); }

std::string SecretMasker::Flush() {
  std::string out = Run("", true);
  carry_covered_ = 0;
  last_masked_ = false;
  return out;
}

std::string SecretMasker::MaskAll(std::string_view text) const {
  SecretMasker copy;
  copy.patterns_ = patterns_;
  copy.Index();
  std::string out = copy.Mask(text);
  out += copy.Flush();
  return out;
}

std::string SecretMasker::Run(std::string_view chunk, bool final) {
  if (patterns_.empty()) {
    std::string out = std::move(buf_);
    buf_.clear();
    out.append(chunk.data(), chunk.size());
    return out;
  }
  buf_.append(chunk.data(), chunk.size());
  const size_t n = buf_.size();
  const std::string_view buf(buf_);
  // Where to stop: the earliest position whose tail is a proper prefix of some pattern (it
  // may continue in the next chunk). Patterns are longest first.
  size_t cut = n;
  if (!final) {
    const size_t window = std::min(n, patterns_.front().size() - 1);
    for (size_t s = n - window; s < n && cut == n; ++s) {
      if (!first_byte_[static_cast<unsigned char>(buf[s])]) continue;
      const std::string_view tail = buf.substr(s);
      for (const std::string& p : patterns_) {
        if (p.size() <= tail.size()) break;
        if (std::string_view(p).substr(0, tail.size()) == tail) {
          cut = s;
          break;
        }
      }
    }
  }
  // Occurrences as [start, end) in start order, merged where they overlap or touch.
  std::vector<std::pair<size_t, size_t>> runs;
  auto add = [&runs](size_t a, size_t b) {
    if (!runs.empty() && a <= runs.back().second) {
      runs.back().second = std::max(runs.back().second, b);
    } else {
      runs.emplace_back(a, b);
    }
  };
  size_t max_end = std::min(carry_covered_, n);  // of what starts before cut (or is carried)
  if (max_end > 0) add(0, max_end);
  for (size_t pos = 0; pos + SecretMasker::kMinPatternBytes <= n; ++pos) {
    const uint32_t prefix = Load4(buf.data() + pos);
    const uint32_t bit = FilterBit(prefix);
    if ((prefix_filter_[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) continue;
    auto it = by_prefix_.find(prefix);
    if (it == by_prefix_.end()) continue;
    for (size_t i : it->second) {
      const std::string& p = patterns_[i];
      if (p.size() > n - pos || buf.compare(pos, p.size(), p) != 0) continue;
      add(pos, pos + p.size());
      if (pos < cut) max_end = std::max(max_end, pos + p.size());
    }
  }
  std::string out;
  Emit(runs, cut, max_end, &out);
  return out;
}

void SecretMasker::Emit(const std::vector<std::pair<size_t, size_t>>& runs, size_t cut,
                        size_t max_end_before_cut, std::string* out) {
  out->reserve(cut);
  size_t i = 0;
  for (const auto& [a, b] : runs) {
    if (a >= cut) break;
    if (a > i) {
      out->append(buf_, i, a - i);
      last_masked_ = false;
    }
    if (!last_masked_) out->append(kMask);
    last_masked_ = true;
    i = std::min(b, cut);
  }
  if (cut > i) {
    out->append(buf_, i, cut - i);
    last_masked_ = false;
  }
  carry_covered_ = max_end_before_cut > cut ? max_end_before_cut - cut : 0;
  buf_.erase(0, cut);
}

}  // namespace assay
