# Generates a C++ source holding every migrations/NNNN_*.sql file, so that the server
# needs no path to its migrations at run time. Run in script mode by the build.
file(GLOB files ${MIGRATIONS_DIR}/*.sql)
list(SORT files)
set(body "")
foreach(f ${files})
  get_filename_component(name ${f} NAME)
  string(REGEX MATCH "^[0-9]+" num ${name})
  math(EXPR version "${num}")
  file(READ ${f} sql)
  string(APPEND body "    {${version}, \"${name}\", R\"assay_sql(${sql})assay_sql\"},\n")
endforeach()
file(WRITE ${OUTPUT}.tmp "// Generated from migrations/*.sql by cmake/embed_migrations.cmake.\n#include \"server/store/migrations.h\"\nnamespace assay::store {\nconst std::vector<Migration>& EmbeddedMigrations() {\n  static const std::vector<Migration> kAll = {\n${body}  };\n  return kAll;\n}\n}  // namespace assay::store\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUTPUT}.tmp ${OUTPUT})
