# Test tools (programs the black-box tests drive): see tests/tools/*.c.
# pqota-fleet: a scripted fleet of test vehicles (MQTT over PQC TLS, HTTPS downloads). It is
# written next to the pqota binary (the build directory's root), so a test finds it as
# "$(dirname "$PQOTA_BIN")/pqota-fleet".
add_executable(pqota-fleet tests/tools/fleet.c)
target_link_libraries(pqota-fleet PRIVATE pqota_crypto pqota_core PkgConfig::MOSQUITTO
                      PkgConfig::CURL PkgConfig::JANSSON OpenSSL::SSL OpenSSL::Crypto)
set_target_properties(pqota-fleet PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}")
# seed_fleet: inserts N registered vehicles straight into a server's SQLite store (the
# console's fleet page at 10,000 vehicles); also next to pqota.
add_executable(seed_fleet tests/tools/seed_fleet.c)
target_link_libraries(seed_fleet PRIVATE pqota_store pqota_core)
set_target_properties(seed_fleet PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}")
