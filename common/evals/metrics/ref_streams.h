#pragma once
// Internal to assay_eval_metrics: sacreBLEU's reference streams, per hypothesis.

#include <string>
#include <vector>

namespace assay::evals::internal {

// `stats_of(hyps[i], refs of i)` for every hypothesis, where the references of i come from
// sacreBLEU-style streams (ref_streams[k][i] is the k-th reference of hypothesis i; a stream
// shorter than the hypotheses has none for the rest).
template <typename Stats, typename Fn>
std::vector<Stats> PerHypothesis(const std::vector<std::string>& hyps,
                                 const std::vector<std::vector<std::string>>& ref_streams,
                                 Fn stats_of) {
  std::vector<Stats> out;
  out.reserve(hyps.size());
  std::vector<std::string> refs;
  for (size_t i = 0; i < hyps.size(); ++i) {
    refs.clear();
    for (const auto& stream : ref_streams) {
      if (i < stream.size()) refs.push_back(stream[i]);
    }
    out.push_back(stats_of(hyps[i], refs));
  }
  return out;
}

}  // namespace assay::evals::internal
