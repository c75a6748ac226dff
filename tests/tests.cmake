# Tests: each tests/unit/test_*.c is its own cmocka executable and ctest test; black-box
# tests under tests/integration are shell scripts that start real processes.
#
# Each unit test links only the pqota libraries it tests (and what they depend on), so that
# a test that reaches across the layering does not link: PQOTA_UNIT_LIBS_<test> below, one
# entry per test. A test missing from the map links every library (and configuring says so):
# add it. PQOTA_UNIT_SRCS_<test>: shared test sources beyond testutil.c.
set(PQOTA_UNIT_LIBS_test_agent pqota_agent)
set(PQOTA_UNIT_LIBS_test_campaign pqota_server)
set(PQOTA_UNIT_LIBS_test_campaign_continuous pqota_server)
set(PQOTA_UNIT_LIBS_test_cjson pqota_uptane)
set(PQOTA_UNIT_LIBS_test_config pqota_core)
set(PQOTA_UNIT_LIBS_test_core pqota_core)
set(PQOTA_UNIT_LIBS_test_crypto pqota_crypto)
set(PQOTA_UNIT_LIBS_test_delta pqota_pkg)
set(PQOTA_UNIT_LIBS_test_lzx pqota_pkg)
set(PQOTA_UNIT_SRCS_test_delta tests/unit/delta_fixture.c)
set(PQOTA_UNIT_SRCS_test_lzx tests/unit/delta_fixture.c)
set(PQOTA_UNIT_LIBS_test_diag pqota_server)
set(PQOTA_UNIT_LIBS_test_doip pqota_vehicle)
set(PQOTA_UNIT_LIBS_test_ecu pqota_vehicle)
set(PQOTA_UNIT_LIBS_test_ecu_registry pqota_store)
set(PQOTA_UNIT_LIBS_test_fleet pqota_store)
set(PQOTA_UNIT_LIBS_test_kat_mldsa pqota_crypto)
set(PQOTA_UNIT_LIBS_test_kat_mlkem pqota_crypto)
set(PQOTA_UNIT_LIBS_test_mqtt pqota_server)
set(PQOTA_UNIT_LIBS_test_notify pqota_core)
set(PQOTA_UNIT_LIBS_test_msg pqota_server)
set(PQOTA_UNIT_LIBS_test_pkg pqota_pkg)
set(PQOTA_UNIT_LIBS_test_semver pqota_core)
set(PQOTA_UNIT_LIBS_test_server_api pqota_server PkgConfig::CURL)
set(PQOTA_UNIT_LIBS_test_sim pqota_vehicle)
set(PQOTA_UNIT_LIBS_test_store pqota_store)
set(PQOTA_UNIT_LIBS_test_telemetry pqota_server pqota_agent)
set(PQOTA_UNIT_LIBS_test_readiness pqota_server pqota_agent)
set(PQOTA_UNIT_LIBS_test_tls pqota_tls)
# the shared library through its public header; pqota_crypto only makes the PKI fixtures
set(PQOTA_UNIT_LIBS_test_tls_lib pqota-tls pqota_crypto)
set(PQOTA_UNIT_LIBS_test_uds pqota_vehicle)
set(PQOTA_UNIT_LIBS_test_uptane pqota_uptane)
set(PQOTA_UNIT_LIBS_ALL pqota_agent pqota_server pqota_store pqota_pkg pqota_uptane pqota_vehicle
    pqota_tls pqota_crypto pqota_core PkgConfig::CURL)
set(PQOTA_UNIT_SRCS_test_campaign tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_campaign_continuous tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_diag tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_ecu_registry tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_fleet tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_store tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_telemetry tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_readiness tests/unit/store_fixture.c)
set(PQOTA_UNIT_SRCS_test_kat_mldsa tests/unit/kat.c)
set(PQOTA_UNIT_SRCS_test_kat_mlkem tests/unit/kat.c)

# pqota_unit_test(NAME): the executable NAME from tests/unit/NAME.c (not registered with ctest)
function(pqota_unit_test name)
  add_executable(${name} "tests/unit/${name}.c" tests/unit/testutil.c ${PQOTA_UNIT_SRCS_${name}})
  target_include_directories(${name} PRIVATE "${CMAKE_SOURCE_DIR}/tests/unit")
  if(DEFINED PQOTA_UNIT_LIBS_${name})
    set(libs ${PQOTA_UNIT_LIBS_${name}})
  else()
    message(STATUS "pqota: ${name} is not in tests/tests.cmake's map: it links every library")
    set(libs ${PQOTA_UNIT_LIBS_ALL})
  endif()
  target_link_libraries(${name} PRIVATE ${libs} PkgConfig::CMOCKA Threads::Threads)
endfunction()

file(GLOB PQOTA_UNIT_TESTS CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/unit/test_*.c")
# test_store runs twice, once per backend: registered below.
list(FILTER PQOTA_UNIT_TESTS EXCLUDE REGEX "/test_store\\.c$")
foreach(src ${PQOTA_UNIT_TESTS})
  get_filename_component(name "${src}" NAME_WE)
  pqota_unit_test(${name})
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
# The console in a real browser (Chromium + Playwright, tests/browser): exit 77 is a skip
# (no chromium or node on the machine); real agents and uploads, so a longer timeout.
set_tests_properties(integration/console_browser PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 420
                     LABELS browser)
# The OpenAPI linter (tests/openapi, node): exit 77 is a skip (no node on the machine).
set_tests_properties(integration/openapi_lint PROPERTIES SKIP_RETURN_CODE 77)

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
pqota_unit_test(test_store)
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

# Continuous campaigns (tests/unit/test_campaign_continuous.c) against PostgreSQL as well.
add_test(NAME unit/test_campaign_continuous_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh"
                 $<TARGET_FILE:test_campaign_continuous>)
set_tests_properties(unit/test_campaign_continuous_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 120)

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

# The fleet views and the audit filters (tests/unit/test_fleet.c) also run against a real
# PostgreSQL server.
add_test(NAME unit/test_fleet_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_fleet>)
set_tests_properties(unit/test_fleet_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)

# Telemetry's store (tests/unit/test_telemetry.c) also runs against a real PostgreSQL server.
add_test(NAME unit/test_telemetry_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_telemetry>)
set_tests_properties(unit/test_telemetry_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)
# On-demand readiness checks' store (tests/unit/test_readiness.c) also runs against a real
# PostgreSQL server.
add_test(NAME unit/test_readiness_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_readiness>)
set_tests_properties(unit/test_readiness_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)
# The fleet-wide ECU registry (tests/unit/test_ecu_registry.c) also runs against a real
# PostgreSQL server.
add_test(NAME unit/test_ecu_registry_postgres
         COMMAND bash "${CMAKE_SOURCE_DIR}/tests/store/pg-fixture.sh" $<TARGET_FILE:test_ecu_registry>)
set_tests_properties(unit/test_ecu_registry_postgres PROPERTIES
  ENVIRONMENT "PQOTA_TEST_STORE=postgres" TIMEOUT 300)
