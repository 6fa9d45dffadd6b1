#include "common/pipeline/graph.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <queue>

namespace assay {
namespace {

bool ValidEdge(int from, int to, size_t n) {
  return to >= 0 && static_cast<size_t>(to) < n && to != from;
}

// reach[i][j]: j can be reached from i by one or more edges.
std::vector<std::vector<bool>> Reachability(const std::vector<std::vector<int>>& needs) {
  const size_t n = needs.size();
  std::vector<std::vector<bool>> reach(n, std::vector<bool>(n, false));
  for (size_t start = 0; start < n; ++start) {
    std::deque<int> queue;
    for (int to : needs[start]) {
      if (ValidEdge(static_cast<int>(start), to, n) && !reach[start][to]) {
        reach[start][to] = true;
        queue.push_back(to);
      }
    }
    while (!queue.empty()) {
      const int node = queue.front();
      queue.pop_front();
      for (int to : needs[node]) {
        if (ValidEdge(node, to, n) && !reach[start][to]) {
          reach[start][to] = true;
          queue.push_back(to);
        }
      }
    }
  }
  return reach;
}

}  // namespace

std::vector<std::vector<int>> FindCycles(const std::vector<std::vector<int>>& needs) {
  const size_t n = needs.size();
  const std::vector<std::vector<bool>> reach = Reachability(needs);
  std::vector<bool> reported(n, false);
  std::vector<std::vector<int>> cycles;
  for (size_t first = 0; first < n; ++first) {
    if (reported[first] || !reach[first][first]) continue;
    // The component of `first`: nodes on a cycle with it.
    std::vector<bool> in_component(n, false);
    for (size_t j = 0; j < n; ++j) {
      if (reach[first][j] && reach[j][first]) {
        in_component[j] = true;
        reported[j] = true;
      }
    }
    // Shortest path first -> ... -> first inside the component.
    std::vector<int> parent(n, -1);
    std::deque<int> queue{static_cast<int>(first)};
    int last = -1;
    while (!queue.empty() && last == -1) {
      const int node = queue.front();
      queue.pop_front();
      for (int to : needs[node]) {
        if (!ValidEdge(node, to, n) || !in_component[to]) continue;
        if (to == static_cast<int>(first)) {
          last = node;
          break;
        }
        if (parent[to] == -1) {
          parent[to] = node;
          queue.push_back(to);
        }
      }
    }
    std::vector<int> cycle;
    for (int node = last; node != static_cast<int>(first); node = parent[node]) {
      cycle.push_back(node);
    }
    cycle.push_back(static_cast<int>(first));
    std::reverse(cycle.begin(), cycle.end());
    cycles.push_back(std::move(cycle));
  }
  return cycles;
}

std::vector<int> StableTopologicalOrder(const std::vector<std::vector<int>>& needs) {
  const size_t n = needs.size();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> dependents(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int> unique = needs[i];
    std::sort(unique.begin(), unique.end());
    unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
    for (int to : unique) {
      if (!ValidEdge(static_cast<int>(i), to, n)) continue;
      ++pending[i];
      dependents[to].push_back(static_cast<int>(i));
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(static_cast<int>(i));
  }
  std::vector<int> order;
  std::vector<bool> placed(n, false);
  while (!ready.empty()) {
    const int node = ready.top();
    ready.pop();
    order.push_back(node);
    placed[node] = true;
    for (int dependent : dependents[node]) {
      if (--pending[dependent] == 0) ready.push(dependent);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!placed[i]) order.push_back(static_cast<int>(i));
  }
  return order;
}

}  // namespace assay
