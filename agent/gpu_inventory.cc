// Parsers for nvidia-smi output and the inventory JSON. Discovery (NVML, running nvidia-smi)
// lives in gpu_discovery.cc.
#include "agent/gpu_inventory.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/base/status.h"

namespace assay {
namespace {

constexpr const char* kRequiredColumns[] = {
    "index", "uuid", "name", "driver_version", "memory.total", "memory.used", "utilization.gpu"};
// Position of each column in kNvidiaSmiQueryColumns (the headerless layout).
const std::map<std::string, size_t>& DefaultLayout() {
  static const auto* layout = [] {
    auto* m = new std::map<std::string, size_t>();
    size_t i = 0;
    for (absl::string_view col : absl::StrSplit(kNvidiaSmiQueryColumns, ',')) {
      (*m)[std::string(col)] = i++;
    }
    return m;
  }();
  return *layout;
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// "81559 MiB", "81559MiB" or "81559" with unit "MiB" → 81559.
std::optional<uint64_t> ParseWithUnit(absl::string_view value, absl::string_view unit) {
  size_t digits = 0;
  while (digits < value.size() && absl::ascii_isdigit(static_cast<unsigned char>(value[digits]))) {
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  absl::string_view rest = absl::StripAsciiWhitespace(value.substr(digits));
  if (!rest.empty() && rest != unit) return std::nullopt;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(value.substr(0, digits), &n)) return std::nullopt;
  return n;
}

bool IsUnavailable(absl::string_view v) {
  return v == "[N/A]" || v == "N/A" || v == "[Not Supported]";
}

absl::StatusOr<uint64_t> ParseMib(absl::string_view value, const std::string& where) {
  std::optional<uint64_t> n = ParseWithUnit(value, "MiB");
  if (!n) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a number of MiB, got ", Quote(value)));
  }
  return *n;
}

absl::StatusOr<int> ParsePercent(absl::string_view value, const std::string& where) {
  if (IsUnavailable(value)) return -1;
  std::optional<uint64_t> n = ParseWithUnit(value, "%");
  if (!n || *n > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a percentage, got ", Quote(value)));
  }
  return static_cast<int>(*n);
}

// A column name from a header cell: "memory.total [MiB]" → "memory.total".
std::string ColumnName(absl::string_view cell) {
  size_t bracket = cell.find('[');
  if (bracket != absl::string_view::npos) cell = cell.substr(0, bracket);
  return std::string(absl::StripAsciiWhitespace(cell));
}

}  // namespace

absl::StatusOr<std::vector<GpuInfo>> ParseNvidiaSmiCsv(std::string_view text) {
  std::vector<GpuInfo> gpus;
  std::map<std::string, size_t> layout = DefaultLayout();
  bool first = true;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);  // also drops a '\r'
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    for (auto& f : fields) f = absl::StripAsciiWhitespace(f);
    if (first) {
      first = false;
      bool is_header = std::any_of(fields.begin(), fields.end(), [](absl::string_view f) {
        std::string name = ColumnName(f);
        return name == "index" || name == "uuid";
      });
      if (is_header) {
        layout.clear();
        for (size_t i = 0; i < fields.size(); ++i) layout.emplace(ColumnName(fields[i]), i);
        for (const char* col : kRequiredColumns) {
          if (!layout.count(col)) {
            return absl::InvalidArgumentError(
                absl::StrCat("line ", line_no, ": header lacks column ", col));
          }
        }
        continue;
      }
    }
    size_t needed = 0;
    for (const char* col : kRequiredColumns) needed = std::max(needed, layout.at(col) + 1);
    if (fields.size() < needed) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": expected at least ",
                                                     needed, " comma-separated fields, got ",
                                                     fields.size()));
    }
    auto field = [&](const char* col) { return fields[layout.at(col)]; };
    auto where = [&](const char* col) { return absl::StrCat("line ", line_no, ", field ", col); };
    GpuInfo gpu;
    if (!absl::SimpleAtoi(field("index"), &gpu.index) || field("index").empty() ||
        !absl::ascii_isdigit(static_cast<unsigned char>(field("index")[0]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          where("index"), ": expected a non-negative integer, got ", Quote(field("index"))));
    }
    for (const char* col : {"uuid", "name"}) {
      if (field(col).empty()) return absl::InvalidArgumentError(where(col) + ": empty");
    }
    gpu.uuid = std::string(field("uuid"));
    gpu.name = std::string(field("name"));
    gpu.driver_version = std::string(field("driver_version"));
    ASSAY_ASSIGN_OR_RETURN(gpu.memory_total_mb,
                           ParseMib(field("memory.total"), where("memory.total")));
    ASSAY_ASSIGN_OR_RETURN(gpu.memory_used_mb,
                           ParseMib(field("memory.used"), where("memory.used")));
    ASSAY_ASSIGN_OR_RETURN(gpu.utilization_pct,
                           ParsePercent(field("utilization.gpu"), where("utilization.gpu")));
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

