// ROUGE as google-research's rouge_score (rouge/rouge_scorer.py, tokenize.py; Apache-2.0)
// without stemming.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/evals/metrics/text_metrics.h"

namespace assay::evals {
namespace {

// Token ids shared by target and prediction, so tokens compare as ints.
class Vocabulary {
 public:
  int Id(std::string_view token) {
    const auto [it, inserted] = ids_.try_emplace(std::string(token), next_);
    if (inserted) ++next_;
    return it->second;
  }

 private:
  std::unordered_map<std::string, int> ids_;
  int next_ = 0;
};

bool IsAlnum(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// tokenize.tokenize(text, stemmer=None): lower(), [^a-z0-9]+ -> " ", split. Python's lower()
// maps two non-ASCII characters into [a-z]: U+0130 (to "i" + U+0307, the latter a separator)
// and U+212A KELVIN SIGN (to "k"); every other non-ASCII character is a separator. At most
// `budget` tokens are appended; the budget shrinks by as many.
void Tokenize(std::string_view text, Vocabulary& vocab, std::vector<int>& out, size_t& budget) {
  std::string token;
  const auto flush = [&] {
    if (!token.empty() && budget > 0) {
      out.push_back(vocab.Id(token));
      --budget;
    }
    token.clear();
  };
  for (size_t i = 0; i < text.size() && budget > 0; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + 32);
    if (IsAlnum(c)) {
      token.push_back(static_cast<char>(c));
    } else if (text.substr(i, 2) == "\xC4\xB0") {  // U+0130
      token.push_back('i');
      flush();
      ++i;
    } else if (text.substr(i, 3) == "\xE2\x84\xAA") {  // U+212A
      token.push_back('k');
      i += 2;
    } else {
      flush();
    }
  }
  flush();
}

std::vector<int> Tokens(std::string_view text, Vocabulary& vocab) {
  std::vector<int> out;
  size_t budget = kMaxRougeTokens;
  Tokenize(text, vocab, out, budget);
  return out;
}

// The non-empty '\n'-separated lines of `text`, tokenised, at most kMaxRougeTokens tokens
// in all (lines past the budget are dropped; a line that tokenises to nothing is kept).
std::vector<std::vector<int>> Sentences(std::string_view text, Vocabulary& vocab) {
  std::vector<std::vector<int>> out;
  size_t budget = kMaxRougeTokens;
  size_t at = 0;
  while (at <= text.size() && budget > 0) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(at, nl - at);
    if (!line.empty()) {
      out.emplace_back();
      Tokenize(line, vocab, out.back(), budget);
    }
    at = nl + 1;
  }
  return out;
}

double FMeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

RougeScore Score(double precision, double recall) {
  return {precision, recall, FMeasure(precision, recall)};
}

int64_t LcsLength(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int32_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(cur[j - 1], prev[j]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// rouge_scorer.lcs_ind: the indices into `ref` of the LCS that _backtrack_norec finds. One
// bit per cell records its choice where the tokens differ (t[i][j-1] > t[i-1][j]).
std::vector<size_t> LcsIndices(const std::vector<int>& ref, const std::vector<int>& can) {
  const size_t rows = ref.size(), cols = can.size();
  std::vector<bool> left(rows * cols, false);
  std::vector<int32_t> prev(cols + 1, 0), cur(cols + 1, 0);
  for (size_t i = 1; i <= rows; ++i) {
    for (size_t j = 1; j <= cols; ++j) {
      if (ref[i - 1] == can[j - 1]) {
        cur[j] = prev[j - 1] + 1;
      } else {
        left[(i - 1) * cols + (j - 1)] = cur[j - 1] > prev[j];
        cur[j] = std::max(cur[j - 1], prev[j]);
      }
    }
    std::swap(prev, cur);
  }
  std::vector<size_t> out;
  size_t i = rows, j = cols;
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      out.push_back(i - 1);
      --i;
      --j;
    } else if (left[(i - 1) * cols + (j - 1)]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

RougeScore RougeL(std::string_view target, std::string_view prediction) {
  Vocabulary vocab;
  const std::vector<int> t = Tokens(target, vocab);
  const std::vector<int> p = Tokens(prediction, vocab);
  if (t.empty() || p.empty()) return {};
  const double lcs = static_cast<double>(LcsLength(t, p));
  return Score(lcs / static_cast<double>(p.size()), lcs / static_cast<double>(t.size()));
}

RougeScore RougeN(std::string_view target, std::string_view prediction, int n) {
  if (n < 1) return {};
  Vocabulary vocab;
  const std::vector<int> t = Tokens(target, vocab);
  const std::vector<int> p = Tokens(prediction, vocab);
  const size_t un = static_cast<size_t>(n);
  // n-grams keyed by their token ids, as bytes.
  const auto count = [un](const std::vector<int>& tokens) {
    std::unordered_map<std::string, int64_t> counts;
    for (size_t i = 0; i + un <= tokens.size(); ++i) {
      std::string key(reinterpret_cast<const char*>(&tokens[i]), un * sizeof(int));
      ++counts[std::move(key)];
    }
    return counts;
  };
  const auto target_ngrams = count(t);
  const auto prediction_ngrams = count(p);
  int64_t overlap = 0, target_count = 0, prediction_count = 0;
  for (const auto& [gram, c] : target_ngrams) {
    target_count += c;
    const auto it = prediction_ngrams.find(gram);
    if (it != prediction_ngrams.end()) overlap += std::min(c, it->second);
  }
  for (const auto& entry : prediction_ngrams) prediction_count += entry.second;
  return Score(
      static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(prediction_count, 1)),
      static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(target_count, 1)));
}

RougeScore RougeLsum(std::string_view target, std::string_view prediction) {
  Vocabulary vocab;
  const auto ref_sents = Sentences(target, vocab);
  const auto can_sents = Sentences(prediction, vocab);
  if (ref_sents.empty() || can_sents.empty()) return {};
  std::unordered_map<int, int64_t> ref_counts, can_counts;
  int64_t m = 0, n = 0;
  for (const auto& s : ref_sents) {
    m += static_cast<int64_t>(s.size());
    for (int t : s) ++ref_counts[t];
  }
  for (const auto& s : can_sents) {
    n += static_cast<int64_t>(s.size());
    for (int t : s) ++can_counts[t];
  }
  if (m == 0 || n == 0) return {};
  int64_t hits = 0;
  for (const auto& r : ref_sents) {
    std::set<size_t> union_indices;  // _union_lcs: sorted union over the candidates.
    for (const auto& c : can_sents) {
      for (size_t i : LcsIndices(r, c)) union_indices.insert(i);
    }
    for (size_t i : union_indices) {
      const int t = r[i];
      int64_t& cc = can_counts[t];
      int64_t& rc = ref_counts[t];
      if (cc > 0 && rc > 0) {
        ++hits;
        --cc;
        --rc;
      }
    }
  }
  return Score(static_cast<double>(hits) / static_cast<double>(n),
               static_cast<double>(hits) / static_cast<double>(m));
}

}  // namespace assay::evals
