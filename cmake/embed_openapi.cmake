# Generates a C++ source holding server/api/openapi.json, which GET /api/v1/openapi.json
# serves. Run in script mode by the build.
file(READ ${INPUT} doc)
file(WRITE ${OUTPUT}.tmp "// Generated from server/api/openapi.json by cmake/embed_openapi.cmake.\n#include \"server/api/openapi.h\"\nnamespace assay::api {\nconst char* OpenApiDocument() {\n  return R\"assay_openapi(${doc})assay_openapi\";\n}\n}  // namespace assay::api\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUTPUT}.tmp ${OUTPUT})