namespace {

// Just enough XML for nvidia-smi -q -x: elements, text, attributes (skipped), comments,
// <?...?> and <!DOCTYPE ...>, the five predefined entities.
struct XmlNode {
  std::string name;
  std::string text;
  std::vector<XmlNode> children;
};

void AppendDecoded(absl::string_view raw, std::string* out) {
  static const std::pair<absl::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  for (size_t i = 0; i < raw.size();) {
    bool replaced = false;
    if (raw[i] == '&') {
      for (const auto& [entity, c] : kEntities) {
        if (raw.substr(i, entity.size()) == entity) {
          out->push_back(c);
          i += entity.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out->push_back(raw[i++]);
  }
}

absl::StatusOr<XmlNode> ParseXml(absl::string_view doc) {
  std::vector<XmlNode> stack(1);  // stack[0]: the document
  int line = 1;
  auto advance = [&](size_t from, size_t to) {
    line += static_cast<int>(std::count(doc.begin() + from, doc.begin() + to, '\n'));
  };
  auto malformed = [&] {
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": malformed tag"));
  };
  size_t pos = 0;
  while (pos < doc.size()) {
    size_t lt = doc.find('<', pos);
    if (lt == absl::string_view::npos) lt = doc.size();
    AppendDecoded(doc.substr(pos, lt - pos), &stack.back().text);
    advance(pos, lt);
    if (lt == doc.size()) break;
    absl::string_view rest = doc.substr(lt);
    size_t end;
    if (absl::StartsWith(rest, "<?")) {
      end = doc.find("?>", lt);
      if (end == absl::string_view::npos) return malformed();
      end += 2;
    } else if (absl::StartsWith(rest, "<!--")) {
      end = doc.find("-->", lt);
      if (end == absl::string_view::npos) return malformed();
      end += 3;
    } else if (absl::StartsWith(rest, "<!")) {
      end = doc.find('>', lt);
      if (end == absl::string_view::npos) return malformed();
      end += 1;
    } else {
      // Find the closing '>' outside quoted attribute values.
      char quote = 0;
      end = lt + 1;
      while (end < doc.size() && (quote || doc[end] != '>')) {
        if (quote && doc[end] == quote)
          quote = 0;
        else if (!quote && (doc[end] == '"' || doc[end] == '\''))
          quote = doc[end];
        ++end;
      }
      if (end == doc.size()) return malformed();
      absl::string_view tag = doc.substr(lt + 1, end - lt - 1);  // without < and >
      end += 1;
      bool closing = absl::ConsumePrefix(&tag, "/");
      bool self_closing = !closing && absl::ConsumeSuffix(&tag, "/");
      size_t name_end = 0;
      while (name_end < tag.size() &&
             !absl::ascii_isspace(static_cast<unsigned char>(tag[name_end]))) {
        ++name_end;
      }
      std::string name(tag.substr(0, name_end));
      if (name.empty()) return malformed();
      if (closing) {
        if (stack.size() == 1 || stack.back().name != name) {
          return absl::InvalidArgumentError(absl::StrCat(
              "line ", line, ": expected ",
              stack.size() == 1 ? std::string("no closing tag") : "</" + stack.back().name + ">",
              ", got </", name, ">"));
        }
        XmlNode done = std::move(stack.back());
        stack.pop_back();
        stack.back().children.push_back(std::move(done));
      } else if (self_closing) {
        stack.back().children.push_back(XmlNode{name, "", {}});
      } else {
        stack.push_back(XmlNode{name, "", {}});
      }
    }
    advance(lt, end);
    pos = end;
  }
  if (stack.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected end of document inside <", stack.back().name, ">"));
  }
  return std::move(stack[0]);
}

// The first descendant along `path` ("fb_memory_usage/total"), or null.
const XmlNode* Find(const XmlNode& node, absl::string_view path) {
  const XmlNode* cur = &node;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    const XmlNode* next = nullptr;
    for (const XmlNode& child : cur->children) {
      if (child.name == part) {
        next = &child;
        break;
      }
    }
    if (!next) return nullptr;
    cur = next;
  }
  return cur;
}

}  // namespace

