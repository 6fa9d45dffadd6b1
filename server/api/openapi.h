#pragma once
// The API's OpenAPI 3 document (server/api/openapi.json, embedded at build time), served at
// GET /api/v1/openapi.json. The db tier checks it against the routes the server registers and
// against tests/support/access_table.h: a route missing from it, or documented but absent,
// fails a test.

namespace assay::api {

const char* OpenApiDocument();

}  // namespace assay::api
