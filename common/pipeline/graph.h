#pragma once
// Graph helpers for job DAGs. Nodes are 0..n-1 (file order); `needs[i]` lists the
// nodes that node i depends on. Self-edges are ignored by both functions.

#include <vector>

namespace assay {

// One cycle per strongly connected component that has more than one node, ordered
// by the component's lowest node. Each cycle starts at that lowest node and is the
// shortest one through it (breadth-first, following `needs` in their given order),
// listed in dependency direction: cycle[k] needs cycle[k+1], and the last needs the
// first. Empty when the graph is acyclic.
std::vector<std::vector<int>> FindCycles(const std::vector<std::vector<int>>& needs);

// Every node after all of its needs; among ready nodes the lowest comes first. Nodes
// that cannot be ordered (on or behind a cycle) are appended in index order. Edges to
// nodes outside 0..n-1 are ignored.
std::vector<int> StableTopologicalOrder(const std::vector<std::vector<int>>& needs);

}  // namespace assay
