# Tests: each tests/unit/test_*.c is its own cmocka executable and ctest test; black-box
# tests under tests/integration are shell scripts that start real processes.
file(GLOB PQOTA_UNIT_TESTS CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/unit/test_*.c")
# test_store runs twice, once per backend: registered below.
list(FILTER PQOTA_UNIT_TESTS EXCLUDE REGEX "/test_store\\.c$")
foreach(src ${PQOTA_UNIT_TESTS})
  get_filename_component(name "${src}" NAME_WE)
  add_executable(${name} "${src}" tests/unit/testutil.c tests/unit/kat.c)
  target_include_directories(${name} PRIVATE "${CMAKE_SOURCE_DIR}/tests/unit")
  target_link_libraries(${name} PRIVATE pqota_agent pqota_server pqota_store pqota_pkg pqota_uptane
                        pqota_vehicle pqota_tls
                        pqota_crypto pqota_core PkgConfig::CMOCKA PkgConfig::JANSSON
                        PkgConfig::CURL)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES
    ENVIRONMENT "PQOTA_TESTVECTORS=${PQOTA_TESTVECTORS};PQOTA_BIN=$<TARGET_FILE:pqota>"
    TIMEOUT 300)
endforeach()

file(GLOB PQOTA_IT_TESTS CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/integration/*.sh")
foreach(script ${PQOTA_IT_TESTS})
  get_filename_component(name "${script}" NAME_WE)
  add_test(NAME integration/${name} COMMAND bash "${script}")
  set_tests_properties(integration/${name} PROPERTIES
    ENVIRONMENT "PQOTA_BIN=$<TARGET_FILE:pqota>;PQOTA_SRC=${CMAKE_SOURCE_DIR}"
    TIMEOUT 300)
endforeach()

# Fuzz harnesses: tests/fuzz/fuzz_NAME.c. Each is replayed over tests/fuzz/corpus/NAME by
# ctest (plain build, and under ASan+UBSan in the sanitizer build); with PQOTA_FUZZ=ON and
# clang, a libFuzzer binary is built too (make fuzz).
set(PQOTA_FUZZ_LIBS pqota_agent pqota_server pqota_store pqota_pkg pqota_uptane pqota_vehicle pqota_tls
    pqota_crypto pqota_core)
file(GLOB PQOTA_FUZZERS CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c")
foreach(src ${PQOTA_FUZZERS})
  get_filename_component(name "${src}" NAME_WE)
  string(REPLACE "fuzz_" "" short "${name}")
  add_executable(${name}_replay "${src}" tests/fuzz/replay.c)
  target_link_libraries(${name}_replay PRIVATE ${PQOTA_FUZZ_LIBS})
  add_test(NAME fuzz/${short}_replay
           COMMAND ${name}_replay "${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${short}")
  if(PQOTA_FUZZ)
    add_executable(${name} "${src}")
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ${PQOTA_FUZZ_LIBS})
  endif()
endforeach()
foreach(name crypto pkg)
  add_executable(mkcorpus_${name} tests/fuzz/mkcorpus_${name}.c)
  target_link_libraries(mkcorpus_${name} PRIVATE pqota_pkg pqota_crypto pqota_core)
endforeach()

# The store's tests: one binary, run against SQLite and against a real PostgreSQL server
# that tests/store/pg-fixture.sh starts (initdb in a temporary directory, a free port) and
# removes. Each run uses its own files and server, so both run in parallel with the rest.
add_executable(test_store tests/unit/test_store.c tests/unit/testutil.c)
target_include_directories(test_store PRIVATE "${CMAKE_SOURCE_DIR}/tests/unit")
target_link_libraries(test_store PRIVATE pqota_store pqota_crypto pqota_core PkgConfig::CMOCKA
                      Threads::Threads)
add_test(NAME unit/test_store_sqlite COMMAND test_store)
set_tests_properties(unit/test_store_sqlite PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=sqlite" TIMEOUT 300)
add_test(NAME unit/test_store_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_store>)
set_tests_properties(unit/test_store_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)

# The server's black-box API test also runs against a real PostgreSQL server.
add_test(NAME unit/test_server_api_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_server_api>)
set_tests_properties(unit/test_server_api_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres;PQOTA_BIN=$<TARGET_FILE:pqota>" TIMEOUT 300)
include(tests/tools/tools.cmake)

# The campaign store entities and engine (tests/unit/test_campaign.c, registered above
# against SQLite) also run against a real PostgreSQL server.
add_test(NAME unit/test_campaign_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_campaign>)
set_tests_properties(unit/test_campaign_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)

# The diagnostics store and control-plane path (tests/unit/test_diag.c, registered above
# against SQLite) also run against a real PostgreSQL server.
add_test(NAME unit/test_diag_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_diag>)
set_tests_properties(unit/test_diag_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)
