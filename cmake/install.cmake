# The installable package: `cmake --install build --prefix P` gives P/bin/tuneserve, P/lib/libtuneserve.so
# (the public API of include/tuneserve/tuneserve.h and nothing else), P/include/tuneserve/, a CMake
# package (find_package(tuneserve) -> tuneserve::tuneserve, tuneserve::handler) and a pkg-config
# file; `cpack -G DEB` in the build directory makes tuneserve_<version>_amd64.deb of the same files.
include(CMakePackageConfigHelpers)

add_library(tuneserve_shared SHARED ${CMAKE_SOURCE_DIR}/src/api/tuneserve.cpp)
set_target_properties(tuneserve_shared PROPERTIES OUTPUT_NAME tuneserve EXPORT_NAME tuneserve
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR} CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(tuneserve_shared PUBLIC $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
# The library's own code and dependencies stay inside: only TUNESERVE_API symbols are exported.
target_link_libraries(tuneserve_shared PRIVATE tuneserve tuneserve_warnings)
target_link_options(tuneserve_shared PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
add_library(tuneserve::tuneserve ALIAS tuneserve_shared)

# Handler plugins need the C ABI header alone.
add_library(tuneserve_handler_api INTERFACE)
set_target_properties(tuneserve_handler_api PROPERTIES EXPORT_NAME handler)
target_include_directories(tuneserve_handler_api INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
add_library(tuneserve::handler ALIAS tuneserve_handler_api)

install(TARGETS tuneserve_cli RUNTIME DESTINATION bin)
install(TARGETS tuneserve_shared tuneserve_handler_api EXPORT tuneserveTargets
        LIBRARY DESTINATION lib ARCHIVE DESTINATION lib RUNTIME DESTINATION bin)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/tuneserve DESTINATION include)
install(EXPORT tuneserveTargets NAMESPACE tuneserve:: DESTINATION lib/cmake/tuneserve)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/tuneserveConfig.cmake.in
  ${CMAKE_BINARY_DIR}/tuneserveConfig.cmake INSTALL_DESTINATION lib/cmake/tuneserve)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/tuneserveConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/tuneserveConfig.cmake ${CMAKE_BINARY_DIR}/tuneserveConfigVersion.cmake
        DESTINATION lib/cmake/tuneserve)
configure_file(${CMAKE_SOURCE_DIR}/cmake/tuneserve.pc.in ${CMAKE_BINARY_DIR}/tuneserve.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/tuneserve.pc DESTINATION lib/pkgconfig)
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE ${CMAKE_SOURCE_DIR}/README.md DESTINATION share/doc/tuneserve)

# CPack: a .deb whose Depends dpkg-shlibdeps derives from the binaries (dpkg-dev, file).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tuneserve)
set(CPACK_PACKAGE_VENDOR tuneserve)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Fine-tune and serve BERT-family text classifiers from Hugging Face checkpoints")
set(CPACK_PACKAGE_CONTACT "tuneserve developers <tuneserve@localhost>")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
include(CPack)
