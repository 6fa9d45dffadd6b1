#include "common/evals/data/xml_reader.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsNameChar(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':' || u >= 0x80;
}

// XML's Char production, for numeric character references.
bool IsXmlChar(uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

class Reader {
 public:
  Reader(std::string_view doc, const XmlLimits& limits) : doc_(doc), limits_(limits) {}

  absl::StatusOr<XmlElement> Document() {
    if (doc_.size() > limits_.max_bytes) {
      return ErrorAt(0, absl::StrCat("document of ", doc_.size(), " bytes is over the limit of ",
                                     limits_.max_bytes, " bytes (max_bytes)"));
    }
    size_t bad = 0;
    if (!IsValidUtf8(doc_, &bad)) return ErrorAt(bad, "not valid UTF-8");
    for (size_t i = 0; i < doc_.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(doc_[i]);
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
        return ErrorAt(i, absl::StrCat("character U+00", HexByte(c), " is not allowed in XML"));
      }
    }
    if (doc_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    bool have_root = false;
    XmlElement root;
    while (true) {
      SkipSpace();
      if (pos_ >= doc_.size()) break;
      if (Next("<?")) {
        if (absl::Status s = ProcessingInstruction(); !s.ok()) return s;
      } else if (Next("<!--")) {
        if (absl::Status s = Comment(); !s.ok()) return s;
      } else if (Next("<!")) {
        return Declaration();
      } else if (Next("<") && !have_root) {
        absl::StatusOr<XmlElement> e = Element(1);
        if (!e.ok()) return e.status();
        root = *std::move(e);
        have_root = true;
      } else {
        return ErrorAt(
            pos_, have_root ? "content after the root element" : "text before the root element");
      }
    }
    if (!have_root) return ErrorAt(pos_, "no root element");
    return root;
  }

 private:
  static std::string HexByte(unsigned char c) {
    const char* digits = "0123456789ABCDEF";
    return std::string{digits[c >> 4], digits[c & 15]};
  }

  absl::Status ErrorAt(size_t offset, std::string_view what) const {
    size_t line = 1;
    size_t col = 1;
    for (size_t i = 0; i < offset && i < doc_.size(); ++i) {
      if (doc_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(line, ":", col, ": ", Av(what)));
  }

  bool Next(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  void SkipSpace() {
    while (pos_ < doc_.size() && IsXmlSpace(doc_[pos_])) ++pos_;
  }

  absl::Status Declaration() const {
    if (Next("<!DOCTYPE") || Next("<!ENTITY") || Next("<!ELEMENT") || Next("<!ATTLIST")) {
      return ErrorAt(pos_, "DOCTYPE and ENTITY declarations are not accepted");
    }
    return ErrorAt(pos_, "unexpected \"<!\"");
  }

  absl::Status Comment() {
    const size_t start = pos_;
    const size_t end = doc_.find("-->", pos_ + 4);
    if (end == std::string_view::npos) return ErrorAt(start, "comment without \"-->\"");
    pos_ = end + 3;
    return absl::OkStatus();
  }

  absl::Status ProcessingInstruction() {
    const size_t start = pos_;
    const size_t end = doc_.find("?>", pos_ + 2);
    if (end == std::string_view::npos) return ErrorAt(start, "\"<?\" without \"?>\"");
    const std::string_view body = doc_.substr(start + 2, end - start - 2);
    pos_ = end + 2;
    if (body.substr(0, 3) == "xml" && (body.size() == 3 || IsXmlSpace(body[3]))) {
      // The declaration: only UTF-8 (ASCII is a subset) is read.
      const size_t enc = body.find("encoding");
      if (enc != std::string_view::npos) {
        size_t q = body.find_first_of("\"'", enc);
        if (q != std::string_view::npos) {
          const size_t q2 = body.find(body[q], q + 1);
          const std::string name = absl::AsciiStrToLower(Av(body.substr(
              q + 1, q2 == std::string_view::npos ? std::string_view::npos : q2 - q - 1)));
          if (name != "utf-8" && name != "utf8" && name != "us-ascii" && name != "ascii") {
            return ErrorAt(start,
                           absl::StrCat("encoding \"", name, "\" is not supported (UTF-8 only)"));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string_view> Name() {
    const size_t start = pos_;
    while (pos_ < doc_.size() && IsNameChar(doc_[pos_])) ++pos_;
    if (pos_ == start) return ErrorAt(start, "expected a name");
    return doc_.substr(start, pos_ - start);
  }

  // Decodes `raw` (text or an attribute value starting at `offset`) into `out`.
  absl::Status Decode(std::string_view raw, size_t offset, bool attribute, std::string* out) {
    for (size_t i = 0; i < raw.size(); ++i) {
      const char c = raw[i];
      if (c != '&') {
        // Attribute-value normalization: literal whitespace becomes a space.
        out->push_back(attribute && IsXmlSpace(c) ? ' ' : c);
        continue;
      }
      const size_t semi = raw.find(';', i);
      if (semi == std::string_view::npos || semi - i > 12) {
        return ErrorAt(offset + i, "\"&\" not followed by an entity reference (write &amp;)");
      }
      const std::string_view ref = raw.substr(i + 1, semi - i - 1);
      if (ref == "lt") {
        out->push_back('<');
      } else if (ref == "gt") {
        out->push_back('>');
      } else if (ref == "amp") {
        out->push_back('&');
      } else if (ref == "quot") {
        out->push_back('"');
      } else if (ref == "apos") {
        out->push_back('\'');
      } else if (!ref.empty() && ref[0] == '#') {
        const bool hex = ref.size() > 1 && ref[1] == 'x';
        const std::string_view digits = ref.substr(hex ? 2 : 1);
        uint32_t cp = 0;
        bool ok = !digits.empty();
        for (char d : digits) {
          int v;
          if (d >= '0' && d <= '9') {
            v = d - '0';
          } else if (hex && d >= 'a' && d <= 'f') {
            v = d - 'a' + 10;
          } else if (hex && d >= 'A' && d <= 'F') {
            v = d - 'A' + 10;
          } else {
            ok = false;
            break;
          }
          cp = cp * (hex ? 16 : 10) + v;
          if (cp > 0x10FFFF) {
            ok = false;
            break;
          }
        }
        if (!ok || !IsXmlChar(cp)) {
          return ErrorAt(offset + i, absl::StrCat("bad character reference \"&", Av(ref), ";\""));
        }
        AppendUtf8(cp, out);
      } else {
        return ErrorAt(offset + i, absl::StrCat("unknown entity \"&", Av(ref), ";\""));
      }
      i = semi;
    }
    return absl::OkStatus();
  }

  // At "<" of a start tag; on return pos_ is past its end tag.
  absl::StatusOr<XmlElement> Element(int depth) {
    const size_t start = pos_;
    if (depth > limits_.max_depth) {
      return ErrorAt(start, absl::StrCat("elements nested deeper than ", limits_.max_depth,
                                         " levels (max_depth)"));
    }
    if (++elements_ > limits_.max_elements) {
      return ErrorAt(start,
                     absl::StrCat("more than ", limits_.max_elements, " elements (max_elements)"));
    }
    XmlElement e;
    Position(start, &e.line, &e.column);
    ++pos_;
    absl::StatusOr<std::string_view> name = Name();
    if (!name.ok()) return name.status();
    e.name = std::string(*name);
    while (true) {
      SkipSpace();
      if (pos_ >= doc_.size()) return ErrorAt(start, absl::StrCat("<", e.name, "> is not closed"));
      if (Next("/>")) {
        pos_ += 2;
        return e;
      }
      if (Next(">")) {
        ++pos_;
        break;
      }
      const size_t attr_at = pos_;
      absl::StatusOr<std::string_view> attr = Name();
      if (!attr.ok()) return attr.status();
      SkipSpace();
      if (!Next("=")) return ErrorAt(pos_, absl::StrCat("attribute ", Av(*attr), " has no value"));
      ++pos_;
      SkipSpace();
      if (pos_ >= doc_.size() || (doc_[pos_] != '"' && doc_[pos_] != '\'')) {
        return ErrorAt(pos_, absl::StrCat("attribute ", Av(*attr), ": value must be quoted"));
      }
      const char quote = doc_[pos_];
      const size_t end = doc_.find(quote, pos_ + 1);
      if (end == std::string_view::npos) {
        return ErrorAt(pos_, absl::StrCat("attribute ", Av(*attr), ": no closing quote"));
      }
      const std::string_view raw = doc_.substr(pos_ + 1, end - pos_ - 1);
      if (const size_t lt = raw.find('<'); lt != std::string_view::npos) {
        return ErrorAt(pos_ + 1 + lt, "\"<\" in an attribute value (write &lt;)");
      }
      if (e.Attribute(*attr) != nullptr) {
        return ErrorAt(attr_at, absl::StrCat("attribute ", Av(*attr), " repeats"));
      }
      if (e.attributes.size() >= limits_.max_attributes) {
        return ErrorAt(attr_at, absl::StrCat("more than ", limits_.max_attributes,
                                             " attributes (max_attributes)"));
      }
      std::string value;
      if (absl::Status s = Decode(raw, pos_ + 1, /*attribute=*/true, &value); !s.ok()) return s;
      e.attributes.emplace_back(std::string(*attr), std::move(value));
      pos_ = end + 1;
    }
    // Content, up to the matching end tag.
    while (true) {
      if (pos_ >= doc_.size()) return ErrorAt(start, absl::StrCat("<", e.name, "> is not closed"));
      if (Next("</")) {
        const size_t end_at = pos_;
        pos_ += 2;
        absl::StatusOr<std::string_view> end_name = Name();
        if (!end_name.ok()) return end_name.status();
        if (*end_name != e.name) {
          return ErrorAt(end_at, absl::StrCat("</", Av(*end_name), "> closes <", e.name, ">"));
        }
        SkipSpace();
        if (!Next(">")) return ErrorAt(pos_, "expected \">\"");
        ++pos_;
        return e;
      }
      if (Next("<!--")) {
        if (absl::Status s = Comment(); !s.ok()) return s;
      } else if (Next("<![CDATA[")) {
        const size_t end = doc_.find("]]>", pos_ + 9);
        if (end == std::string_view::npos) return ErrorAt(pos_, "CDATA without \"]]>\"");
        e.text.append(doc_.substr(pos_ + 9, end - pos_ - 9));
        pos_ = end + 3;
      } else if (Next("<!")) {
        return Declaration();
      } else if (Next("<?")) {
        if (absl::Status s = ProcessingInstruction(); !s.ok()) return s;
      } else if (Next("<")) {
        absl::StatusOr<XmlElement> child = Element(depth + 1);
        if (!child.ok()) return child.status();
        e.children.push_back(*std::move(child));
      } else {
        size_t end = doc_.find('<', pos_);
        if (end == std::string_view::npos) end = doc_.size();
        if (absl::Status s = Decode(doc_.substr(pos_, end - pos_), pos_, false, &e.text); !s.ok()) {
          return s;
        }
        pos_ = end;
      }
    }
  }

  void Position(size_t offset, size_t* line, size_t* col) {
    // Incremental: positions are asked for in increasing order while parsing.
    for (; line_scan_ < offset; ++line_scan_) {
      if (doc_[line_scan_] == '\n') {
        ++line_;
        line_start_ = line_scan_ + 1;
      }
    }
    *line = line_;
    *col = offset - line_start_ + 1;
  }

  const std::string_view doc_;
  const XmlLimits& limits_;
  size_t pos_ = 0;
  size_t elements_ = 0;
  size_t line_scan_ = 0, line_ = 1, line_start_ = 0;
};

}  // namespace

const std::string* XmlElement::Attribute(std::string_view attr) const {
  for (const auto& [k, v] : attributes) {
    if (k == attr) return &v;
  }
  return nullptr;
}

absl::StatusOr<XmlElement> ParseXml(std::string_view xml, const XmlLimits& limits) {
  return Reader(xml, limits).Document();
}

}  // namespace assay::evals
