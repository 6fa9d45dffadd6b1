#pragma once
// Numbers as text, exactly.

#include <string>

namespace assay {

// The shortest text that reads back as exactly `v` (std::to_chars): "0.1", "1e-04", "300".
// What a double is written as wherever it must survive a round trip (SQL parameters, JSON
// values, names shown to users).
std::string ShortestDouble(double v);

}  // namespace assay
