#include "server/store/db.h"

#include <libpq-fe.h>

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/log.h"
#include "common/base/status.h"

namespace assay::store {

Param::Param(absl::Time t)
    : value(absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", t, absl::UTCTimeZone())) {}

namespace {
std::vector<const Query*>& Registry() {
  static auto* queries = new std::vector<const Query*>();  // never destroyed: used at exit too
  return *queries;
}
}  // namespace

Query::Query(const char* query_name, const char* query_sql) : name(query_name), sql(query_sql) {
  Registry().push_back(this);
}

Query::~Query() { std::erase(Registry(), this); }

const std::vector<const Query*>& AllQueries() { return Registry(); }

absl::Status CheckQueryNames(const std::vector<const Query*>& queries) {
  absl::flat_hash_map<std::string, const Query*> seen;
  for (const Query* q : queries) {
    auto [it, inserted] = seen.emplace(q->name, q);
    if (!inserted && std::string_view(it->second->sql) != q->sql) {
      return absl::InternalError(absl::StrCat("two statements are named '", q->name, "': \"",
                                              it->second->sql, "\" and \"", q->sql, "\""));
    }
  }
  return absl::OkStatus();
}

void Connection::EnsurePrepared(const Query& q) {
  if (prepared_.contains(q.name)) return;
  conn_.prepare(q.name, q.sql);
  prepared_.insert(q.name);
}

pqxx::result Exec(pqxx::transaction_base& tx, Connection& conn, const Query& q,
                  const std::vector<Param>& params) {
  conn.EnsurePrepared(q);
  // Why the deprecated invocation API: it is libpqxx 6.4's only way to bind a runtime list
  // of parameters that mixes text, bytea and NULL.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  auto inv = tx.prepared(q.name);
#pragma GCC diagnostic pop
  std::vector<pqxx::binarystring> bins;
  bins.reserve(params.size());
  for (const auto& p : params) {
    if (p.binary) {
      bins.emplace_back(p.value.data(), p.value.size());
      inv(bins.back(), !p.null);
    } else {
      inv(p.value, !p.null);
    }
  }
  return inv.exec();
}

ConnLease::~ConnLease() {
  if (conn_ != nullptr && db_ != nullptr) db_->Release(std::move(conn_));
}

namespace {

// A value in libpq's key=value syntax: single-quoted, with ' and \ escaped.
std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

int64_t WholeSeconds(absl::Duration d, int64_t at_least) {
  return std::max(at_least, absl::ToInt64Seconds(d));
}

}  // namespace

std::string WithConnectionDefaults(const std::string& dsn, const DbOptions& o) {
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), &err);
  if (parsed == nullptr) {
    if (err != nullptr) PQfreemem(err);
    return dsn;
  }
  // Only what the DSN sets has a value (PQconninfoParse fills in no defaults).
  std::vector<std::pair<std::string, std::string>> set;
  std::map<std::string, size_t> index;
  for (PQconninfoOption* opt = parsed; opt->keyword != nullptr; ++opt) {
    if (opt->val == nullptr) continue;
    index[opt->keyword] = set.size();
    set.emplace_back(opt->keyword, opt->val);
  }
  PQconninfoFree(parsed);
  auto add = [&](const std::string& key, const std::string& value) {
    if (index.contains(key)) return;
    index[key] = set.size();
    set.emplace_back(key, value);
  };
  add("connect_timeout", absl::StrCat(WholeSeconds(o.connect_timeout, 2)));
  add("keepalives", "1");
  add("keepalives_idle", absl::StrCat(WholeSeconds(o.keepalives_idle, 1)));
  add("keepalives_interval", absl::StrCat(WholeSeconds(o.keepalives_interval, 1)));
  add("keepalives_count", absl::StrCat(std::max(1, o.keepalives_count)));
  const std::string timeout =
      absl::StrCat("-c statement_timeout=", absl::ToInt64Milliseconds(o.statement_timeout));
  if (auto it = index.find("options"); it == index.end()) {
    add("options", timeout);
  } else if (!absl::StrContains(set[it->second].second, "statement_timeout")) {
    set[it->second].second = absl::StrCat(set[it->second].second, " ", timeout);
  }
  std::string out;
  for (const auto& [k, v] : set) {
    if (!out.empty()) out += ' ';
    absl::StrAppend(&out, k, "=", QuoteConnValue(v));
  }
  return out;
}

