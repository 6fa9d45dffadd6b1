// WithConnectionDefaults: what every pooled PostgreSQL connection is opened with. The result is
// read back with libpq's own parser, so the assertions hold whatever order libpq lists keys in.

#include <libpq-fe.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "server/store/db.h"

namespace assay::store {
namespace {

// Every key the conninfo string sets, with its value; {"error": ...} when it does not parse.
std::map<std::string, std::string> Parsed(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string e = err != nullptr ? err : "?";
    if (err != nullptr) PQfreemem(err);
    return {{"error", e}};
  }
  std::map<std::string, std::string> out;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  return out;
}

TEST_CASE("db dsn: a URI gets connect_timeout, keepalives and statement_timeout", "[store]") {
  CHECK(Parsed(WithConnectionDefaults("postgresql://assay@db.example:5433/ci?sslmode=require",
                                      DbOptions{})) ==
        std::map<std::string, std::string>{{"user", "assay"},
                                           {"host", "db.example"},
                                           {"port", "5433"},
                                           {"dbname", "ci"},
                                           {"sslmode", "require"},
                                           {"connect_timeout", "10"},
                                           {"keepalives", "1"},
                                           {"keepalives_idle", "30"},
                                           {"keepalives_interval", "10"},
                                           {"keepalives_count", "3"},
                                           {"options", "-c statement_timeout=60000"}});
}

TEST_CASE("db dsn: the options set them, a user's own values are kept", "[store]") {
  DbOptions o;
  o.connect_timeout = absl::Seconds(4);
  o.statement_timeout = absl::Milliseconds(1500);
  o.keepalives_idle = absl::Seconds(7);
  o.keepalives_interval = absl::Seconds(2);
  o.keepalives_count = 5;
  CHECK(Parsed(WithConnectionDefaults("host=/run/pg dbname=x connect_timeout=3 keepalives=0 "
                                      "options='-c search_path=ci\\\\ schema'",
                                      o)) ==
        std::map<std::string, std::string>{{"host", "/run/pg"},
                                           {"dbname", "x"},
                                           {"connect_timeout", "3"},
                                           {"keepalives", "0"},
                                           {"keepalives_idle", "7"},
                                           {"keepalives_interval", "2"},
                                           {"keepalives_count", "5"},
                                           {"options",
                                            "-c search_path=ci\\ schema "
                                            "-c statement_timeout=1500"}});
  // A statement_timeout of the user's own, in options, is left alone.
  CHECK(Parsed(WithConnectionDefaults(
            "postgresql:///x?options=-c%20statement_timeout%3D5s&keepalives_count=9", o)) ==
        std::map<std::string, std::string>{{"dbname", "x"},
                                           {"connect_timeout", "4"},
                                           {"keepalives", "1"},
                                           {"keepalives_idle", "7"},
                                           {"keepalives_interval", "2"},
                                           {"keepalives_count", "9"},
                                           {"options", "-c statement_timeout=5s"}});
}

TEST_CASE("db dsn: one libpq cannot parse is returned unchanged", "[store]") {
  CHECK(WithConnectionDefaults("host='unterminated", DbOptions{}) == "host='unterminated");
  CHECK(WithConnectionDefaults("nonsense_key=1", DbOptions{}) == "nonsense_key=1");
}

}  // namespace
}  // namespace assay::store
