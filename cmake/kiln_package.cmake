# kiln.pc and the CMake package config (find_package(kiln) -> kiln::kiln,
# kiln::kiln_static), both relocatable: they find the prefix from where they
# are installed, so `cmake --install build --prefix DIR` works for any DIR.
include(CMakePackageConfigHelpers)

# Libraries static linking needs, as -l flags for kiln.pc.
set(KILN_PC_LIBS_PRIVATE "")
if(KILN_BLAS)
  get_filename_component(_blas_name ${CBLAS_LIB} NAME_WE)
  string(REGEX REPLACE "^lib" "" _blas_name "${_blas_name}")
  string(APPEND KILN_PC_LIBS_PRIVATE "-l${_blas_name} ")
endif()
string(APPEND KILN_PC_LIBS_PRIVATE "-lpthread -lm")
file(RELATIVE_PATH KILN_PC_PREFIX_REL ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" KILN_PC_PREFIX_REL "${KILN_PC_PREFIX_REL}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/kiln.pc.in ${CMAKE_BINARY_DIR}/kiln.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kiln.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(KILN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kiln)
install(EXPORT kilnTargets NAMESPACE kiln:: DESTINATION ${KILN_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/kilnConfig.cmake.in ${CMAKE_BINARY_DIR}/kilnConfig.cmake
                              INSTALL_DESTINATION ${KILN_CMAKE_DIR})
# Before 1.0 a minor version may change the API: only the same minor matches.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_compat SameMinorVersion)
else()
  set(_compat SameMajorVersion)
endif()
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kilnConfigVersion.cmake COMPATIBILITY ${_compat})
install(FILES ${CMAKE_BINARY_DIR}/kilnConfig.cmake ${CMAKE_BINARY_DIR}/kilnConfigVersion.cmake
        DESTINATION ${KILN_CMAKE_DIR})