Db::Db(std::string dsn, int max_size) : Db(std::move(dsn), DbOptions{.max_size = max_size}) {}

Db::Db(std::string dsn, DbOptions options)
    : options_(std::move(options)),
      dsn_(WithConnectionDefaults(dsn, options_)),
      max_size_(options_.max_size) {}

absl::StatusOr<ConnLease> Db::Acquire() {
  {
    absl::MutexLock l(&mu_);
    auto can_take = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < max_size_;
    };
    // Why bounded: a leak or a stuck statement must show up as an error on the caller's
    // request, not as every thread of the server blocked here for good.
    if (!mu_.AwaitWithTimeout(absl::Condition(&can_take), options_.acquire_timeout)) {
      return absl::UnavailableError(absl::StrCat(
          "database pool '", options_.name, "': all ", max_size_, " connections in use; waited ",
          absl::FormatDuration(options_.acquire_timeout), " for one"));
    }
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return ConnLease(this, std::move(c));
    }
    ++open_;
  }
  try {
    return ConnLease(this, std::make_unique<Connection>(dsn_));
  } catch (const std::exception& e) {
    absl::MutexLock l(&mu_);
    --open_;
    return MarkInternalDetail(
        absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", e.what())));
  }
}

void Db::Release(std::unique_ptr<Connection> c) {
  absl::MutexLock l(&mu_);
  if (c->raw().is_open()) {
    idle_.push_back(std::move(c));
  } else {
    --open_;  // Why: a broken connection is dropped; the next Acquire opens a fresh one.
  }
}

absl::Status InTransaction(Db& db,
                           const std::function<absl::Status(pqxx::work&, Connection&)>& fn) {
  auto lease = db.Acquire();
  if (!lease.ok()) return lease.status();
  Connection& conn = **lease;
  try {
    pqxx::work tx(conn.raw());
    absl::Status s = fn(tx, conn);
    if (!s.ok()) return s;  // pqxx::work rolls back in its destructor
    tx.commit();
    return absl::OkStatus();
  } catch (const pqxx::broken_connection& e) {
    try {
      conn.raw().disconnect();
    } catch (...) {
    }
    return MarkInternalDetail(
        absl::UnavailableError(absl::StrCat("database connection lost: ", e.what())));
  } catch (const pqxx::serialization_failure& e) {
    return MarkInternalDetail(absl::AbortedError(e.what()));
  } catch (const pqxx::deadlock_detected& e) {
    return MarkInternalDetail(absl::AbortedError(e.what()));
  } catch (const pqxx::integrity_constraint_violation& e) {
    return MarkInternalDetail(absl::FailedPreconditionError(e.what()));
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "57014") {  // query_canceled: statement_timeout (or a cancel request)
      return MarkInternalDetail(absl::DeadlineExceededError(
          absl::StrCat("database statement canceled after statement_timeout (",
                       absl::FormatDuration(db.options().statement_timeout), "): ", e.what())));
    }
    LogError("store", "query ", e.query().substr(0, 80), " failed: ", e.what());
    return MarkInternalDetail(absl::InternalError(absl::StrCat("database error: ", e.what())));
  } catch (const std::exception& e) {
    return MarkInternalDetail(absl::InternalError(absl::StrCat("database error: ", e.what())));
  }
}

std::string ToPgTextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string ToPgArray(const std::vector<int64_t>& items) {
  std::vector<std::string> text;
  text.reserve(items.size());
  for (int64_t v : items) text.push_back(absl::StrCat(v));
  return ToPgTextArray(text);
}

std::vector<std::string> FromPgTextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  pqxx::array_parser parser = f.as_array();
  for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done;
       std::tie(kind, value) = parser.get_next()) {
    if (kind == pqxx::array_parser::string_value) out.push_back(value);
  }
  return out;
}

absl::Time ToTime(const pqxx::field& f) {
  if (f.is_null()) return absl::InfinitePast();
  return absl::FromUnixMicros(f.as<int64_t>());
}

std::string BytesOf(const pqxx::field& f) {
  pqxx::binarystring b(f);
  return b.str();
}

absl::StatusOr<std::vector<RepoBytes>> QueryRepoBytes(Db& db, const Query& q) {
  std::vector<RepoBytes> out;
  absl::Status s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, q)) {
      out.push_back(
          {r[0].as<int64_t>(), r[1].as<std::string>(), r[2].as<int64_t>(), r[3].as<int64_t>()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
