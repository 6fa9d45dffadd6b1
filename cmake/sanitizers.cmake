# Sanitizer, fuzzing and clang analysis builds, each in its own build directory
# (tests/run-all.sh asan|tsan|fuzz|clang configures them). Off by default: a plain
# build is unchanged.
#
#   ASSAY_SANITIZE=address,undefined  ASan + UBSan on every target; UB aborts (no recovery)
#   ASSAY_SANITIZE=thread             TSan on every target, plus the absl::Mutex annotations
#                                     of tests/sanitizers/tsan_absl_mutex.cc
#   ASSAY_THREAD_SAFETY=ON            clang's -Wthread-safety as an error on our own code
#   ASSAY_FUZZ=ON                     the libFuzzer targets of tests/fuzz (clang only)
#
# The system gRPC, Protobuf, Abseil, libpqxx and Boost libraries are not instrumented;
# tests/sanitizers/*.supp says what that costs and what is suppressed for it.

set(ASSAY_SANITIZE "" CACHE STRING
    "sanitizers for every target: empty, 'address,undefined' or 'thread'")
option(ASSAY_THREAD_SAFETY "clang: -Wthread-safety -Werror on our own code" OFF)
option(ASSAY_FUZZ "build the libFuzzer targets in tests/fuzz (clang)" OFF)

if(ASSAY_SANITIZE)
  set(_flags -fsanitize=${ASSAY_SANITIZE} -fno-omit-frame-pointer)
  if(ASSAY_SANITIZE MATCHES "undefined")
    # Why: a UBSan report that only prints is a report nobody reads; make it a failure.
    list(APPEND _flags -fno-sanitize-recover=all)
  endif()
  add_compile_options(${_flags})
  add_link_options(${_flags})
endif()

if(ASSAY_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ASSAY_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage feedback for every library the fuzzers link; the fuzzers add -fsanitize=fuzzer.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(ASSAY_THREAD_SAFETY)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ASSAY_THREAD_SAFETY needs clang: -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # -Wthread-safety-beta is left out: it flags absl's own scoped-lock idioms.
  list(APPEND ASSAY_WARNINGS -Wthread-safety)
endif()

if(ASSAY_SANITIZE MATCHES "thread")
  # absl::Mutex made visible to TSan (see the file's comment). Linked into every executable;
  # the undefined anchor pulls its one object out of the archive even where libabsl already
  # defines the symbols it interposes. (Not WHOLE_ARCHIVE: the library then appears once per
  # dependency on a link line, and its definitions clash with each other.)
  add_library(assay_tsan_absl_mutex STATIC
    ${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan_absl_mutex.cc)
  target_link_libraries(assay_tsan_absl_mutex PUBLIC absl::synchronization ${CMAKE_DL_LIBS})
  link_libraries(assay_tsan_absl_mutex)
  add_link_options(-Wl,--undefined=assay_tsan_absl_mutex_anchor)
endif()
