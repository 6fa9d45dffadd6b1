// /api/v1/agents: every agent the database knows, with its GPUs.

#include <boost/json.hpp>

#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {

namespace json = boost::json;
using http::JsonResponse;
using http::Request;

void RegisterAgentRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/agents", Authed(d, [&d](Request&) {
               auto list = d.agents->List();
               if (!list.ok()) return http::StatusToResponse(list.status());
               json::array a;
               for (const auto& ag : *list) {
                 auto o = AgentJson(ag);
                 if (!o.ok()) return http::StatusToResponse(o.status());
                 a.push_back(*std::move(o));
               }
               return JsonResponse(200, {{"agents", std::move(a)}});
             }));
}

}  // namespace assay::api
