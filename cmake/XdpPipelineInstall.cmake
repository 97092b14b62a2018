# `cmake --install`: the executable, the built-in stages (installed by xdp_pipeline_add_stage(... INSTALL)),
# the dispatcher, the SDK headers and the CMake package XdpPipeline. The install tree has the layout of
# the build tree (bin/ and LIBDIR/xdp-pipeline/{plugins,bpf}), so the installed executable finds its
# built-in stages at the same relative path (XDPP_REL_PKGLIBDIR).
include(CMakePackageConfigHelpers)

# The plugin loader refuses directories that group or others may write, whatever the installer's umask.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

set(XDPP_CMAKE_PACKAGE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/XdpPipeline")
set(XDPP_PYTHON_DIR "${CMAKE_INSTALL_DATADIR}/xdp-pipeline/python")

# The helper a stage's replay-driven test imports (the skeleton's and syn_guard's do).
install(FILES "${CMAKE_SOURCE_DIR}/sdk/python/xdpp_replay.py" DESTINATION "${XDPP_PYTHON_DIR}")

install(TARGETS xdp-pipeline EXPORT XdpPipelineTargets RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
get_property(xdpp_dispatcher_object TARGET dispatcher_bpf PROPERTY XDPP_OBJECT)
install(FILES "${xdpp_dispatcher_object}" DESTINATION "${XDPP_PKGLIBDIR}/bpf")

# What a stage compiles against: the BPF contract and stage macros, the plugin interface.
install(FILES
  "${CMAKE_SOURCE_DIR}/bpf/include/xdp_pipeline/contract.h"
  "${CMAKE_SOURCE_DIR}/bpf/include/xdp_pipeline/stage.h"
  "${CMAKE_SOURCE_DIR}/host/include/xdp_pipeline/plugin.h"
  "${CMAKE_SOURCE_DIR}/host/include/xdp_pipeline/result.h"
  "${CMAKE_SOURCE_DIR}/host/include/xdp_pipeline/net.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/xdp_pipeline")

install(TARGETS xdpp_sdk EXPORT XdpPipelineTargets)
install(EXPORT XdpPipelineTargets NAMESPACE XdpPipeline:: DESTINATION "${XDPP_CMAKE_PACKAGE_DIR}")

configure_package_config_file(
  "${CMAKE_SOURCE_DIR}/cmake/XdpPipelineConfig.cmake.in"
  "${CMAKE_BINARY_DIR}/cmake/XdpPipelineConfig.cmake"
  INSTALL_DESTINATION "${XDPP_CMAKE_PACKAGE_DIR}"
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR XDPP_PKGLIBDIR XDPP_PYTHON_DIR)
# 0.x: a minor version may change the plugin ABI (which xdp-pipeline checks at load time anyway).
write_basic_package_version_file(
  "${CMAKE_BINARY_DIR}/cmake/XdpPipelineConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${CMAKE_BINARY_DIR}/cmake/XdpPipelineConfig.cmake"
  "${CMAKE_BINARY_DIR}/cmake/XdpPipelineConfigVersion.cmake"
  "${CMAKE_SOURCE_DIR}/cmake/XdpPipelineStage.cmake"
  DESTINATION "${XDPP_CMAKE_PACKAGE_DIR}")

# The systemd service (deploy/systemd), its ExecStart pointing at the installed executable, in the unit
# directory systemd searches under the prefix (/usr/local/lib/systemd/system for the default prefix). The
# build tree gets a copy for the configured prefix (the tests verify it); `cmake --install --prefix P`
# writes it again for P.
set(XDPP_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
set(XDPP_DOC_DIR "${CMAKE_INSTALL_FULL_DOCDIR}")
set(xdpp_unit_in "${CMAKE_SOURCE_DIR}/deploy/systemd/xdp-pipeline@.service.in")
set(xdpp_unit "${CMAKE_BINARY_DIR}/deploy/systemd/xdp-pipeline@.service")
configure_file("${xdpp_unit_in}" "${xdpp_unit}" @ONLY)
install(CODE "
  set(XDPP_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(XDPP_DOC_DIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
  configure_file(\"${xdpp_unit_in}\" \"${CMAKE_BINARY_DIR}/deploy/systemd/install/xdp-pipeline@.service\" @ONLY)")
install(FILES "${CMAKE_BINARY_DIR}/deploy/systemd/install/xdp-pipeline@.service" DESTINATION "lib/systemd/system")
install(FILES "${CMAKE_SOURCE_DIR}/docs/deploy.md" DESTINATION "${CMAKE_INSTALL_DOCDIR}")
