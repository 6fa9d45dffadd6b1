#include "server/store/deliveries.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

const Query kInsert{
    "delivery_insert",
    "INSERT INTO webhook_deliveries (provider, delivery_id, event, repo_id, headers, body, state, "
    "message, processed_at, body_sha256) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, "
    "nullif($8, ''), CASE WHEN $7 = 'received' THEN NULL ELSE now() END, $9) "
    "ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id"};
// Why a lock: two copies of one body arriving at once must not both miss each other. The
// two-int form keeps these keys apart from the bigint locks (migrations).
const Query kLockBody{"delivery_lock_body", "SELECT pg_advisory_xact_lock(7007, $1)"};
const Query kFindSameBody{
    "delivery_find_same_body",
    "SELECT id FROM webhook_deliveries WHERE repo_id = $1 AND body_sha256 = $2 AND "
    "received_at > now() - make_interval(secs => $3::double precision / 1000000) "
    "ORDER BY id LIMIT 1"};
const Query kFindExisting{
    "delivery_find", "SELECT id FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2"};
const Query kGet{"delivery_get",
                 "SELECT id, provider, delivery_id, event, state, coalesce(message, ''), "
                 "repo_id, body, (extract(epoch from now() - received_at) * 1000000)::bigint "
                 "FROM webhook_deliveries WHERE id = $1"};
const Query kUnplanned{"delivery_unplanned",
                       "SELECT id FROM webhook_deliveries WHERE state = 'received' ORDER BY id"};
const Query kFinish{"delivery_finish",
                    "UPDATE webhook_deliveries SET state = $2, message = $3, processed_at = "
                    "now() WHERE id = $1 AND state = 'received'"};
const Query kListOfRepo{
    "delivery_list_of_repo",
    "SELECT d.id, d.provider, d.delivery_id, d.event, d.state, coalesce(d.message, ''), "
    ASSAY_EPOCH_US("d.received_at") ", " ASSAY_EPOCH_US("d.processed_at") ", p.id "
    "FROM webhook_deliveries d LEFT JOIN pipelines p ON p.delivery_id = d.id "
    "WHERE d.repo_id = $1 AND ($2 = 0 OR d.id < $2) ORDER BY d.id DESC LIMIT $3"};

}  // namespace

absl::StatusOr<std::vector<DeliverySummary>> DeliveryStore::ListOfRepo(int64_t repo_id,
                                                                       int64_t before_id,
                                                                       int limit) {
  std::vector<DeliverySummary> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kListOfRepo, {repo_id, before_id, limit})) {
      DeliverySummary d;
      d.id = r[0].as<int64_t>();
      d.provider = r[1].as<std::string>();
      d.delivery_id = r[2].as<std::string>();
      d.event = r[3].as<std::string>();
      d.state = r[4].as<std::string>();
      d.message = r[5].as<std::string>();
      d.received_at = ToTime(r[6]);
      d.processed_at = ToTime(r[7]);
      if (!r[8].is_null()) d.pipeline_id = r[8].as<int64_t>();
      out.push_back(std::move(d));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<InsertResult> DeliveryStore::Insert(const NewDelivery& d) {
  InsertResult out;
  const bool by_body = d.body_sha256.size() >= 4 && d.dedupe_window > absl::ZeroDuration();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out = InsertResult{};
    if (by_body) {
      int32_t key = 0;
      std::memcpy(&key, d.body_sha256.data(), sizeof key);
      Exec(tx, c, kLockBody, {key});
      auto same = Exec(
          tx, c, kFindSameBody,
          {d.repo_id, Param::Bytes(d.body_sha256), absl::ToInt64Microseconds(d.dedupe_window)});
      if (!same.empty()) {
        out.id = same[0][0].as<int64_t>();
        out.same_body = true;
        return absl::OkStatus();
      }
    }
    auto res =
        Exec(tx, c, kInsert,
             {d.provider, d.delivery_id, d.event, d.repo_id, d.headers_json, Param::Bytes(d.body),
              d.initial_state, d.message, by_body ? Param::Bytes(d.body_sha256) : Param::Null()});
    if (!res.empty()) {
      out.id = res[0][0].as<int64_t>();
      out.inserted = true;
    } else {
      auto ex = Exec(tx, c, kFindExisting, {d.provider, d.delivery_id});
      if (!ex.empty()) out.id = ex[0][0].as<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Delivery> DeliveryStore::Get(int64_t id) {
  std::optional<Delivery> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kGet, {id});
    if (res.empty()) return absl::OkStatus();
    const auto& r = res[0];
    Delivery d;
    d.id = r[0].as<int64_t>();
    d.provider = r[1].as<std::string>();
    d.delivery_id = r[2].as<std::string>();
    d.event = r[3].as<std::string>();
    d.state = r[4].as<std::string>();
    d.message = r[5].as<std::string>();
    d.repo_id = r[6].as<int64_t>();
    d.body = BytesOf(r[7]);
    d.age = absl::Microseconds(r[8].as<int64_t>());
    out = std::move(d);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("delivery ", id, " does not exist"));
  return *out;
}

absl::StatusOr<std::vector<int64_t>> DeliveryStore::ListUnplanned() {
  std::vector<int64_t> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kUnplanned)) out.push_back(r[0].as<int64_t>());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status DeliveryStore::Finish(int64_t id, std::string_view state, std::string_view message) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kFinish, {id, state, message});
    return absl::OkStatus();
  });
}

}  // namespace assay::store
