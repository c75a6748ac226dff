# Installing (docs/operations.md "Installing"): `cmake --install build --prefix P` or
# `make install PREFIX=P` (DESTDIR is honoured) lays out
#   P/bin/pqota                          the program (console assets are embedded in it)
#   P/lib/pqota/libssl.so.3, libcrypto.so.3   the OpenSSL >= 3.5 it was built with, when
#                                        that is not the system's; the binaries find it
#                                        through an RPATH relative to $ORIGIN
#   P/lib/libpqota-tls.so.*, P/include/pqota/tls.h, P/lib/pkgconfig/libpqota-tls.pc
#   P/lib/systemd/system/pqota-{server,broker,vehicle@}.service   (PQOTA_SYSTEMD_UNITDIR)
#   P/share/man/man1/pqota*.1            from the commands' --help (scripts/gen-man)
#   P/share/doc/pqota/                   README, docs/*.md, server.conf.example
#   P/share/pqota/server.conf, vehicle.env   the services' starting configuration
set(PQOTA_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "where the systemd units are installed (relative: under the prefix)")
set(PQOTA_DOCDIR "${CMAKE_INSTALL_DATADIR}/doc/pqota")

install(TARGETS pqota RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
set_target_properties(pqota PROPERTIES BUILD_WITH_INSTALL_RPATH ON)

# pqota_rpath_set(FILE DIR): at install time, FILE's RPATH (the build tree's OpenSSL
# prefix) becomes $ORIGIN-relative to PREFIX/lib/pqota; FILE and DIR are relative to the
# prefix. The new value is written in place: it must not be longer than the OpenSSL prefix's
# lib directory (`cmake --install` stops with CMake's error if it is).
function(pqota_rpath_set file dir)
  file(RELATIVE_PATH rel "/${dir}" "/${PQOTA_PRIVATE_LIBDIR}")
  if(rel STREQUAL "")
    set(rpath "\\$ORIGIN")
  else()
    set(rpath "\\$ORIGIN/${rel}")
  endif()
  install(CODE "file(RPATH_SET FILE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${file}\" NEW_RPATH \"${rpath}\")")
endfunction()
if(PQOTA_BUNDLE_OPENSSL)
  pqota_rpath_set(${CMAKE_INSTALL_BINDIR}/pqota ${CMAKE_INSTALL_BINDIR})
  pqota_rpath_set(${CMAKE_INSTALL_LIBDIR}/libpqota-tls.so.${PQOTA_TLS_ABI}.0.0 ${CMAKE_INSTALL_LIBDIR})
endif()

# The private OpenSSL: the real files under their sonames, their own RUNPATH (the build
# cache's lib) replaced by $ORIGIN. OpenSSL's providers are built into libcrypto (the
# default provider has ML-KEM and ML-DSA); pqota loads no provider module.
if(PQOTA_BUNDLE_OPENSSL)
  foreach(lib libssl.so.3 libcrypto.so.3)
    get_filename_component(real "${PQOTA_OPENSSL_LIBDIR}/${lib}" REALPATH)
    install(FILES "${real}" DESTINATION ${PQOTA_PRIVATE_LIBDIR} RENAME ${lib}
            PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                        WORLD_READ WORLD_EXECUTE)
    pqota_rpath_set(${PQOTA_PRIVATE_LIBDIR}/${lib} ${PQOTA_PRIVATE_LIBDIR})
  endforeach()
endif()

# Man pages from --help, at build time (a changed pqota regenerates them).
set(PQOTA_MAN_DIR "${CMAKE_BINARY_DIR}/man")
add_custom_command(
  OUTPUT "${PQOTA_MAN_DIR}/pqota.1"
  COMMAND "${CMAKE_SOURCE_DIR}/scripts/gen-man" $<TARGET_FILE:pqota> "${PQOTA_MAN_DIR}"
          "${PROJECT_VERSION}"
  DEPENDS pqota "${CMAKE_SOURCE_DIR}/scripts/gen-man"
  COMMENT "Man pages from pqota --help" VERBATIM)
add_custom_target(pqota-man ALL DEPENDS "${PQOTA_MAN_DIR}/pqota.1")
install(DIRECTORY "${PQOTA_MAN_DIR}/" DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        FILES_MATCHING PATTERN "*.1")

install(FILES README.md DESTINATION ${PQOTA_DOCDIR})
file(GLOB PQOTA_DOC_FILES CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/docs/*.md")
install(FILES ${PQOTA_DOC_FILES} DESTINATION ${PQOTA_DOCDIR})
install(FILES etc/pqota-server.conf.example DESTINATION ${PQOTA_DOCDIR}
        RENAME server.conf.example)
install(FILES dist/server.conf dist/vehicle.env DESTINATION ${CMAKE_INSTALL_DATADIR}/pqota)

# The units name the installed binary, so they are written at install time, when the
# prefix (--prefix) is known.
install(CODE "
  set(pqota_bindir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(pqota_docdir \"\${CMAKE_INSTALL_PREFIX}/${PQOTA_DOCDIR}\")
  set(pqota_unitdir \"${PQOTA_SYSTEMD_UNITDIR}\")
  if(NOT IS_ABSOLUTE \"\${pqota_unitdir}\")
    set(pqota_unitdir \"\${CMAKE_INSTALL_PREFIX}/\${pqota_unitdir}\")
  endif()
  foreach(unit pqota-server.service pqota-broker.service pqota-vehicle@.service)
    file(READ \"${CMAKE_SOURCE_DIR}/dist/systemd/\${unit}.in\" text)
    string(REPLACE \"@PQOTA_BINDIR@\" \"\${pqota_bindir}\" text \"\${text}\")
    string(REPLACE \"@PQOTA_DOCDIR@\" \"\${pqota_docdir}\" text \"\${text}\")
    file(WRITE \"${CMAKE_BINARY_DIR}/units/\${unit}\" \"\${text}\")
    file(INSTALL \"${CMAKE_BINARY_DIR}/units/\${unit}\" DESTINATION \"\${pqota_unitdir}\"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
")
