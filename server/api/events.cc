// GET /api/v1/events (issue 11): live pipeline and job changes as Server-Sent Events, for the
// dashboard (server/events/event_hub.h).

#include "server/api/routes.h"
#include "server/events/event_hub.h"
#include "server/http/json_util.h"

namespace assay::api {

void RegisterEventRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/events", Authed(d, auth::Need::Read(), [&d](http::Request&) {
               if (d.events == nullptr) {
                 return http::ErrorResponse(503, "unavailable",
                                            "live events are not available on this server");
               }
               std::shared_ptr<events::Subscription> sub = d.events->Subscribe();
               if (sub == nullptr) {
                 http::Response r = http::ErrorResponse(
                     503, "unavailable", "too many live event streams on this server; retry");
                 r.headers.emplace_back("Retry-After", "5");
                 return r;
               }
               http::Response r;
               r.content_type = "text/event-stream";
               r.headers.emplace_back("X-Accel-Buffering", "no");
               r.stream_async = [sub](http::Response::PieceSink next) {
                 sub->Next(std::move(next));
               };
               return r;
             }));
}

}  // namespace assay::api
