#pragma once
// Small helpers for "did you mean ...?" suggestions.

#include <span>
#include <string>
#include <string_view>

namespace assay {

// Levenshtein distance (insertions, deletions, substitutions; byte-wise).
int EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `word` if its distance is at most `max_distance` and
// it is not `word` itself; ties go to the earlier candidate. Empty when none.
std::string ClosestMatch(std::string_view word, std::span<const std::string_view> candidates,
                         int max_distance = 2);

}  // namespace assay