absl::StatusOr<std::vector<GpuInfo>> ParseNvidiaSmiXml(std::string_view text) {
  ASSAY_ASSIGN_OR_RETURN(XmlNode doc, ParseXml(absl::string_view(text.data(), text.size())));
  const XmlNode* log = Find(doc, "nvidia_smi_log");
  if (!log) return absl::InvalidArgumentError("no <nvidia_smi_log> root element");
  std::string driver;
  if (const XmlNode* d = Find(*log, "driver_version")) {
    driver = std::string(absl::StripAsciiWhitespace(d->text));
  }
  std::vector<GpuInfo> gpus;
  for (const XmlNode& node : log->children) {
    if (node.name != "gpu") continue;
    GpuInfo gpu;
    gpu.index = static_cast<uint32_t>(gpus.size());
    gpu.driver_version = driver;
    std::string prefix = absl::StrCat("gpu ", gpu.index);
    auto text_of = [&](absl::string_view path) -> absl::StatusOr<std::string> {
      const XmlNode* n = Find(node, path);
      if (!n) return absl::InvalidArgumentError(absl::StrCat(prefix, ": missing ", path));
      return std::string(absl::StripAsciiWhitespace(n->text));
    };
    auto where = [&](absl::string_view path) { return absl::StrCat(prefix, ", field ", path); };
    ASSAY_ASSIGN_OR_RETURN(gpu.uuid, text_of("uuid"));
    ASSAY_ASSIGN_OR_RETURN(gpu.name, text_of("product_name"));
    ASSAY_ASSIGN_OR_RETURN(std::string total, text_of("fb_memory_usage/total"));
    ASSAY_ASSIGN_OR_RETURN(gpu.memory_total_mb, ParseMib(total, where("fb_memory_usage/total")));
    ASSAY_ASSIGN_OR_RETURN(std::string used, text_of("fb_memory_usage/used"));
    ASSAY_ASSIGN_OR_RETURN(gpu.memory_used_mb, ParseMib(used, where("fb_memory_usage/used")));
    if (Find(node, "utilization/gpu_util")) {
      ASSAY_ASSIGN_OR_RETURN(std::string util, text_of("utilization/gpu_util"));
      ASSAY_ASSIGN_OR_RETURN(gpu.utilization_pct,
                             ParsePercent(util, where("utilization/gpu_util")));
    }
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

absl::StatusOr<std::vector<GpuInfo>> LoadGpuInventoryFile(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string why = absl::StrCat(path, ": cannot read: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(why) : absl::FailedPreconditionError(why);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  absl::StatusOr<std::vector<GpuInfo>> gpus =
      !trimmed.empty() && trimmed[0] == '<' ? ParseNvidiaSmiXml(text) : ParseNvidiaSmiCsv(text);
  if (!gpus.ok()) {
    return absl::Status(gpus.status().code(), absl::StrCat(path, ": ", gpus.status().message()));
  }
  return gpus;
}

std::string GpuInventoryJson(const std::vector<GpuInfo>& gpus) {
  boost::json::array list;
  for (const GpuInfo& g : gpus) {
    boost::json::object o;
    o["index"] = g.index;
    o["uuid"] = g.uuid;
    o["name"] = g.name;
    o["driver_version"] = g.driver_version;
    o["memory_total_mb"] = g.memory_total_mb;
    o["memory_used_mb"] = g.memory_used_mb;
    if (g.utilization_pct >= 0) {
      o["utilization_pct"] = g.utilization_pct;
    } else {
      o["utilization_pct"] = nullptr;
    }
    list.push_back(std::move(o));
  }
  boost::json::object root;
  root["gpus"] = std::move(list);
  return boost::json::serialize(root);
}

}  // namespace assay
